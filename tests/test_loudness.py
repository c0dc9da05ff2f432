"""Integrated loudness (ITU-R BS.1770-4, EBU R128): the standard's filter, its test signals, the gates
transcribed from the equations, the stored field and ``rank --where 'loudness LOW..HIGH'``."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool import metadata as md
from vmtool.cli import app
from vmtool.synth import synth_catalog


def tone(dbfs: float, seconds: float, sr: int, freq: float = 997.0) -> np.ndarray:
    """A sine of peak level *dbfs* (0 dBFS = amplitude 1)."""
    t = np.arange(int(round(seconds * sr))) / sr
    return 10.0 ** (dbfs / 20.0) * np.sin(2 * np.pi * freq * t)


def test_k_weighting_at_48k_is_the_standards():
    # BS.1770-4, Annex 1, Tables 1 (pre-filter) and 2 (RLB filter), 48 kHz
    (b1, a1), (b2, a2) = md.k_weighting(48000)
    np.testing.assert_allclose(b1, [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-9)
    np.testing.assert_allclose(a1, [1.0, -1.69065929318241, 0.73248077421585], atol=1e-9)
    np.testing.assert_allclose(b2, [1.0, -2.0, 1.0])
    np.testing.assert_allclose(a2, [1.0, -1.99004745483398, 0.99007225036621], atol=1e-9)


@pytest.mark.parametrize("sr, tol", [(48000, 0.005), (44100, 0.005), (22050, 0.05), (12000, 0.05)])
def test_full_scale_997_hz_sine_reads_minus_3_01(sr, tol):
    # BS.1770-4: a 0 dBFS 997 Hz sine in one front channel reads -3.01 LKFS; at low rates the
    # bilinear transform bends the shelf a little (+0.03 dB at 22.05 kHz, +0.04 at 12 kHz)
    assert md.loudness_lufs(tone(0.0, 10, sr), sr) == pytest.approx(-3.01, abs=tol)


@pytest.mark.parametrize("parts, want", [
    # EBU Tech 3341 (2016), Table 1: stereo tests 1, 2, 3, 4 and 5 (1 kHz, both channels alike), +-0.1 LU
    ([(-23.0, 20.0)], -23.0),
    ([(-33.0, 20.0)], -33.0),
    ([(-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0)], -23.0),  # the relative gate drops the -36 parts
    ([(-72.0, 10.0), (-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0), (-72.0, 10.0)], -23.0),  # and the absolute one
    ([(-26.0, 20.0), (-20.0, 20.1), (-26.0, 20.0)], -23.0),
])
def test_ebu_tech_3341_stereo_cases(parts, want):
    sr = 12000
    # the decoder's mono mix of two equal channels: (L + R) / sqrt(2) (checked on a file below)
    y = np.sqrt(2.0) * np.concatenate([tone(db, s, sr, 1000.0) for db, s in parts])
    assert md.loudness_lufs(y, sr) == pytest.approx(want, abs=0.1)


def test_a_stereo_file_decoded_as_extract_does_reads_its_loudness(tmp_path):
    from vmtool.media import iter_audio
    from vmtool.media.encode import write_media

    wav = write_media(tmp_path / "case1.wav", audio=np.stack([tone(-23.0, 20.0, 48000, 1000.0)] * 2), sr=48000)
    m = md.Measurer(12000)  # the handcrafted extractor's rate, on which extract measures
    for block in iter_audio(wav, 12000):
        m.push(block)
    assert m.finish()["measured_loudness_lufs"] == pytest.approx(-23.0, abs=0.1)  # EBU Tech 3341 test 1


def _bs1770_by_hand(y, sr):
    """BS.1770-4 eqs. 1-7 for one channel, block by block as the standard writes them."""
    from scipy.signal import lfilter

    x = y.astype(np.float64)
    for b, a in md.k_weighting(sr):
        x = lfilter(b, a, x)
    tg, overlap = 0.4, 0.75
    step = tg * (1 - overlap)
    n = int(math.floor((len(x) / sr - tg) / step + 1e-9)) + 1  # j in 0..floor((T - Tg) / step)
    z = [float(np.mean(x[int(round(j * step * sr)): int(round(j * step * sr)) + int(round(tg * sr))] ** 2))
         for j in range(n)]
    loud = [-0.691 + 10 * math.log10(zj) if zj > 0 else -math.inf for zj in z]
    above = [zj for zj, lj in zip(z, loud) if lj > -70.0]
    gamma_r = -0.691 + 10 * math.log10(sum(above) / len(above)) - 10.0
    kept = [zj for zj, lj in zip(z, loud) if lj > -70.0 and lj > gamma_r]
    return -0.691 + 10 * math.log10(sum(kept) / len(kept))


def test_gating_matches_the_standards_equations_by_hand():
    rng = np.random.default_rng(3)
    sr = 8000
    # 5 s of noise whose level steps between loud, quiet and near-silent parts
    levels = np.repeat([0.3, 0.01, 0.5, 1e-5, 0.2], sr)
    y = rng.standard_normal(5 * sr) * levels
    assert md.loudness_lufs(y, sr) == pytest.approx(_bs1770_by_hand(y, sr), abs=1e-9)


def test_too_short_or_silent_is_nan():
    assert math.isnan(md.loudness_lufs(tone(-20.0, 0.39, 48000), 48000))
    assert math.isnan(md.loudness_lufs(np.zeros(48000), 48000))
    assert math.isnan(md.loudness_lufs(tone(-80.0, 2.0, 48000), 48000))  # all below the absolute gate


def test_measure_stores_lufs_beside_the_rms_level():
    sr = 12000
    out = md.Measurer(sr)
    y = tone(-20.0, 4.0, sr).astype(np.float32)
    out.push(y[:10000])
    out.push(y[10000:])
    got = out.finish()
    assert got["measured_loudness_lufs"] == pytest.approx(-23.01, abs=0.05)
    assert got["measured_loudness"] == pytest.approx(-23.01, abs=0.01)  # the RMS level, as before
    assert md.format_fields(got, ("measured_loudness_lufs",)) == "-23.0 LUFS"


def test_rank_where_loudness_filters_on_lufs(tmp_path):
    cat = synth_catalog(tmp_path / "cat.h5", 12, seed=2, dim=16)
    lufs = [-20.0, -15.0, -14.0, -11.5, -8.0, -7.0] * 2
    with h5py.File(cat, "r+") as f:
        md.set_values(f, {i: {"measured_loudness_lufs": v} for i, v in enumerate(lufs) if i != 3}, 12,
                      origin="measured")
    res = CliRunner().invoke(app, ["rank", f"{cat}#item00000", str(cat), "--where", "loudness -14..-8", "-k", "12",
                                   "--format", "json"])
    assert res.exit_code == 0, res.stderr
    got = {r["id"] for r in json.loads(res.stdout)["results"]}
    # item 3 has no value: excluded by the filter on it
    assert got == {f"item{i:05d}" for i, v in enumerate(lufs) if -14 <= v <= -8 and i != 3}
    assert "--where: 7 of 12 items excluded (loudness -14..-8: 7)" in res.stderr
