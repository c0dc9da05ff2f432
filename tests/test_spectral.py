"""``vmtool.features._spectral``: librosa's filter banks, window, STFT and deltas in numpy.

The ``handcrafted`` extractor computes them without importing librosa or scipy.signal; its
features must stay the numbers librosa gives, so each piece is compared with librosa's (or
scipy's) own, bit for bit, on a real signal.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from vmtool.features import _spectral as S

SR, N_FFT, HOP = 12000, 512, 256


@pytest.fixture(scope="module")
def signal(music_video):
    """Eight seconds of a synthetic music video's sound at 12 kHz, float32, decoded as the extractor decodes it."""
    from vmtool import media

    return media.load_audio(music_video, SR).astype(np.float32)[: 8 * SR]


@pytest.fixture(scope="module")
def window():
    return S.hann_window(N_FFT).astype(np.float32)


def test_filter_banks_and_window_are_librosas():
    import librosa

    np.testing.assert_array_equal(S.fft_frequencies(SR, N_FFT), librosa.fft_frequencies(sr=SR, n_fft=N_FFT))
    for n_mels in (40, 96):
        mel = S.mel_filters(SR, N_FFT, n_mels)
        assert mel.dtype == np.float32
        np.testing.assert_array_equal(mel, librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=n_mels))
    chroma = S.chroma_filters(SR, N_FFT, 12)
    assert chroma.dtype == np.float32
    np.testing.assert_array_equal(chroma, librosa.filters.chroma(sr=SR, n_fft=N_FFT, n_chroma=12))
    np.testing.assert_array_equal(chroma, S.chroma_filters(SR, N_FFT))
    for n in (512, 2048):
        np.testing.assert_array_equal(S.hann_window(n), librosa.filters.get_window("hann", n, fftbins=True))


def test_stft_istft_and_frames_are_librosas(signal, window):
    import librosa

    spec = S.stft(signal, N_FFT, HOP, window)
    ref = librosa.stft(signal, n_fft=N_FFT, hop_length=HOP, center=False, window=window)
    assert spec.dtype == ref.dtype == np.complex64
    np.testing.assert_array_equal(spec, ref)
    masked = (ref * (np.abs(ref) > np.median(np.abs(ref)))).astype(np.complex64)  # as HPSS masks it
    for length in (signal.size, signal.size + 300, signal.size - 1000):
        y = S.istft(masked, HOP, window, length)
        assert y.dtype == np.float32 and y.shape == (length,)
        np.testing.assert_array_equal(
            y, librosa.istft(masked, hop_length=HOP, n_fft=N_FFT, center=False, window=window, length=length))
    np.testing.assert_array_equal(S.frame(signal, N_FFT, HOP), librosa.util.frame(signal, frame_length=N_FFT,
                                                                                  hop_length=HOP))


def test_deltas_are_librosas_away_from_the_ends(signal, window):
    """Exact from the 5th frame to the 5th last; the first and last four (a polynomial fit
    that the extractor's 32-frame margins never use) to float32 precision."""
    import librosa

    mel = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=96)
    power = np.abs(S.stft(signal, N_FFT, HOP, window)) ** 2
    mfcc = (np.random.default_rng(0).standard_normal((20, 96)).astype(np.float32)
            @ (10 * np.log10(np.maximum(mel @ power, 1e-10)))).astype(np.float32)
    for order in (1, 2):
        got = S.delta(mfcc, order)
        ref = librosa.feature.delta(mfcc, width=9, order=order, axis=-1, mode="interp")
        assert got.dtype == ref.dtype == np.float32 and got.shape == ref.shape
        np.testing.assert_array_equal(got[:, 4:-4], ref[:, 4:-4])
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        S.delta(mfcc, 3)


def test_the_stored_savitzky_golay_taps_are_scipys():
    from scipy.signal import savgol_coeffs

    for order in (1, 2):
        np.testing.assert_array_equal(S._SAVGOL9[order], savgol_coeffs(9, order, deriv=order))


def test_symmetric_smoothing_is_scipy_ndimages():
    """As chroma CENS smooths its quantised chroma (41-frame Hann window)."""
    from scipy.ndimage import convolve1d

    win = np.hanning(43)
    win = (win / win.sum()).astype(np.float32)
    rng = np.random.default_rng(1)
    for x in ((rng.integers(0, 5, (12, 300)) * 0.25).astype(np.float32), rng.random((12, 30)).astype(np.float32)):
        np.testing.assert_array_equal(S.smooth_symmetric(x, win), convolve1d(x, win, axis=1, mode="constant"))


def test_handcrafted_features_import_neither_librosa_nor_scipy_signal():
    """What lets a media query extract beside the music segmentation without importing them twice."""
    code = ("import sys, numpy as np\n"
            "from vmtool.features.handcrafted import frame_features\n"
            "x = np.random.default_rng(0).standard_normal(12000).astype(np.float32)\n"
            "assert frame_features(x).shape == (45, 406)\n"
            "print(sorted(m for m in ('librosa', 'scipy.signal', 'scipy.ndimage') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
