"""Signal-processing pieces shared by extractors and segmenters.

The median filters of harmonic/percussive separation (HPSS) dominate the cost of both
the ``handcrafted`` extractor and MSAF's features (about two thirds of a music-structure
segmentation). :func:`median_filter` computes the same values as
``scipy.ndimage.median_filter(x, size, mode="reflect")`` along one axis with a sorted
sliding window (a numba loop, O(size) per output value instead of a full selection),
and :func:`hpss` is ``librosa.effects.hpss`` with its defaults built on it: the medians
are selections, not sums, so the results are the same numbers.
"""

from __future__ import annotations

import numpy as np

__all__ = ["median_filter", "hpss"]

_kernel = None


def _compile():
    global _kernel
    if _kernel is None:
        from numba import njit

        @njit(cache=True, nogil=True)
        def rows(xp, size, out):  # pragma: no cover - compiled
            """Median of every window of *size* along the rows of the padded *xp*."""
            n_rows, n_out = out.shape
            h = size // 2
            buf = np.empty(size, dtype=xp.dtype)
            for r in range(n_rows):
                for k in range(size):
                    buf[k] = xp[r, k]
                buf.sort()
                out[r, 0] = buf[h]
                for j in range(1, n_out):
                    old = xp[r, j - 1]
                    new = xp[r, j + size - 1]
                    # position of one element equal to `old` (binary search)
                    lo, hi = 0, size - 1
                    while lo < hi:
                        mid = (lo + hi) // 2
                        if buf[mid] < old:
                            lo = mid + 1
                        else:
                            hi = mid
                    # remove it and insert `new`, keeping the buffer sorted
                    p = lo
                    if new > old:
                        while p + 1 < size and buf[p + 1] < new:
                            buf[p] = buf[p + 1]
                            p += 1
                    else:
                        while p > 0 and buf[p - 1] > new:
                            buf[p] = buf[p - 1]
                            p -= 1
                    buf[p] = new
                    out[r, j] = buf[h]

        _kernel = rows
    return _kernel


def median_filter(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Median filter of odd *size* along *axis* of a 2-D array, edges mirrored.

    Parameters
    ----------
    x : np.ndarray [shape=(n, m)], float32 or float64, finite
    size : int, odd, >= 1
    axis : 0 or 1

    Returns
    -------
    np.ndarray [shape=(n, m)], x's dtype
        Equal to ``scipy.ndimage.median_filter(x, size=(size, 1) or (1, size),
        mode="reflect")`` (edges ``d c b a | a b c d | d c b a``).
    """
    x = np.asarray(x)
    if x.ndim != 2 or axis not in (0, 1):
        raise ValueError(f"median_filter needs a 2-D array and axis 0 or 1, got shape {x.shape}, axis {axis}")
    if size < 1 or size % 2 == 0:
        raise ValueError(f"median_filter needs an odd size >= 1, got {size}")
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    a = x if axis == 1 else x.T
    h = size // 2
    n = a.shape[1]
    if n == 0 or a.shape[0] == 0:
        return x.copy()
    # mirror padding; tiles the reflection when the window is longer than the signal
    idx = np.arange(-h, n + h)
    period = 2 * n
    idx = np.mod(idx, period)
    idx = np.where(idx >= n, period - 1 - idx, idx)
    xp = np.ascontiguousarray(a[:, idx])
    out = np.empty(a.shape, dtype=a.dtype)
    _compile()(xp, size, out)
    return out if axis == 1 else np.ascontiguousarray(out.T)


def hpss(y: np.ndarray, *, n_fft: int = 2048, hop_length: int = 512, kernel_size: int = 31) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic and percussive signals of *y*: ``librosa.effects.hpss(y)`` with its defaults.

    Soft masks with power 2 and margin 1 (zeros split evenly), as librosa; only the
    median filters differ in how they are computed (see :func:`median_filter`).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float
    n_fft, hop_length, kernel_size : int
        librosa's defaults.

    Returns
    -------
    (y_harmonic, y_percussive) : np.ndarray [shape=(n,)] each, y's dtype
    """
    import librosa

    stft = librosa.stft(y, n_fft=n_fft, hop_length=hop_length)
    mag, phase = librosa.magphase(stft)
    harm = median_filter(mag, kernel_size, axis=1)
    perc = median_filter(mag, kernel_size, axis=0)
    mask_h = librosa.util.softmask(harm, perc, power=2, split_zeros=True)
    mask_p = librosa.util.softmask(perc, harm, power=2, split_zeros=True)
    y_h = librosa.istft((mag * mask_h) * phase, dtype=y.dtype, n_fft=n_fft, hop_length=hop_length, length=len(y))
    y_p = librosa.istft((mag * mask_p) * phase, dtype=y.dtype, n_fft=n_fft, hop_length=hop_length, length=len(y))
    return y_h, y_p
