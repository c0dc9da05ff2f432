"""Rhythmic segmentations: beats, bars and fixed windows.

Beats come from librosa's dynamic-programming beat tracker
(:func:`librosa.beat.beat_track`) on the onset-strength envelope, with the tempo
estimated as :func:`librosa.feature.tempo` does (in bounded memory). Bars are every ``N`` beats from an
estimated downbeat: ``N`` (beats per bar) and the phase of the first downbeat are
chosen from beat-synchronous evidence (see :func:`bars`).

Glossary (as in librosa): ``sr`` is the audio sample rate in Hz, ``hop_length`` the
analysis hop in samples, ``tempo`` in beats per minute; times are always in seconds.
"""

from __future__ import annotations

import math
import time

import numpy as np

from vmtool.errors import ParameterError
from vmtool.segmentation.base import Segmentation, check_audio, clean_boundaries

__all__ = ["beats", "bars", "fixed", "METERS", "N_FFT", "HOP_LENGTH"]

#: beats-per-bar candidates when :func:`bars` estimates the meter
METERS = (2, 3, 4)
#: STFT size (samples) of the features used to find downbeats
N_FFT = 2048
#: default analysis hop (samples)
HOP_LENGTH = 512
#: upper edge (Hz) of the low band whose onsets mark kicks and bass notes
_LOW_BAND_HZ = 150.0
#: beats of context on each side when measuring a harmony change at a beat
_CHROMA_CONTEXT = 2
#: fewer beats than this: the meter is not estimated (4 is assumed)
_MIN_BEATS_FOR_METER = 8


def _check_min_duration(min_duration) -> float:
    try:
        v = float(min_duration)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v >= 0):
        raise ParameterError(f"min_duration must be >= 0, got {min_duration!r}")
    return v


def _check_hop(hop_length) -> int:
    if not isinstance(hop_length, (int, np.integer)) or hop_length < 1:
        raise ParameterError(f"hop_length must be a positive integer, got {hop_length!r}")
    return int(hop_length)


ONSET_N_FFT = 2048  # librosa.onset.onset_strength's default
ONSET_N_MELS = 128


def onset_strength(y: np.ndarray, sr: int, hop_length: int = HOP_LENGTH, *,
                   chunk_frames: int = 8192) -> np.ndarray:
    """librosa's default onset-strength envelope of *y*, with the spectrogram computed in chunks.

    ``librosa.onset.onset_strength(y=y)`` builds the whole STFT first: 1025 complex
    bins per 512-sample hop, 2.5 GB for two hours at 22,050 Hz. Here the mel power
    spectrogram (128 bands, 160 MB for two hours) is computed *chunk_frames* frames at
    a time, from exactly the samples librosa's centred, zero-padded frames hold; then,
    in place and chunk by chunk, librosa's remaining steps: dB with its 80-dB floor
    under the global maximum, positive first difference, mean over bands, centring.

    Returns
    -------
    np.ndarray [shape=(1 + len(y) // hop_length,)]
        Equal to librosa's envelope up to float rounding.
    """
    import librosa

    half = ONSET_N_FFT // 2
    n_frames = 1 + y.size // hop_length
    mel = np.empty((ONSET_N_MELS, n_frames), dtype=np.float32)
    for a in range(0, n_frames, chunk_frames):
        b = min(n_frames, a + chunk_frames)
        lo, hi = a * hop_length - half, (b - 1) * hop_length + half  # sample span of frames a..b-1
        seg = np.zeros(hi - lo, dtype=np.float32)
        s0, s1 = max(lo, 0), min(hi, y.size)
        if s1 > s0:
            seg[s0 - lo : s1 - lo] = y[s0:s1]
        mel[:, a:b] = librosa.feature.melspectrogram(y=seg, sr=sr, n_fft=ONSET_N_FFT, hop_length=hop_length,
                                                     n_mels=ONSET_N_MELS, center=False)
    # librosa.power_to_db (ref 1, amin 1e-10, an 80-dB floor under the global maximum), the
    # positive first difference averaged over bands, then the centring shift of
    # onset_strength (lag 1 + n_fft / (2 hop) frames of zeros) -- chunk by chunk, in place
    amin, top_db = 1e-10, 80.0
    floor = 10.0 * np.log10(max(amin, float(mel.max()))) - top_db if n_frames else 0.0
    env = np.zeros(n_frames, dtype=np.float32)
    shift = 1 + ONSET_N_FFT // (2 * hop_length)
    prev = None
    for a in range(0, n_frames, chunk_frames):
        db = mel[:, a : a + chunk_frames]
        np.maximum(db, amin, out=db)
        np.log10(db, out=db)
        db *= 10.0
        np.maximum(db, floor, out=db)
        both = db if prev is None else np.concatenate([prev, db], axis=1)
        diff = np.maximum(0.0, both[:, 1:] - both[:, :-1]).mean(axis=0)
        start = a + shift if prev is None else a - 1 + shift  # diff[0] is frame (a or a-1) + 1
        stop = min(n_frames, start + diff.size)
        if stop > start:
            env[start:stop] = diff[: stop - start]
        prev = db[:, -1:].copy()
    return env


def global_tempo(oenv: np.ndarray, sr: int, hop_length: int = HOP_LENGTH, *, chunk_frames: int = 4096) -> float:
    """librosa's global tempo estimate (BPM) from an onset envelope, in bounded memory.

    ``librosa.feature.tempo`` builds the whole autocorrelation tempogram (an 8-s window
    of 345 lags per frame, autocorrelated through a complex FFT of twice that size)
    before averaging it over time: 1.7 GB of peak memory for 30 minutes of audio. The
    time average is accumulated here *chunk_frames* frames at a time from the same
    centred, linear-ramp-padded frames, and librosa picks the tempo from it with its
    usual log-normal prior around 120 BPM.
    """
    import librosa
    import scipy.signal

    oenv = np.asarray(oenv, dtype=np.float64)
    win = int(librosa.time_to_frames(8.0, sr=sr, hop_length=hop_length))  # tempo's ac_size
    n = oenv.size
    padded = np.pad(oenv, (win // 2, win // 2), mode="linear_ramp", end_values=(0, 0))
    window = scipy.signal.get_window("hann", win, fftbins=True)[:, None]
    total = np.zeros(win)
    for a in range(0, n, chunk_frames):
        b = min(n, a + chunk_frames)
        frames = librosa.util.frame(padded[a : b - 1 + win], frame_length=win, hop_length=1)
        ac = librosa.autocorrelate(frames * window, axis=0)
        total += librosa.util.normalize(ac, norm=np.inf, axis=0).sum(axis=1)
    tg = (total / max(n, 1))[:, None]
    return float(np.atleast_1d(librosa.feature.tempo(tg=tg, sr=sr, hop_length=hop_length))[0])


def _track(y: np.ndarray, sr: int, hop_length: int, timings: dict[str, float]):
    """Onset envelope, tempo (BPM) and beat frames of *y*."""
    import librosa

    from vmtool._librosa import import_librosa_beat

    import_librosa_beat()

    t0 = time.perf_counter()
    oenv = onset_strength(y, sr, hop_length)
    timings["features"] = timings.get("features", 0.0) + time.perf_counter() - t0
    t0 = time.perf_counter()
    tempo = global_tempo(oenv, sr, hop_length)
    if math.isfinite(tempo) and tempo > 0:
        _, frames = librosa.beat.beat_track(onset_envelope=oenv, sr=sr, hop_length=hop_length, bpm=tempo)
    else:
        frames = np.zeros(0, dtype=np.int64)
    if len(frames) == 0:  # e.g. silence: the estimate above is only the tempo prior
        tempo = 0.0
    timings["algorithm"] = timings.get("algorithm", 0.0) + time.perf_counter() - t0
    return oenv, tempo, np.asarray(frames, dtype=np.int64)


def beats(y: np.ndarray, sr: int, *, min_duration: float = 0.0, hop_length: int = HOP_LENGTH) -> Segmentation:
    """Segment audio at its beats.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), dtype=float]
        Mono signal.
    sr : int > 0
        Sample rate of *y* in Hz.
    min_duration : float >= 0
        Seconds; passed to :func:`~vmtool.segmentation.base.clean_boundaries`. Beats
        are usually less than a second apart, hence the default 0 (every beat kept).
    hop_length : int > 0
        Hop of the onset envelope in samples; beat times are quantised to it.

    Returns
    -------
    Segmentation
        ``boundaries`` are the beat times in seconds (a beat at 0 s or at the end is
        dropped, as every boundary lies strictly inside the item); ``curve`` is the
        onset-strength envelope at ``curve_rate = sr / hop_length`` Hz; ``extra`` holds
        ``tempo`` (BPM, 0 when no beat is found, e.g. in silence) and ``beat_times``
        (every beat found, in seconds, before cleaning). ``timings`` has ``features``
        (onset envelope) and ``algorithm`` (tempo and beat tracking).

    Raises
    ------
    ParameterError
        *y* is not a finite, non-empty mono float signal, or *sr*, *hop_length* or
        *min_duration* is invalid.

    Examples
    --------
    >>> from vmtool.synth import synth_music
    >>> y, truth = synth_music(duration=8.0, tempo=120.0, sections="A")
    >>> seg = beats(y, truth.sr)
    >>> round(seg.extra["tempo"] / 10) * 10
    120
    """
    y, sr = check_audio(y, sr)
    hop = _check_hop(hop_length)
    min_duration = _check_min_duration(min_duration)
    duration = y.size / sr
    timings: dict[str, float] = {}
    oenv, tempo, frames = _track(y, sr, hop, timings)
    beat_times = frames * hop / sr
    b, _ = clean_boundaries(beat_times, duration, min_duration=min_duration)
    return Segmentation(
        boundaries=b,
        duration=duration,
        curve=oenv.astype(np.float32),
        curve_rate=sr / hop,
        timings=timings,
        extra={"tempo": tempo, "beat_times": beat_times},
    )


def _zscore(v: np.ndarray) -> np.ndarray:
    """(v - mean) / std over the finite entries; zeros when constant; NaN stays NaN."""
    ok = np.isfinite(v)
    out = np.full(v.shape, np.nan)
    if ok.sum() < 2:
        out[ok] = 0.0
        return out
    sd = float(np.std(v[ok]))
    out[ok] = (v[ok] - float(np.mean(v[ok]))) / sd if sd > 1e-12 else 0.0
    return out


def _downbeat_evidence(y: np.ndarray, sr: int, hop: int, frames: np.ndarray) -> np.ndarray:
    """Per-beat evidence that a bar starts on the beat (larger = more likely).

    The sum of two z-scored, beat-synchronous cues:

    - harmony change: cosine distance between the mean chroma of the
      ``_CHROMA_CONTEXT`` beats before the beat and of the ``_CHROMA_CONTEXT`` beats
      from it (chords tend to change on bar lines);
    - low-band onset: the largest onset strength below ``_LOW_BAND_HZ`` within two
      hops of the beat (kick drum and bass notes tend to fall on the first beat).

    Beats too close to either end for the chroma context score 0 (the mean) for that cue.
    """
    import librosa

    n = frames.size
    S = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=hop)) ** 2
    chroma = librosa.feature.chroma_stft(S=S, sr=sr, n_fft=N_FFT, hop_length=hop)
    # mean chroma of each full beat interval [beat j, beat j + 1), j < n - 1
    f = np.clip(frames, 0, chroma.shape[1] - 1)
    per_beat = np.zeros((chroma.shape[0], max(0, n - 1)))
    for j in range(n - 1):
        per_beat[:, j] = chroma[:, f[j] : max(f[j + 1], f[j] + 1)].mean(axis=1)
    c = _CHROMA_CONTEXT
    harm = np.full(n, np.nan)
    for j in range(c, n - c):  # beats j - c .. j - 1 before, j .. j + c - 1 after (all full intervals)
        before = per_beat[:, j - c : j].mean(axis=1)
        after = per_beat[:, j : j + c].mean(axis=1)
        denom = float(np.linalg.norm(before) * np.linalg.norm(after))
        harm[j] = 1.0 - float(before @ after) / denom if denom > 1e-12 else 0.0

    freqs = librosa.fft_frequencies(sr=sr, n_fft=N_FFT)
    low = S[freqs < _LOW_BAND_HZ]
    low_onset = librosa.onset.onset_strength(S=librosa.power_to_db(low, ref=np.max), sr=sr, hop_length=hop)
    m = low_onset.size
    lows = np.array([low_onset[max(0, k - 2) : min(m, k + 3)].max() if k - 2 < m else 0.0 for k in frames])

    zh, zl = _zscore(harm), _zscore(lows)
    return np.where(np.isnan(zh), 0.0, zh) + np.where(np.isnan(zl), 0.0, zl)


def _phase_scores(evidence: np.ndarray, n: int) -> np.ndarray:
    """Contrast of the mean evidence on beats ``p, p + n, ...`` and on the others, per phase p."""
    scores = np.zeros(n)
    idx = np.arange(evidence.size)
    for p in range(n):
        on = idx % n == p
        if on.any() and (~on).any():
            scores[p] = float(evidence[on].mean() - evidence[~on].mean())
    return scores


def bars(
    y: np.ndarray,
    sr: int,
    *,
    beats_per_bar: int | None = None,
    min_duration: float = 0.0,
    hop_length: int = HOP_LENGTH,
) -> Segmentation:
    """Segment audio at its bar lines (downbeats).

    Beats are tracked as in :func:`beats`; bars are every ``N`` beats from beat number
    ``downbeat_phase``.

    Method. Each beat gets a downbeat evidence, the sum of two z-scored cues: how much
    the harmony (beat-synchronous chroma, two beats before vs two beats from the beat)
    changes on it, and the low-band (< 150 Hz, kick and bass) onset strength at it.
    For a candidate ``N`` and phase ``p`` the score is the mean evidence on beats
    ``p, p + N, p + 2N, ...`` minus the mean on the other beats. The phase is the best
    one for ``N``; when *beats_per_bar* is None, ``N`` is the candidate of
    :data:`METERS` (2, 3, 4) with the best score (a tie goes to 4, then 3). Music
    with a kick on beats 1 and 3 scores well for both 2 and 4: the harmony cue,
    changing once a bar, is what separates them. With fewer than 8 beats the meter is
    not estimated (4 is used).

    Limitations: one phase for the whole item, so a beat the tracker skips or adds
    shifts every later bar line; metres other than 2, 3, 4 must be given.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), dtype=float]
        Mono signal.
    sr : int > 0
        Sample rate in Hz.
    beats_per_bar : int >= 1, optional
        Beats per bar; estimated when None.
    min_duration : float >= 0
        Seconds; passed to :func:`~vmtool.segmentation.base.clean_boundaries`.
    hop_length : int > 0
        Analysis hop in samples.

    Returns
    -------
    Segmentation
        ``boundaries`` are the downbeat times in seconds (the segment before the first
        one is a pickup); ``curve`` is the onset-strength envelope at
        ``sr / hop_length`` Hz; ``extra`` holds ``beats_per_bar`` (int),
        ``beats_per_bar_estimated`` (bool), ``downbeat_phase`` (index of the first
        downbeat among the beats, ``0 <= phase < beats_per_bar``), ``downbeat_times``
        and ``beat_times`` (seconds, before cleaning), ``tempo`` (BPM) and
        ``meter_scores`` (``{"2": s, "3": s, "4": s}``, the best phase score per
        candidate; empty when not estimated).

    Raises
    ------
    ParameterError
        Invalid *y*, *sr*, *hop_length*, *min_duration* or *beats_per_bar*.
    """
    y, sr = check_audio(y, sr)
    hop = _check_hop(hop_length)
    min_duration = _check_min_duration(min_duration)
    if beats_per_bar is not None and (
        isinstance(beats_per_bar, bool) or not isinstance(beats_per_bar, (int, np.integer)) or beats_per_bar < 1
    ):
        raise ParameterError(f"beats_per_bar must be a positive integer, got {beats_per_bar!r}")
    duration = y.size / sr
    timings: dict[str, float] = {}
    oenv, tempo, frames = _track(y, sr, hop, timings)
    beat_times = frames * hop / sr

    t0 = time.perf_counter()
    meter_scores: dict[str, float] = {}
    n_beats = frames.size
    if n_beats == 0:
        n, phase = (int(beats_per_bar) if beats_per_bar else 4), 0
    else:
        evidence = _downbeat_evidence(y, sr, hop, frames)
        if beats_per_bar is not None:
            n = int(beats_per_bar)
        elif n_beats < _MIN_BEATS_FOR_METER:
            n = 4
        else:
            best = {m: float(_phase_scores(evidence, m).max()) for m in METERS}
            meter_scores = {str(m): s for m, s in best.items()}
            # ties: prefer 4, then 3, then 2
            n = max(METERS, key=lambda m: (round(best[m], 12), m == 4, m))
        phase = int(np.argmax(_phase_scores(evidence, n))) if n > 1 else 0
    timings["algorithm"] = timings.get("algorithm", 0.0) + time.perf_counter() - t0

    downbeat_times = beat_times[phase::n]
    b, _ = clean_boundaries(downbeat_times, duration, min_duration=min_duration)
    return Segmentation(
        boundaries=b,
        duration=duration,
        curve=oenv.astype(np.float32),
        curve_rate=sr / hop,
        timings=timings,
        extra={
            "beats_per_bar": n,
            "beats_per_bar_estimated": beats_per_bar is None,
            "downbeat_phase": phase,
            "downbeat_times": downbeat_times,
            "beat_times": beat_times,
            "tempo": tempo,
            "meter_scores": meter_scores,
            "downbeats": "librosa",
        },
    )


def fixed(duration: float, *, window: float, min_duration: float = 0.0) -> Segmentation:
    """Segment an item into windows of *window* seconds.

    Parameters
    ----------
    duration : float > 0
        The item's duration in seconds.
    window : float > 0
        Window length in seconds; boundaries fall at ``window, 2 * window, ...``
        strictly before *duration* (the last segment is the remainder, shorter than
        *window* unless *duration* is a multiple of it).
    min_duration : float >= 0
        Seconds; a last remainder shorter than this is merged into the previous window.

    Returns
    -------
    Segmentation
        No curve (``curve_rate`` NaN); ``extra = {"window": window}``.

    Raises
    ------
    ParameterError
        A non-positive or non-finite *window* or *duration*.

    Examples
    --------
    >>> fixed(10.0, window=4.0).boundaries.tolist()
    [4.0, 8.0]
    """
    try:
        w = float(window)
    except (TypeError, ValueError):
        raise ParameterError(f"window must be a positive number of seconds, got {window!r}") from None
    if not (math.isfinite(w) and w > 0):
        raise ParameterError(f"window must be a positive number of seconds, got {window!r}")
    try:
        d = float(duration)
    except (TypeError, ValueError):
        raise ParameterError(f"duration must be positive, got {duration!r}") from None
    if not (math.isfinite(d) and d > 0):
        raise ParameterError(f"duration must be positive, got {duration!r}")
    # k * w for k = 1, 2, ... with k * w < d (a tolerance keeps d itself out when d = K * w)
    k = np.arange(1, max(1, math.ceil(d / w - 1e-9)))
    b, _ = clean_boundaries(k * w, d, min_duration=min_duration)
    return Segmentation(boundaries=b, duration=d, extra={"window": w})
