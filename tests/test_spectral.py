"""``vmtool.features._spectral``: librosa's filter banks, window, STFT and deltas in numpy.

The ``handcrafted`` extractor computes them without importing librosa or scipy.signal, and
``vmtool.dsp.hpss`` the centred STFTs (``vmtool.dsp``'s, re-exported by ``_spectral``); the
features and the HPSS must stay the numbers librosa gives, so each piece is compared with
librosa's (or scipy's) own, bit for bit, on a real signal.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

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


@pytest.fixture(scope="module")
def music_22k():
    """24 s of synthetic music at 22,050 Hz (what the music segmentation's HPSS receives), float32."""
    from vmtool import synth

    y, _ = synth.synth_music(duration=24.0, sr=22050, tempo=110.0, sections="AB", seed=3)
    return np.asarray(y, dtype=np.float32)


# lengths around the centred STFT's special cases at n_fft 2048, hop 512: shorter than a
# frame (every frame in the padding), exactly a few hops, odd, long (real-ish and noise)
CENTRED_LENGTHS = [1, 700, 2047, 2048, 4 * 512, 6 * 512, 2561, 7777, "music", "noise"]


@pytest.mark.parametrize("length", CENTRED_LENGTHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_centred_stft_and_istft_are_librosas(length, dtype, music_22k):
    """As vmtool.dsp.hpss calls them: librosa.stft / istft with n_fft 2048, hop 512, its
    float64 Hann window, centred with zeros; the inverse of a masked spectrum at the input's
    length, shorter and longer."""
    import librosa

    if length == "music":
        y = music_22k.astype(dtype)
    elif length == "noise":
        y = (0.2 * np.random.default_rng(7).standard_normal(24 * 22050)).astype(dtype)
    else:
        y = (0.2 * np.random.default_rng(length).standard_normal(length)).astype(dtype)
    window = S.hann_window(2048)
    spec = S.stft(y, 2048, 512, window, center=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns of signals shorter than n_fft
        ref = librosa.stft(y, n_fft=2048, hop_length=512)
    assert spec.dtype == ref.dtype == (np.complex64 if dtype == np.float32 else np.complex128)
    assert spec.shape == ref.shape and spec.flags.f_contiguous
    np.testing.assert_array_equal(spec, ref)
    assert spec.tobytes() == ref.tobytes()
    masked = np.asfortranarray((ref * (np.abs(ref) > np.median(np.abs(ref)))).astype(ref.dtype))
    for n in sorted({y.size, y.size + 1000, max(1, y.size - 1500)}):
        got = S.istft(masked, 512, window, n, center=True, dtype=dtype)
        want = librosa.istft(masked, n_fft=2048, hop_length=512, dtype=dtype, length=n)
        assert got.dtype == want.dtype == dtype and got.shape == want.shape == (n,)
        np.testing.assert_array_equal(got, want)
        assert got.tobytes() == want.tobytes()


def test_uncentred_istft_with_a_double_window_is_librosas(signal):
    """The overlap-add adds the double-precision windowed frames to the float32 signal (one
    rounding per addition, as librosa's loop), not frames rounded to float32 first."""
    import librosa

    window = S.hann_window(N_FFT)
    ref = librosa.stft(signal, n_fft=N_FFT, hop_length=HOP, center=False)
    np.testing.assert_array_equal(S.stft(signal, N_FFT, HOP, window), ref)
    for length in (signal.size, signal.size + 300):
        got = S.istft(ref, HOP, window, length)
        want = librosa.istft(ref, hop_length=HOP, n_fft=N_FFT, center=False, length=length)
        assert got.tobytes() == want.tobytes()


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


@pytest.mark.parametrize("call", [
    # a media query extracts beside the music segmentation without importing them twice
    "from vmtool.features.handcrafted import frame_features\n"
    "assert frame_features(x[:12000]).shape == (45, 406)\n",
    # and its parent computes the HPSS the music segmentation starts with (vmtool.dsp)
    "from vmtool.dsp import hpss\n"
    "h, p = hpss(x)\n"
    "assert h.shape == p.shape == x.shape\n",
], ids=["handcrafted", "hpss"])
def test_handcrafted_features_and_hpss_import_neither_librosa_nor_scipy_signal(call):
    code = ("import sys, numpy as np\n"
            "x = np.random.default_rng(0).standard_normal(22050).astype(np.float32)\n"
            + call +
            "print(sorted(m for m in ('librosa', 'scipy.signal', 'scipy.ndimage') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
