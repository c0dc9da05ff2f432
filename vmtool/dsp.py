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

:func:`stft` and :func:`istft` are librosa 0.11's (its Hann window, framing, zero
padding, FFT batches and overlap-add order, in numpy and scipy.fft: the same numbers,
tests/test_spectral.py), centred for :func:`hpss` or not for the ``handcrafted``
extractor (:mod:`vmtool.features._spectral`). So :func:`hpss` imports neither librosa
nor scipy.signal: a process that has not loaded librosa (the parent of a media query,
which extracts while its child segments) can compute the HPSS the music segmentation
starts with, with the same numbers.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["median_filter", "hpss", "default_threads", "hann_window", "frame", "stft", "istft"]

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


_MAX_MEM_BLOCK = 2**8 * 2**10  # librosa.util.MAX_MEM_BLOCK


def hann_window(n: int) -> np.ndarray:
    """Periodic Hann window (``scipy.signal.get_window("hann", n, fftbins=True)``), float64."""
    fac = np.linspace(-np.pi, np.pi, n + 1)
    w = np.zeros(n + 1)
    for k, a in enumerate((0.5, 0.5)):  # scipy's general_cosine with a = [alpha, 1 - alpha]
        w += a * np.cos(k * fac)
    return w[:-1]


def frame(y: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """Overlapping frames of *y* as a view [shape=(frame_length, n_frames)] (``librosa.util.frame``)."""
    n = 1 + (y.shape[-1] - frame_length) // hop_length
    if n < 1:
        raise ValueError(f"signal of {y.shape[-1]} samples is shorter than one frame of {frame_length}")
    return np.lib.stride_tricks.as_strided(y, shape=(frame_length, n), strides=(y.strides[0], hop_length * y.strides[0]),
                                           writeable=False)


def _complex_dtype(real: np.dtype) -> np.dtype:
    # librosa.util.dtype_r2c: double precision stays double, anything else is single
    return np.dtype(np.complex128 if real == np.float64 else np.complex64)


def stft(y: np.ndarray, n_fft: int, hop_length: int, window: np.ndarray, *, center: bool = False) -> np.ndarray:
    """STFT of a float signal (``librosa.stft(y, n_fft=, hop_length=, window=window, center=center)``,
    zero padding): complex64 (complex128 for float64 *y*) [shape=(1 + n_fft // 2, n_frames)],
    Fortran-ordered. Frame ``j`` starts at sample ``j * hop_length``, or is centred on it
    with *center* (``n_fft // 2`` zeros before and after the signal).

    The FFTs are batched as librosa batches them, so the numbers are its own: with *center*,
    the frames reaching into the leading zeros are one batch, those reaching into the
    trailing zeros another (both cut from padded copies of the signal's ends), and the
    frames in between go in blocks of 256 KiB of samples (``librosa.util.MAX_MEM_BLOCK``).
    """
    head = tail = None
    if center:
        pad = n_fft // 2
        start_k = -(-pad // hop_length)  # the first frame not reaching into the leading zeros
        tail_k = (y.shape[-1] + pad - n_fft) // hop_length + 1  # the first one reaching the trailing zeros
        if tail_k <= start_k:  # a short signal: every frame touches the padding
            y = np.pad(y, (pad, pad))
        else:
            head = frame(np.pad(y[: (start_k - 1) * hop_length - pad + n_fft + 1], (pad, 0)), n_fft,
                         hop_length)[:, :start_k]
            if tail_k * hop_length - pad + n_fft <= y.shape[-1] + pad:
                tail = frame(np.pad(y[tail_k * hop_length - pad :], (0, pad)), n_fft, hop_length)
            y = y[start_k * hop_length - pad :]
    frames = frame(y, n_fft, hop_length)
    n_head = 0 if head is None else head.shape[1]
    n_tail = 0 if tail is None else tail.shape[1]
    out = np.zeros((1 + n_fft // 2, n_head + frames.shape[1] + n_tail), dtype=_complex_dtype(y.dtype), order="F")
    # librosa's FFT library (scipy.fft; numpy's differs by an ulp)
    from scipy import fft

    if head is not None:
        out[:, :n_head] = fft.rfft(window[:, None] * head, axis=-2)
    if tail is not None:
        out[:, out.shape[1] - n_tail :] = fft.rfft(window[:, None] * tail, axis=-2)
    step = max(1, _MAX_MEM_BLOCK // (frames.shape[0] * frames.itemsize))
    for a in range(0, frames.shape[1], step):
        b = min(a + step, frames.shape[1])
        out[:, n_head + a : n_head + b] = fft.rfft(window[:, None] * frames[:, a:b], axis=-2)
    return out


def _overlap_add(buf: np.ndarray, frames: np.ndarray, hop_length: int, first: int) -> None:
    """Add the columns of *frames* (frames ``first``, ``first + 1``... of length ``n_fft``) into
    *buf*, frame ``j`` at sample ``j * hop_length``, as librosa's overlap-add loop does: every
    sample receives its frames in frame order, rounded to *buf*'s dtype after each addition.
    *buf*'s length is a multiple of *hop_length* and reaches past the last frame's end."""
    n_fft, n = frames.shape
    blocks = buf.reshape(-1, hop_length)
    # part k of frame j lands in block j + k: one vectorised addition per part, the parts taken
    # from the last to the first so that each sample sees its earlier frames first
    for k in reversed(range(-(-n_fft // hop_length))):
        lo = k * hop_length
        width = min(hop_length, n_fft - lo)
        blocks[first + k : first + k + n, :width] += frames[lo : lo + width].T


def istft(spec: np.ndarray, hop_length: int, window: np.ndarray, length: int, *, center: bool = False,
          dtype: np.dtype | None = None) -> np.ndarray:
    """Inverse of :func:`stft` by windowed overlap-add, divided by the summed squared window
    where it is not tiny (``librosa.istft(spec, hop_length=, window=window, center=center,
    dtype=dtype, length=length)``): *dtype* (default float32 for complex64 *spec*, float64 for
    complex128) [shape=(length,)], *length* >= 1.

    The inverse FFTs are batched as librosa's (with *center*, the frames reaching into the
    leading zeros first, then blocks of 256 KiB of spectrum), and each sample adds its frames
    in frame order in *dtype*, so the numbers are librosa's.
    """
    n_fft = window.size
    if dtype is None:
        dtype = np.float64 if spec.dtype == np.complex128 else np.float32
    pad = n_fft // 2 if center else 0
    n_frames = min(spec.shape[-1], int(np.ceil((length + 2 * pad) / hop_length)))
    # the signal is built in padded coordinates (frame j at sample j * hop_length), in a buffer
    # long enough for every frame and the output, then cut
    n_blocks = max(n_frames + -(-n_fft // hop_length), -(-(pad + length) // hop_length))
    buf = np.zeros(n_blocks * hop_length, dtype=dtype)
    first = min(-(-pad // hop_length), n_frames)  # librosa's head batch (centred)
    step = max(1, _MAX_MEM_BLOCK // (spec.shape[0] * spec.itemsize))
    from scipy import fft

    batches = ([(0, first)] if first else []) + [(a, min(a + step, n_frames)) for a in range(first, n_frames, step)]
    for a, b in batches:
        _overlap_add(buf, window[:, None] * fft.irfft(spec[:, a:b], n=n_fft, axis=-2), hop_length, a)
    y = buf[pad : pad + length].copy()
    # librosa.filters.window_sumsquare: the same overlap-add of the squared window
    wss = np.zeros_like(buf)
    _overlap_add(wss, np.broadcast_to((window**2)[:, None], (n_fft, n_frames)), hop_length, 0)
    wss = wss[pad : pad + length]
    nonzero = wss > np.finfo(wss.dtype).tiny
    y[nonzero] /= wss[nonzero]
    return y


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
    side. The STFTs are :func:`stft` and :func:`istft`, centred (a periodic Hann window,
    zero padding): librosa is not imported. The results are librosa's numbers, bit
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
    threads = default_threads() if threads is None else max(1, int(threads))
    window = hann_window(n_fft)  # float64, as librosa's "hann"
    spectrum = stft(y, n_fft, hop_length, window, center=True)
    # the STFT is stored frequency-major (Fortran order, as librosa's): work on its C-ordered
    # transpose, frames x bins, so that every pass reads memory in order
    d = spectrum.T
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
    del spectrum, d, mag, harm, perc
    spec_h, spec_p = spec_h.T, spec_p.T
    out: dict[str, np.ndarray] = {}

    def inverse(name: str, spec: np.ndarray) -> None:
        out[name] = istft(spec, hop_length, window, len(y), center=True, dtype=y.dtype)

    _run([lambda: inverse("h", spec_h), lambda: inverse("p", spec_p)], threads)
    return out["h"], out["p"]
