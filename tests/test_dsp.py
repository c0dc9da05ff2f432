"""vmtool.dsp: the fast median filter and HPSS give librosa's / SciPy's exact numbers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage

from vmtool.dsp import hpss, median_filter


@pytest.mark.parametrize("shape", [(40, 57), (3, 2), (1, 1), (2, 40)])
@pytest.mark.parametrize("size", [1, 3, 31])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 3])
def test_median_filter_equals_scipy_reflect(shape, size, axis, dtype, threads):
    rng = np.random.default_rng(sum(shape) * size + axis)
    x = rng.random(shape).astype(dtype)
    x[:, ::3] = x[:, :1]  # ties
    x[::4] = 0.0          # runs of equal values
    if threads > 1:
        x = np.asfortranarray(x)  # librosa's spectrogram layout: filtered through its transpose
    got = median_filter(x, size, axis, threads=threads)
    assert got.dtype == x.dtype and got.shape == x.shape
    # C-ordered whatever the input: callers' reductions over it (handcrafted) add in one order
    assert got.flags.c_contiguous
    # definition: mirror the edges (tiled when the window is longer than the signal)
    h = size // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (h, h)
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, pad, mode="symmetric"), size, axis=axis)
    np.testing.assert_array_equal(got, np.median(windows, axis=-1))
    if h <= 2 * shape[axis]:  # SciPy reads uninitialised memory beyond that (seen with size 31 on 2 values)
        ref = scipy.ndimage.median_filter(x, size=(size, 1) if axis == 0 else (1, size), mode="reflect")
        np.testing.assert_array_equal(got, ref)


def test_median_filter_rejects_bad_arguments():
    with pytest.raises(ValueError, match="odd size"):
        median_filter(np.zeros((3, 3)), 4, 0)
    with pytest.raises(ValueError, match="2-D"):
        median_filter(np.zeros(3), 3, 0)


@pytest.mark.parametrize("threads, dtype", [(1, np.float32), (2, np.float32), (2, np.float64)])
def test_hpss_equals_librosa(threads, dtype):
    import librosa

    rng = np.random.default_rng(1)
    sr = 22050
    t = np.arange(sr * 3) / sr
    y = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    y[:: sr // 4] += 1.0  # clicks
    y = y.astype(dtype)
    # and an odd length of 8 frames (the fewest for which SciPy's median filter of 31 along
    # time stays inside its mirrored edges; below that librosa's result is undefined)
    for x in (y, y[:4001]):
        ref_h, ref_p = librosa.effects.hpss(x)
        h, p = hpss(x, threads=threads)
        assert h.dtype == p.dtype == dtype and h.shape == p.shape == x.shape
        np.testing.assert_array_equal(h, ref_h)
        np.testing.assert_array_equal(p, ref_p)
        assert h.tobytes() == ref_h.tobytes() and p.tobytes() == ref_p.tobytes()


def test_kernels_are_loaded_from_numbas_cache_by_a_second_process(tmp_path):
    """A one-file command (a media query) must not compile the median kernels again: the
    second process finds every kernel in numba's on-disk cache (nothing new saved)."""
    import os
    import subprocess
    import sys

    code = ("import numpy as np; from vmtool import dsp; x = np.random.rand(40, 60).astype(np.float32); "
            "dsp.median_filter(x, 5, 0); dsp.median_filter(x, 5, 1); "
            "dsp.median_filter(np.asfortranarray(x), 5, 1, threads=2)")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "NUMBA_DEBUG_CACHE": "1"}
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            for _ in range(2)]
    assert "data saved" in runs[0].stdout + runs[0].stderr
    saved = [line for line in (runs[1].stdout + runs[1].stderr).splitlines() if "data saved" in line and "dsp" in line]
    assert saved == []
