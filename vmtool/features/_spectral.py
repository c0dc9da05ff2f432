"""The librosa pieces of the ``handcrafted`` extractor, in numpy, with librosa's arithmetic.

``librosa`` loads numba's compiled kernels and ``scipy.signal`` when it is imported
(most of the extraction's first-call cost in a one-file ``vmtool rank`` of a 24-s clip:
2.7 of 2.9 profiled seconds, docs/performance.md, "Start-up"), for a few filter banks,
a window and the framing of the STFT. The functions here compute those with the
same operations in the same order and precision as librosa 0.11 (and scipy's Hann
window and Savitzky-Golay filter; the FFTs are scipy.fft's, librosa's FFT library, a
light import), so the extractor's features are the same numbers;
tests/test_spectral.py compares each one with librosa's, bit for bit, on real input.

Without librosa, the extraction of a media query runs beside the music segmentation
(which needs librosa for msaf) without paying for the same imports twice
(:func:`vmtool.pipeline.process_media`). The window, framing and STFTs are
:mod:`vmtool.dsp`'s (re-exported here), which :func:`vmtool.dsp.hpss` uses too.
"""

from __future__ import annotations

import math

import numpy as np

# the window and STFTs live in vmtool.dsp (below the extractors: vmtool.dsp.hpss uses them too)
from vmtool.dsp import frame, hann_window, istft, stft

__all__ = ["fft_frequencies", "mel_filters", "chroma_filters", "hann_window", "stft", "istft", "frame", "delta",
           "smooth_symmetric"]

# scipy.signal.savgol_coeffs(9, order, deriv=order), the filters of
# librosa.feature.delta(width=9, order=1|2), as scipy 1.16-1.17 computes them: a
# least-squares solve, so they are the exact fractions (k / 60; (3k^2 - 20) / 462) give or
# take an ulp, and not quite (anti)symmetric (scipy.ndimage treats them as such, within
# one double epsilon). tests/test_spectral.py checks them against scipy.
_SAVGOL9 = {
    order: np.array([float.fromhex(h) for h in taps]) for order, taps in {
        1: ("0x1.1111111111111p-4", "0x1.999999999999cp-5", "0x1.1111111111110p-5", "0x1.111111111110fp-6",
            "-0x1.8000000000000p-57", "-0x1.1111111111115p-6", "-0x1.1111111111114p-5", "-0x1.999999999999cp-5",
            "-0x1.1111111111112p-4"),
        2: ("0x1.f07c1f07c1f07p-5", "0x1.f07c1f07c1f13p-7", "-0x1.1bb4a4046ed25p-6", "-0x1.2d6fee44b5bf8p-5",
            "-0x1.62a1cd058a870p-5", "-0x1.2d6fee44b5bf8p-5", "-0x1.1bb4a4046ed21p-6", "0x1.f07c1f07c1f0ep-7",
            "0x1.f07c1f07c1f08p-5"),
    }.items()
}


def fft_frequencies(sr: float, n_fft: int) -> np.ndarray:
    """Centre frequency of each STFT bin, Hz (``librosa.fft_frequencies``)."""
    return np.fft.rfftfreq(n=n_fft, d=1.0 / sr)


def _hz_to_mel(f):
    # Slaney's scale (librosa.hz_to_mel, htk=False): linear below 1 kHz, logarithmic above
    f = np.asanyarray(f)
    f_sp = 200.0 / 3
    mels = (f - 0.0) / f_sp
    min_log_mel = (1000.0 - 0.0) / f_sp
    logstep = np.log(6.4) / 27.0
    if f.ndim:
        log_t = f >= 1000.0
        mels[log_t] = min_log_mel + np.log(f[log_t] / 1000.0) / logstep
    elif f >= 1000.0:
        mels = min_log_mel + np.log(f / 1000.0) / logstep
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3
    freqs = 0.0 + f_sp * mels
    min_log_mel = (1000.0 - 0.0) / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = mels >= min_log_mel
    freqs[log_t] = 1000.0 * np.exp(logstep * (mels[log_t] - min_log_mel))
    return freqs


def mel_filters(sr: float, n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney-normalised triangular mel filters from 0 Hz to Nyquist
    (``librosa.filters.mel(sr=, n_fft=, n_mels=)``), float32 [shape=(n_mels, 1 + n_fft // 2)]."""
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    fftfreqs = fft_frequencies(sr, n_fft)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(float(sr) / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    return weights


def chroma_filters(sr: float, n_fft: int, n_chroma: int = 12) -> np.ndarray:
    """Gaussian chroma bumps per STFT bin, weighted around octave 5 (2 octaves wide), columns
    L2-normalised, starting at C (``librosa.filters.chroma(sr=, n_fft=, n_chroma=)``),
    float32 [shape=(n_chroma, 1 + n_fft // 2)]."""
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    a440 = 440.0 * 2.0 ** (0.0 / n_chroma)
    frqbins = n_chroma * np.log2(frequencies / (float(a440) / 16))
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    d = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    half = np.round(float(n_chroma) / 2)
    d = np.remainder(d + half + 10 * n_chroma, n_chroma) - half
    wts = np.exp(-0.5 * (2 * d / np.tile(binwidthbins, (n_chroma, 1))) ** 2)
    # librosa.util.normalize(norm=2, axis=0): columns below the smallest normal number stay as they are
    length = np.sum(np.abs(wts).astype(float) ** 2, axis=0, keepdims=True) ** (1.0 / 2)
    length[length < np.finfo(wts.dtype).tiny] = 1.0
    normed = np.empty_like(wts)
    normed[:] = wts / length
    normed *= np.tile(np.exp(-0.5 * (((frqbins / n_chroma - 5.0) / 2) ** 2)), (n_chroma, 1))
    normed = np.roll(normed, -3 * (n_chroma // 12), axis=0)
    return np.ascontiguousarray(normed[:, : int(1 + n_fft / 2)], dtype=np.float32)


def smooth_symmetric(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Rows of *x* filtered with symmetric odd-length *weights*, zeros beyond the ends
    (``scipy.ndimage.convolve1d(x, weights, axis=1, mode="constant")``): accumulated in
    float64 as scipy's symmetric-filter loop does, returned in *x*'s dtype."""
    return _filter_rows(x, np.asarray(weights, dtype=np.float64), sign=1)


def _filter_rows(x: np.ndarray, w: np.ndarray, sign: int) -> np.ndarray:
    # scipy.ndimage's correlate1d for a symmetric (sign=1) or antisymmetric (sign=-1) filter
    # of length 2h+1: out[t] = x[t] w[h] + sum over j = h..1 of (x[t-j] + sign x[t+j]) w[h-j]
    # in that order (convolve1d reverses the weights: w[h-j] of the reversed filter is
    # w[h+j] of the given one), in float64, then cast to the input's dtype
    h = w.size // 2
    wr = w[::-1]
    n = x.shape[-1]
    xp = np.zeros((*x.shape[:-1], n + 2 * h), dtype=np.float64)
    xp[..., h : h + n] = x
    acc = xp[..., h : h + n] * wr[h]
    for j in range(h, 0, -1):
        left = xp[..., h - j : h - j + n]
        right = xp[..., h + j : h + j + n]
        acc = acc + ((left + right) if sign > 0 else (left - right)) * wr[h - j]
    return acc.astype(x.dtype)


def delta(x: np.ndarray, order: int) -> np.ndarray:
    """First (*order* 1) or second (*order* 2) derivative along the last axis by a 9-frame
    Savitzky-Golay filter of that polynomial order (``librosa.feature.delta(x, width=9,
    order=order, mode="interp")``), in *x*'s dtype.

    Frames 4 and more from each end are librosa's numbers exactly; within 4 frames of an
    end librosa fits a polynomial to the first (last) 9 frames, done here with numpy's
    least squares (equal to about 1e-6 relative). The ``handcrafted`` extractor keeps 32
    frames of context on each side of a chunk and drops them, so it never uses those.
    """
    if order not in _SAVGOL9:
        raise ValueError(f"order must be 1 or 2, got {order}")
    width, half = 9, 4
    n = x.shape[-1]
    if n < width:
        raise ValueError(f"delta needs at least {width} frames, got {n}")
    out = _filter_rows(x, _SAVGOL9[order], sign=-1 if order == 1 else 1)
    # the edges: the order-th derivative of a polynomial of that order fitted to the end frames
    # is a constant, order! times its leading coefficient
    t = np.arange(width, dtype=np.float64)
    for lo, cols in ((0, slice(0, half)), (n - width, slice(n - half, n))):
        block = x[..., lo : lo + width].astype(np.float64).reshape(-1, width)
        lead = np.polyfit(t, block.T, order)[0] * math.factorial(order)
        out[..., cols] = lead.reshape(*x.shape[:-1], 1).astype(x.dtype)
    return out
