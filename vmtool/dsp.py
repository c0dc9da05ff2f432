"""Signal-processing pieces shared by extractors and segmenters.

The median filters of harmonic/percussive separation (HPSS) dominate the cost of both
the ``handcrafted`` extractor and MSAF's features (about two thirds of a music-structure
segmentation). :func:`median_filter` computes the same values as
``scipy.ndimage.median_filter(x, size, mode="reflect")`` along one axis with a sorted
sliding window (a numba loop, O(size) per output value instead of a full selection),
and :func:`hpss` is ``librosa.effects.hpss`` with its defaults built on it: the medians
are selections, not sums, so the results are the same numbers.

Around the medians, librosa's HPSS made about a dozen passes over the complex
spectrogram (magnitude and phase, two soft masks, two masked spectra), each across its
Fortran-ordered layout; :func:`hpss` does them in one numba pass over the C-ordered
transpose with the same operations in the same order and precision (bit-identical output),
filters rows or column blocks in place of padded copies, and runs the filters and the
two inverse STFTs in threads (:func:`default_threads`). That took msaf's features from
0.95-0.98 to 0.67-0.71 CPU-seconds per audio-minute (docs/performance.md,
"Segmentation: MSAF music structure").

Its STFT and inverse STFT are :mod:`vmtool.features._spectral`'s centred ones (librosa's
framing, zero padding, FFT batches and overlap-add order, in numpy and scipy.fft), so
:func:`hpss` imports neither librosa nor scipy.signal: a process that has not loaded
librosa (the parent of a media query, which extracts while its child segments) can
compute the HPSS the music segmentation starts with, with the same numbers.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["median_filter", "hpss", "default_threads"]

_kernels: dict[str, object] = {}
# the sorted-window step, a module global rather than a closure variable of the kernels that
# inline it: numba keys a closure's cache entry on its free variables, which differ in every
# process, so a closure over it was compiled again by every process (about 1.7 s per command)
_slide = None


def _compile() -> dict[str, object]:
    """The numba kernels (compiled on first use, machine code cached on disk)."""
    if not _kernels:
        from numba import njit

        global _slide

        @njit(cache=True, nogil=True, inline="always")
        def _slide(buf, old, new):  # pragma: no cover - compiled
            """Replace one element equal to *old* by *new* in the sorted window *buf*."""
            size = buf.shape[0]
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

        @njit(cache=True, nogil=True)
        def rows(x, idx, size, out, r0, r1):  # pragma: no cover - compiled
            """Median of every window of *size* along rows r0..r1 of *x*; ``idx`` maps
            padded positions to columns (mirrored edges). *x* and *out* may be strided."""
            n_out = out.shape[1]
            h = size // 2
            buf = np.empty(size, dtype=x.dtype)
            for r in range(r0, r1):
                for k in range(size):
                    buf[k] = x[r, idx[k]]
                buf.sort()
                out[r, 0] = buf[h]
                for j in range(1, n_out):
                    _slide(buf, x[r, idx[j - 1]], x[r, idx[j + size - 1]])
                    out[r, j] = buf[h]

        @njit(cache=True, nogil=True)
        def cols(x, idx, size, out, c0, c1):  # pragma: no cover - compiled
            """:func:`rows` along the first axis of a C-ordered *x*, for columns c0..c1: the
            columns are filtered side by side, so every step reads one contiguous run of
            *x* (a spectrogram stored time-major, filtered along time)."""
            n_out = out.shape[0]
            nc = c1 - c0
            h = size // 2
            buf = np.empty((nc, size), dtype=x.dtype)
            for k in range(size):
                for c in range(nc):
                    buf[c, k] = x[idx[k], c0 + c]
            for c in range(nc):
                buf[c].sort()
                out[0, c0 + c] = buf[c, h]
            for j in range(1, n_out):
                jo = idx[j - 1]
                jn = idx[j + size - 1]
                for c in range(nc):
                    b = buf[c]
                    _slide(b, x[jo, c0 + c], x[jn, c0 + c])
                    out[j, c0 + c] = b[h]

        @njit(cache=True, nogil=True)
        def masked(stft, mag, harm, perc, out_h, out_p, r0, r1, tiny, one, half):  # pragma: no cover
            """librosa.decompose.hpss's last step for rows r0..r1 (all arrays C-ordered, one
            layout), the same operations in the same order and precision (*tiny*, *one* and
            *half* of the magnitudes' dtype): the phase ``D / |D|`` (magphase), the soft
            masks (util.softmask, power 2, zeros split) and ``(|D| * mask) * phase``."""
            for r in range(r0, r1):
                for j in range(stft.shape[1]):
                    d = stft[r, j]
                    m = mag[r, j]
                    if m == 0:
                        pr = d.real / (m + one) + one
                        pi = d.imag / (m + one)
                    else:
                        pr = d.real / m
                        pi = d.imag / m
                    a = harm[r, j]
                    b = perc[r, j]
                    z = a if a >= b else b
                    if z < tiny:
                        mh = half
                        mp = half
                    else:
                        qa = a / z
                        qb = b / z
                        qa = qa * qa
                        qb = qb * qb
                        mh = qa / (qa + qb)
                        mp = qb / (qb + qa)
                    ah = m * mh
                    ap = m * mp
                    out_h[r, j] = complex(ah * pr, ah * pi)
                    out_p[r, j] = complex(ap * pr, ap * pi)

        _kernels["rows"] = rows
        _kernels["cols"] = cols
        _kernels["masked"] = masked
    return _kernels


def default_threads() -> int:
    """Threads for :func:`median_filter` and :func:`hpss`: the cores this process may use, at most 4."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not on Linux
        n = os.cpu_count() or 1
    return max(1, min(4, n))


def _row_blocks(n_rows: int, parts: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, n_rows, max(1, min(parts, n_rows)) + 1).astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _run(jobs: list, threads: int) -> None:
    """Run the zero-argument callables *jobs* (numba kernels that release the GIL)."""
    if threads <= 1 or len(jobs) <= 1:
        for job in jobs:
            job()
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(threads, len(jobs))) as pool:
        for f in [pool.submit(job) for job in jobs]:
            f.result()


def _median_jobs(x: np.ndarray, size: int, axis: int, out: np.ndarray, parts: int) -> list:
    """Kernel calls filling *out* with the median filter of the C-ordered 2-D *x* along
    *axis*, in *parts* blocks of rows (axis 1) or columns (axis 0)."""
    h = size // 2
    n = x.shape[axis]
    # mirrored edges; tiles the reflection when the window is longer than the signal
    idx = np.mod(np.arange(-h, n + h), 2 * n)
    idx = np.where(idx >= n, 2 * n - 1 - idx, idx).astype(np.int64)
    kernel = _compile()["rows" if axis == 1 else "cols"]
    # blocks of columns small enough for their sorted windows to stay in the L1 cache
    blocks = _row_blocks(x.shape[1 - axis], parts if axis == 1 else max(parts, -(-x.shape[1] // 64)))
    return [lambda a=a, b=b: kernel(x, idx, size, out, a, b) for a, b in blocks]


def median_filter(x: np.ndarray, size: int, axis: int, *, threads: int = 1) -> np.ndarray:
    """Median filter of odd *size* along *axis* of a 2-D array, edges mirrored.

    Parameters
    ----------
    x : np.ndarray [shape=(n, m)], float32 or float64, finite
    size : int, odd, >= 1
    axis : 0 or 1
    threads : int >= 1
        Row blocks filtered in parallel threads; the result does not depend on it.

    Returns
    -------
    np.ndarray [shape=(n, m)], x's dtype, C-ordered
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
    if x.size == 0:
        return x.copy()
    if not x.flags.c_contiguous and x.flags.f_contiguous:  # filter the C-ordered transpose
        # C-ordered result whatever the input's layout: the numpy reductions callers run on
        # it (handcrafted's spectral centroid...) then add in the same order as before
        return np.ascontiguousarray(median_filter(x.T, size, 1 - axis, threads=threads).T)
    x = np.ascontiguousarray(x)
    out = np.empty(x.shape, dtype=x.dtype)
    _run(_median_jobs(x, size, axis, out, max(1, int(threads))), threads)
    return out


def hpss(
    y: np.ndarray,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
    kernel_size: int = 31,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic and percussive signals of *y*: ``librosa.effects.hpss(y)`` with its defaults.

    Soft masks with power 2 and margin 1 (zeros split evenly), as librosa. The median
    filters are :func:`median_filter`'s; the phase, the two masks and the masked spectra
    are computed in one pass (a numba loop doing librosa's operations in its
    order and precision) instead of librosa's dozen array passes; the two inverse STFTs run side by
    side. The STFTs are :mod:`vmtool.features._spectral`'s centred ones (a periodic Hann
    window, zero padding): librosa is not imported. The results are librosa's numbers, bit
    for bit (tests/test_dsp.py).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float
    n_fft, hop_length, kernel_size : int
        librosa's defaults.
    threads : int, optional
        Parallel threads (default :func:`default_threads`); the result does not depend on it.

    Returns
    -------
    (y_harmonic, y_percussive) : np.ndarray [shape=(n,)] each, y's dtype
    """
    from vmtool.features import _spectral

    threads = default_threads() if threads is None else max(1, int(threads))
    window = _spectral.hann_window(n_fft)  # float64, as librosa's "hann"
    stft = _spectral.stft(y, n_fft, hop_length, window, center=True)
    # the STFT is stored frequency-major (Fortran order, as librosa's): work on its C-ordered
    # transpose, frames x bins, so that every pass reads memory in order
    d = stft.T
    if not d.flags.c_contiguous:  # pragma: no cover - the STFT's layout changed
        d = np.ascontiguousarray(d)
    mag = np.abs(d)
    harm = np.empty_like(mag)  # median along time: axis 0 here
    perc = np.empty_like(mag)  # median along frequency: axis 1 here
    _run(_median_jobs(mag, kernel_size, 0, harm, threads) + _median_jobs(mag, kernel_size, 1, perc, threads),
         threads)
    spec_h = np.empty_like(d)
    spec_p = np.empty_like(d)
    masked = _compile()["masked"]
    real = mag.dtype.type
    consts = (real(np.finfo(mag.dtype).tiny), real(1.0), real(0.5))  # softmask's, in the spectrum's precision
    _run([lambda r0=r0, r1=r1: masked(d, mag, harm, perc, spec_h, spec_p, r0, r1, *consts)
          for r0, r1 in _row_blocks(d.shape[0], threads)], threads)
    del stft, d, mag, harm, perc
    spec_h, spec_p = spec_h.T, spec_p.T
    out: dict[str, np.ndarray] = {}

    def inverse(name: str, spec: np.ndarray) -> None:
        out[name] = _spectral.istft(spec, hop_length, window, len(y), center=True, dtype=y.dtype)

    _run([lambda: inverse("h", spec_h), lambda: inverse("p", spec_p)], threads)
    return out["h"], out["p"]
