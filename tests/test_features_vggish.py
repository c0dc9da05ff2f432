"""Tests of the AudioSet VGGish extractor (vmtool.features.vggish).

The real weights cannot be downloaded here: a VGGish network with seeded random
weights is saved in the torchvggish state-dict layout, with random PCA parameters,
and every test runs the real loading and inference code on those files.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vmtool.errors import ExtractorUnavailable, ParameterError  # noqa: E402
from vmtool.features import extractor_class, get_extractor  # noqa: E402
from vmtool.features import vggish as vg  # noqa: E402
from vmtool.features.base import pool_by_time  # noqa: E402

SR = 16000
ENV_VARS = ("VMTOOL_VGGISH_WEIGHTS", "VMTOOL_VGGISH_PCA", "VMTOOL_HOME")
# the user's real files, if any (read before the fixtures empty the environment)
REAL_WEIGHTS = vg.weights_path()
REAL_PCA = vg.pca_path()


def tone(freq: float, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * SR))) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def music_like(seconds: float, seed: int = 0) -> np.ndarray:
    """A chirp plus noise whose level changes, so that consecutive examples differ."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    y = 0.4 * np.sin(2 * np.pi * (200 * t + 150 * t**2)) + 0.05 * rng.standard_normal(t.size) * (1 + np.sin(t))
    return y.astype(np.float32)


def run(ex, y, rate=1.0, n_steps=None, block=None) -> np.ndarray:
    n_steps = n_steps or max(1, int(np.ceil(round(len(y) / SR * rate, 6))))
    acc = ex.begin(None, rate, n_steps)
    if block is None:
        acc.push(y)
    else:
        sizes = [block] if isinstance(block, int) else list(block)
        i = k = 0
        while i < len(y):
            n = sizes[k % len(sizes)]
            acc.push(y[i : i + n])
            i, k = i + n, k + 1
    return acc.finish().frames


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """Seeded random VGGish weights (torchvggish layout) and PCA parameters in three formats."""
    d = tmp_path_factory.mktemp("vggish")
    g = torch.Generator().manual_seed(1234)
    state = {}
    for key, shape in vg.expected_state_shapes().items():
        if key.endswith(".weight"):
            fan_in = int(np.prod(shape[1:]))
            bound = float(np.sqrt(6.0 / fan_in))  # He-uniform: activations keep their scale
            state[key] = torch.empty(shape).uniform_(-bound, bound, generator=g)
        else:
            state[key] = torch.empty(shape).uniform_(-0.05, 0.05, generator=g)
    weights = d / "vggish-random.pth"
    torch.save(state, weights)
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    eig = 0.5 * q
    means = 0.1 * rng.standard_normal(128)
    pca_pth = d / "pca.pth"  # tensors, means as a column as in torchvggish
    torch.save({"pca_eigen_vectors": torch.from_numpy(eig), "pca_means": torch.from_numpy(means[:, None])}, pca_pth)
    pca_np = d / "pca_numpy.pth"  # numpy arrays pickled by torch.save
    torch.save({"pca_eigen_vectors": eig, "pca_means": means}, pca_np)
    pca_npz = d / "vggish_pca_params.npz"  # Google's format
    np.savez(pca_npz, pca_eigen_vectors=eig, pca_means=means[:, None])
    return {"weights": weights, "state": state, "pca": pca_pth, "pca_np": pca_np, "pca_npz": pca_npz,
            "eig": eig, "means": means, "dir": d}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No weights anywhere unless a test puts them there (an empty VMTOOL_HOME)."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "vmtool-home"
    home.mkdir()
    monkeypatch.setenv("VMTOOL_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def raw_53(files):
    """Extractor output (raw embeddings) of a 5.3 s signal at 1 Hz."""
    ex = vg.VGGishExtractor(weights=files["weights"], postprocess=False)
    return run(ex, music_like(5.3))


# --- description, availability, lookup ----------------------------------------------------------


def test_columns_and_cheap_construction_without_weights():
    ex = vg.VGGishExtractor()
    assert ex.name == "vggish" and ex.modality == "audio" and ex.sample_rate == 16000
    assert ex.dim == 128 and ex.columns[0] == "vggish_000" and ex.columns[-1] == "vggish_127"
    assert ex.postprocess is False and ex.hop_seconds == pytest.approx(0.48)
    assert vg.VGGishExtractor.default_dim() == 128 and ex.summary
    assert extractor_class("vggish") is vg.VGGishExtractor


def test_import_does_not_load_torch():
    code = "import sys, vmtool.features.vggish as v; v.VGGishExtractor().columns; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unavailable_without_weights_gives_a_helpful_reason(clean_env):
    ok, reason = vg.VGGishExtractor.availability()
    expected = clean_env / "weights" / "vggish.pth"
    assert not ok
    assert reason.startswith("weights not found: looked in ")
    assert str(expected) in reason and "VMTOOL_VGGISH_WEIGHTS" in reason and "torchvggish" in reason
    with pytest.raises(ExtractorUnavailable, match="weights not found"):
        get_extractor("vggish", modality="audio")
    ex = vg.VGGishExtractor()  # building it still works (the registry reads columns)
    with pytest.raises(ExtractorUnavailable, match="weights not found"):
        ex.begin(None, 1.0, 1)
    with pytest.raises(ExtractorUnavailable, match="weights not found"):
        ex.config()


def test_default_home_when_vmtool_home_is_unset(monkeypatch, tmp_path):
    monkeypatch.delenv("VMTOOL_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert vg.weights_path() == tmp_path / ".cache" / "vmtool" / "weights" / "vggish.pth"
    assert vg.pca_path() == tmp_path / ".cache" / "vmtool" / "weights" / "vggish_pca_params.pth"


def test_lookup_order(files, clean_env, monkeypatch):
    default = clean_env / "weights" / "vggish.pth"
    assert vg.weights_path() == default
    default.parent.mkdir()
    default.symlink_to(files["weights"])
    assert vg.VGGishExtractor.availability() == (True, "")
    monkeypatch.setenv("VMTOOL_VGGISH_WEIGHTS", str(files["dir"] / "nothing.pth"))
    assert vg.weights_path() == files["dir"] / "nothing.pth"  # the variable wins over the default
    ok, reason = vg.VGGishExtractor.availability()
    assert not ok and "nothing.pth" in reason and "$VMTOOL_VGGISH_WEIGHTS" in reason
    assert vg.weights_path(files["weights"]) == files["weights"]  # the parameter wins over both
    assert vg.VGGishExtractor.availability(weights=files["weights"]) == (True, "")


def test_load_via_parameter_and_via_env_var(files, monkeypatch):
    by_param = vg.load_model(files["weights"])
    monkeypatch.setenv("VMTOOL_VGGISH_WEIGHTS", str(files["weights"]))
    assert vg.VGGishExtractor.availability() == (True, "")
    ex = get_extractor("vggish", modality="audio", device="cpu")
    assert ex.weights_file == files["weights"]
    assert vg.load_model() is by_param  # one model per (file, device) per process
    assert ex.begin(None, 1.0, 3).model is by_param
    sd = by_param.state_dict()
    for key, value in files["state"].items():
        assert torch.equal(sd[key], value), key


def test_state_dict_layout_matches_torchvggish():
    keys = list(vg.expected_state_shapes())
    assert keys == [
        "features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias",
        "features.6.weight", "features.6.bias", "features.8.weight", "features.8.bias",
        "features.11.weight", "features.11.bias", "features.13.weight", "features.13.bias",
        "embeddings.0.weight", "embeddings.0.bias", "embeddings.2.weight", "embeddings.2.bias",
        "embeddings.4.weight", "embeddings.4.bias",
    ]
    assert vg.expected_state_shapes()["embeddings.0.weight"] == (4096, 12288)
    net = vg.build_network("meta")
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == vg.expected_state_shapes()


# --- bad files --------------------------------------------------------------------------------


def test_corrupted_weights_file(tmp_path):
    bad = tmp_path / "vggish.pth"
    bad.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 288\n")
    ex = vg.VGGishExtractor(weights=bad)
    with pytest.raises(ExtractorUnavailable, match="cannot read the VGGish weights file") as err:
        ex.begin(None, 1.0, 1)
    assert str(err.value).startswith(f"{bad}: ")


def test_missing_key_wrong_shape_unexpected_key(tmp_path, files):
    missing = tmp_path / "missing.pth"
    torch.save({"features.0.weight": torch.zeros(64, 1, 3, 3)}, missing)
    with pytest.raises(ExtractorUnavailable, match=r"missing key 'features\.0\.bias'") as err:
        vg.load_model(missing)
    assert str(missing) in str(err.value)
    shape = tmp_path / "shape.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, shape)
    with pytest.raises(ExtractorUnavailable, match=r"'features\.0\.weight' has shape \(64, 3, 3, 3\)"):
        vg.load_model(shape)
    not_a_dict = tmp_path / "list.pth"
    torch.save([1, 2], not_a_dict)
    with pytest.raises(ExtractorUnavailable, match="holds a list"):
        vg.load_model(not_a_dict)
    # unexpected keys, checked in memory (saving another 288 MB file would be slow)
    extra = {**files["state"], "classifier.weight": torch.zeros(3)}
    with pytest.raises(ExtractorUnavailable, match=r"unexpected key 'classifier\.weight'"):
        vg._check_state_dict(extra, tmp_path / "x.pth")
    # torchvggish's postprocessor saved with the model, and a wrapped checkpoint, are accepted
    wrapped = {"state_dict": {**files["state"], "pproc.pca_matrix": torch.zeros(128, 128)}}
    assert set(vg._check_state_dict(wrapped, tmp_path / "x.pth")) == set(vg.expected_state_shapes())


def test_bad_pca_file(tmp_path):
    bad = tmp_path / "pca.pth"
    torch.save({"pca_eigen_vectors": torch.zeros(128, 64), "pca_means": torch.zeros(128)}, bad)
    with pytest.raises(ExtractorUnavailable, match=r"'pca_eigen_vectors' has shape \(128, 64\)"):
        vg.load_pca_params(bad)
    with pytest.raises(ExtractorUnavailable, match="postprocess needs the PCA parameters"):
        vg.VGGishExtractor(postprocess=True)


def test_pca_formats_agree(files):
    ref_eig, ref_means = files["eig"], files["means"]
    for key in ("pca", "pca_np", "pca_npz"):
        eig, means = vg.load_pca_params(files[key])
        np.testing.assert_array_equal(eig, ref_eig)
        np.testing.assert_array_equal(means, ref_means)
        assert means.shape == (128,)


# --- frontend -----------------------------------------------------------------------------------


def reference_log_mel(y: np.ndarray) -> np.ndarray:
    """Direct transcription of the TF reference (mel_features.log_mel_spectrogram, VGGish settings)."""
    win, hop = int(round(SR * 0.025)), int(round(SR * 0.010))
    fft = 2 ** int(np.ceil(np.log(win) / np.log(2.0)))
    n = 1 + int(np.floor((len(y) - win) / hop))
    frames = np.stack([y[i * hop : i * hop + win] for i in range(n)]).astype(np.float64)
    window = 0.5 - 0.5 * np.cos(2 * np.pi / win * np.arange(win))  # periodic Hann
    spec = np.abs(np.fft.rfft(frames * window, fft))
    nyq = SR / 2.0
    bins_mel = 1127.0 * np.log(1.0 + np.linspace(0.0, nyq, spec.shape[1]) / 700.0)
    edges = np.linspace(1127.0 * np.log(1 + 125.0 / 700), 1127.0 * np.log(1 + 7500.0 / 700), 64 + 2)
    mel = np.empty((spec.shape[1], 64))
    for i in range(64):
        lo, c, hi = edges[i : i + 3]
        mel[:, i] = np.maximum(0.0, np.minimum((bins_mel - lo) / (c - lo), (hi - bins_mel) / (hi - c)))
    mel[0, :] = 0.0
    return np.log(spec @ mel + 0.01)


def test_log_mel_matches_reference_recipe():
    y = tone(1000.0, 2.0) + 0.01 * np.random.default_rng(0).standard_normal(2 * SR).astype(np.float32)
    ours = vg.log_mel_spectrogram(y)
    ref = reference_log_mel(y)
    assert ours.dtype == np.float32 and ours.shape == ref.shape == (1 + (2 * SR - 400) // 160, 64)
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)


def test_tone_peaks_in_its_mel_band_and_frames_are_10ms():
    mel = vg.log_mel_spectrogram(tone(1000.0, 1.0))
    centres = np.linspace(1127.0 * np.log(1 + 125.0 / 700), 1127.0 * np.log(1 + 7500.0 / 700), 66)[1:-1]
    expected = int(np.argmin(np.abs(centres - 1127.0 * np.log(1 + 1000.0 / 700))))
    assert np.all(mel.argmax(axis=1) == expected)
    # 96 frames per 0.96 s: frame j covers samples [160 j, 160 j + 400)
    for n in (400, 12345, 15600, 16000):
        assert vg.log_mel_spectrogram(np.zeros(n)).shape[0] == 1 + (n - 400) // 160
        more = vg.log_mel_spectrogram(np.zeros(n + 15360)).shape[0]  # 0.96 s more
        assert more - vg.log_mel_spectrogram(np.zeros(n)).shape[0] == 96
    assert vg.log_mel_spectrogram(np.zeros(vg.EXAMPLE_SAMPLES)).shape[0] == 96
    assert vg.log_mel_spectrogram(np.zeros(399)).shape == (0, 64)
    assert vg.waveform_to_examples(tone(1000.0, 5.3), 48).shape == (10, 96, 64)
    assert vg.waveform_to_examples(tone(1000.0, 5.3)).shape == (5, 96, 64)


# --- network and extractor ----------------------------------------------------------------------


def test_network_flattens_like_torchvggish(files):
    """The 512 x 6 x 4 map enters fc1 in TensorFlow's (height, width, channel) order, as in the port."""
    model = vg.load_model(files["weights"])
    x = torch.from_numpy(vg.waveform_to_examples(music_like(1.0), 96))
    seen = []
    hook = model.embeddings.register_forward_hook(lambda mod, inp, out: seen.append((inp[0].clone(), out.clone())))
    try:
        with torch.inference_mode():
            out = model(x)
            h = model.features(x[:, None])
    finally:
        hook.remove()
    port_flat = torch.transpose(torch.transpose(h, 1, 3), 1, 2).contiguous().view(h.shape[0], -1)
    assert out.shape == (1, 128) and h.shape == (1, 512, 6, 4)
    torch.testing.assert_close(seen[0][0], port_flat)
    torch.testing.assert_close(seen[0][1], out)


def test_output_shape_for_53_seconds_at_1hz(raw_53):
    assert raw_53.shape == (6, 128) and raw_53.dtype == np.float32
    # the last example (of 10, every 0.48 s) is centred at 4.8075 s: step 5 takes step 4's row
    np.testing.assert_array_equal(raw_53[5], raw_53[4])
    assert np.abs(raw_53[0] - raw_53[3]).max() > 1e-3  # the random network is not constant


def test_streaming_matches_direct_computation_whatever_the_blocks(files):
    y = music_like(2.2, seed=3)  # 3 examples
    model = vg.load_model(files["weights"])
    with torch.inference_mode():
        emb = model(torch.from_numpy(vg.waveform_to_examples(y, 48))).numpy()
    assert emb.shape == (3, 128)
    # each example at its centre (start + 0.4875 s), averaged per 0.5 s step
    times = np.arange(len(emb)) * 0.48 + vg.EXAMPLE_SAMPLES / 2 / SR
    direct = pool_by_time(times, emb, 2.0, 5)
    ex = vg.VGGishExtractor(weights=files["weights"], postprocess=False)
    whole = run(ex, y, rate=2.0)
    assert whole.shape == (5, 128)
    np.testing.assert_allclose(whole, direct, atol=1e-5, rtol=0)
    for block in (1000, (7, 4099, 123, 16000, 1)):
        np.testing.assert_allclose(run(ex, y, rate=2.0, block=block), whole, atol=1e-5, rtol=0)


def test_short_item_is_zero_padded_to_one_example(files):
    ex = vg.VGGishExtractor(weights=files["weights"], postprocess=False)
    y = music_like(0.3)
    out = run(ex, y, n_steps=1)
    padded = np.concatenate([y, np.zeros(vg.EXAMPLE_SAMPLES - y.size, dtype=np.float32)])
    with torch.inference_mode():
        direct = vg.load_model(files["weights"])(torch.from_numpy(vg.waveform_to_examples(padded))).numpy()
    np.testing.assert_allclose(out, direct, atol=1e-5, rtol=0)
    assert run(ex, np.zeros(0, dtype=np.float32), n_steps=1).shape == (1, 128)


def test_postprocess_output_is_quantised(files, monkeypatch):
    monkeypatch.setenv("VMTOOL_VGGISH_PCA", str(files["pca_npz"]))
    ex = vg.VGGishExtractor(weights=files["weights"])
    assert ex.postprocess is True  # on by default when the PCA file exists
    out = run(ex, music_like(1.5), rate=4.0)
    assert out.shape == (6, 128) and out.min() >= 0 and out.max() <= 255
    # the reference: (x - means) @ eigvecs.T, clip to [-2, 2], uint8 of (x + 2) * 255 / 4
    emb = np.random.default_rng(1).standard_normal((4, 128)) * 3
    q = vg.postprocess_embeddings(emb, files["eig"], files["means"])
    ref = ((np.clip((emb - files["means"]) @ files["eig"].T, -2, 2) + 2) * (255.0 / 4)).astype(np.uint8)
    np.testing.assert_array_equal(q, ref.astype(np.float32))
    assert q.min() == 0 and q.max() == 255
    raw = vg.VGGishExtractor(weights=files["weights"], postprocess=False)
    assert raw.postprocess is False and "pca_sha256" not in raw.params()


def test_config_records_hashes_not_paths(files, monkeypatch):
    monkeypatch.setenv("VMTOOL_VGGISH_PCA", str(files["pca"]))
    ex = vg.VGGishExtractor(weights=files["weights"], hop_seconds=0.96)
    cfg = ex.config()
    assert cfg["name"] == "vggish" and cfg["modality"] == "audio" and cfg["version"] == "1"
    assert cfg["weights_sha256"] == hashlib.sha256(files["weights"].read_bytes()).hexdigest()
    assert cfg["pca_sha256"] == hashlib.sha256(files["pca"].read_bytes()).hexdigest()
    assert cfg["postprocess"] is True and cfg["hop_seconds"] == pytest.approx(0.96)
    text = json.dumps(cfg)
    assert str(files["dir"]) not in text and "vggish-random" not in text


@pytest.mark.parametrize("hop", [0, -0.48, 0.485, float("nan"), "x"])
def test_bad_hop_seconds(hop):
    with pytest.raises(ParameterError, match="hop_seconds"):
        vg.VGGishExtractor(hop_seconds=hop)


def test_unknown_parameter_and_bad_batch_size():
    with pytest.raises(ParameterError, match="no parameter"):
        vg.VGGishExtractor(hop=0.5)
    with pytest.raises(ParameterError, match="batch_size"):
        vg.VGGishExtractor(batch_size=0)


@pytest.mark.slow
@pytest.mark.skipif(not (REAL_WEIGHTS.is_file() and REAL_PCA.is_file()), reason="real VGGish weights not installed")
def test_real_weights_pass_the_reference_smoke_test():
    """Google's vggish_smoke_test.py: a 3 s 1 kHz sine, examples without overlap."""
    model = vg.load_model(REAL_WEIGHTS)
    x = np.sin(2 * np.pi * 1000 * np.arange(0, 3, 1 / SR))
    examples = vg.waveform_to_examples(x)
    assert examples.shape == (3, 96, 64)
    with torch.inference_mode():
        emb = model(torch.from_numpy(examples)).numpy()
    # the reference's values (pre-activation embedding), within its 10 % tolerance
    assert abs(emb.mean() - 0.000657) < 0.005
    assert emb.std() == pytest.approx(0.343, rel=0.1)
    post = vg.postprocess_embeddings(emb, *vg.load_pca_params(REAL_PCA))
    assert post.mean() == pytest.approx(126.0, rel=0.1) and post.std() == pytest.approx(89.3, rel=0.1)
