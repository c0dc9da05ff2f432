"""Tests of vmtool.segmentation.rhythm: beats, bars and fixed windows.

The synthetic track of ``music_wav`` (120 BPM, 4/4, kick on beats 1 and 3, one chord
per bar, first beat at 0 s) gives exact beat and downbeat times.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from vmtool.errors import ParameterError
from vmtool.media import load_audio
from vmtool.segmentation.base import Segmentation
from vmtool.segmentation.rhythm import bars, beats, fixed

SR = 22050
TOL = 0.07  # seconds


@pytest.fixture(scope="module")
def music(music_wav):
    return load_audio(music_wav, SR)


@pytest.fixture(scope="module")
def beat_seg(music) -> Segmentation:
    return beats(music, SR)


@pytest.fixture(scope="module")
def bar_seg(music) -> Segmentation:
    return bars(music, SR)


def _hit_fraction(truth_times: np.ndarray, found: np.ndarray, tol: float = TOL) -> float:
    """Fraction of *truth_times* with a *found* time within *tol* seconds."""
    found = np.asarray(found)
    if found.size == 0:
        return 0.0
    return float(np.mean([np.min(np.abs(found - t)) <= tol for t in truth_times]))


# -- beats ------------------------------------------------------------------------------


def test_beats_tempo_and_times(beat_seg, music_truth, music):
    assert beat_seg.duration == pytest.approx(music.size / SR)
    assert beat_seg.extra["tempo"] == pytest.approx(music_truth.tempo, rel=0.05)
    # the tracker may miss the very first beat (at 0 s) and the last one
    bt = music_truth.beat_times
    inner = bt[(bt > 0.5) & (bt < music_truth.duration - 0.5)]
    assert _hit_fraction(inner, beat_seg.boundaries) >= 0.95
    # few spurious beats: nearly every boundary is near a true beat
    assert _hit_fraction(beat_seg.boundaries, music_truth.beat_times) >= 0.95


def test_beats_result_layout(beat_seg, music):
    b = beat_seg.boundaries
    assert b.dtype == np.float64 and np.all(np.diff(b) > 0)
    assert b[0] > 0 and b[-1] < beat_seg.duration
    bt = beat_seg.extra["beat_times"]
    np.testing.assert_array_equal(b, bt[(bt > 0) & (bt < beat_seg.duration)])
    assert beat_seg.curve_rate == pytest.approx(SR / 512)
    assert beat_seg.curve.ndim == 1 and beat_seg.curve.size == pytest.approx(music.size / 512, abs=2)
    assert beat_seg.labels is None
    assert set(beat_seg.timings) == {"features", "algorithm"}


def test_beats_min_duration(music):
    seg = beats(music, SR, min_duration=1.2)
    assert len(seg.boundaries) > 5
    assert np.diff(np.concatenate([[0.0], seg.boundaries, [seg.duration]])).min() >= 1.2 - 1e-9


def test_beats_of_silence():
    seg = beats(np.zeros(3 * SR, dtype=np.float32), SR)
    assert seg.boundaries.size == 0 and seg.n_segments == 1
    assert seg.extra["tempo"] == 0.0 and seg.extra["beat_times"].size == 0


# -- bars -------------------------------------------------------------------------------


def test_bars_meter_is_four(bar_seg):
    assert bar_seg.extra["beats_per_bar"] == 4
    assert bar_seg.extra["beats_per_bar_estimated"] is True
    scores = bar_seg.extra["meter_scores"]
    assert set(scores) == {"2", "3", "4"}
    assert scores["4"] > scores["2"] > scores["3"]


def test_bars_downbeats_on_bar_lines(bar_seg, music_truth):
    # the downbeat at 0 s is no boundary (boundaries lie strictly inside the item)
    truth = music_truth.downbeat_times[music_truth.downbeat_times > 0]
    frac = _hit_fraction(truth, bar_seg.boundaries)
    assert frac >= 0.9, frac  # 14 of 14 found here
    # every estimated downbeat is a true one (no bar starts on beat 2, 3 or 4)
    assert _hit_fraction(bar_seg.boundaries, music_truth.downbeat_times) >= 0.9


def test_bars_extra_is_consistent(bar_seg):
    ex = bar_seg.extra
    n, phase = ex["beats_per_bar"], ex["downbeat_phase"]
    assert 0 <= phase < n
    np.testing.assert_array_equal(ex["downbeat_times"], ex["beat_times"][phase::n])
    np.testing.assert_array_equal(bar_seg.boundaries, ex["downbeat_times"][ex["downbeat_times"] > 0])
    assert ex["tempo"] == pytest.approx(120.0, rel=0.05)
    assert bar_seg.curve_rate == pytest.approx(SR / 512)


def test_bars_given_meter(music):
    seg = bars(music, SR, beats_per_bar=3)
    ex = seg.extra
    assert ex["beats_per_bar"] == 3 and ex["beats_per_bar_estimated"] is False and ex["meter_scores"] == {}
    assert 0 <= ex["downbeat_phase"] < 3
    np.testing.assert_array_equal(ex["downbeat_times"], ex["beat_times"][ex["downbeat_phase"] :: 3])


def test_bars_min_duration(music):
    seg = bars(music, SR, beats_per_bar=1, min_duration=1.5)  # one "bar" per beat, then merged
    assert np.diff(np.concatenate([[0.0], seg.boundaries, [seg.duration]])).min() >= 1.5 - 1e-9


def test_bars_of_silence():
    seg = bars(np.zeros(2 * SR, dtype=np.float32), SR)
    assert seg.boundaries.size == 0
    assert seg.extra["beats_per_bar"] == 4 and seg.extra["downbeat_phase"] == 0


@pytest.mark.parametrize("bad", [0, -2, 2.5, "4", True])
def test_bars_bad_meter(bad):
    with pytest.raises(ParameterError, match="beats_per_bar must be a positive integer"):
        bars(np.zeros(SR, dtype=np.float32), SR, beats_per_bar=bad)


# -- fixed ------------------------------------------------------------------------------


def test_fixed_windows():
    seg = fixed(10.0, window=4.0)
    assert seg.boundaries.tolist() == [4.0, 8.0] and seg.duration == 10.0
    assert seg.extra == {"window": 4.0} and seg.curve is None and math.isnan(seg.curve_rate)
    assert fixed(12.0, window=4.0).boundaries.tolist() == [4.0, 8.0]  # no boundary at the end
    assert fixed(0.3, window=1.0).boundaries.tolist() == []
    np.testing.assert_allclose(fixed(1.0, window=0.1).boundaries, np.arange(1, 10) * 0.1)


def test_fixed_min_duration_merges_a_short_remainder():
    assert fixed(8.5, window=4.0).boundaries.tolist() == [4.0, 8.0]
    assert fixed(8.5, window=4.0, min_duration=1.0).boundaries.tolist() == [4.0]


@pytest.mark.parametrize("window", [0, -1.0, float("nan"), float("inf"), "wide", None])
def test_fixed_bad_window(window):
    with pytest.raises(ParameterError, match="window must be a positive number of seconds"):
        fixed(10.0, window=window)


@pytest.mark.parametrize("duration", [0, -3.0, float("nan")])
def test_fixed_bad_duration(duration):
    with pytest.raises(ParameterError, match="duration must be positive"):
        fixed(duration, window=1.0)


# -- bad audio --------------------------------------------------------------------------


@pytest.mark.parametrize("func", [beats, bars])
def test_bad_audio(func):
    with pytest.raises(ParameterError, match=r"mono signal of shape \(n,\), got shape \(2, 100\)"):
        func(np.zeros((2, 100), dtype=np.float32), SR)
    with pytest.raises(ParameterError, match="y must hold floats, got dtype int16"):
        func(np.zeros(100, dtype=np.int16), SR)
    with pytest.raises(ParameterError, match="y is empty"):
        func(np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(ParameterError, match="non-finite"):
        func(np.full(100, np.nan, dtype=np.float32), SR)
    with pytest.raises(ParameterError, match="sr must be a positive integer, got 0"):
        func(np.zeros(100, dtype=np.float32), 0)
    with pytest.raises(ParameterError, match="hop_length must be a positive integer, got 0"):
        func(np.zeros(100, dtype=np.float32), SR, hop_length=0)
    with pytest.raises(ParameterError, match="min_duration must be >= 0"):
        func(np.zeros(SR, dtype=np.float32), SR, min_duration=-1.0)


@pytest.mark.parametrize("n", [1000, 3 * 22050 + 17, 3 * 22050 + 511])
def test_chunked_onset_strength_equals_librosa(music_wav, n):
    """The envelope computed chunk by chunk (bounded memory on long files) is librosa's."""
    import librosa

    from vmtool.segmentation.rhythm import onset_strength

    y = load_audio(music_wav, 22050)[:n]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa: n_fft too large for the 1000-sample signal
        ref = librosa.onset.onset_strength(y=y, sr=22050, hop_length=512)
    got = onset_strength(y, 22050, 512, chunk_frames=7)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-4 * float(np.abs(ref).max()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chunked_global_tempo_equals_librosa(seed):
    """The tempo from a tempogram averaged chunk by chunk is librosa.feature.tempo's."""
    import librosa

    from vmtool.segmentation.rhythm import global_tempo

    oenv = np.random.default_rng(seed).random(3000).astype(np.float32) ** 4  # sparse peaks, like onsets
    oenv[:: 23 + seed] += 3.0  # a periodic component
    ref = float(librosa.feature.tempo(onset_envelope=oenv, sr=22050, hop_length=512)[0])
    assert global_tempo(oenv, 22050, 512, chunk_frames=257) == ref
