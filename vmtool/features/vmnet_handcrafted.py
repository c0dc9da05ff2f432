"""VM-Net's handcrafted audio vector exactly as its code builds it: 1,140 values per clip.

Hong et al.'s VM-Net code (csehong/VM-NET), which Prétet et al. 2021 (section III) and
Seg-VM-Net's Baseline 1 reuse, describes a music clip by one timeless vector:

1. the centred 29.12 s excerpt of the clip (the whole clip when shorter), at 12 kHz;
2. harmonic/percussive separation (librosa HPSS);
3. for each of the two signals, per STFT frame (``n_fft`` 512, hop 256): chroma_stft 12,
   chroma_cens 12, mel spectrogram 96, MFCC 20, delta-MFCC 20, delta-delta-MFCC 20,
   RMS 1, spectral centroid 1, bandwidth 1, roll-off 1, polynomial fits of order 1 (2)
   and 2 (3), zero-crossing rate 1: 190 rows, each block converted to dB relative to
   its own maximum (``power_to_db(block, ref=max)``, librosa's old ``logamplitude``);
4. the 2 x 190 = 380 rows, and their mean, variance and maximum over the frames:
   1,140 values.

The extractor stores that vector as a clip-level feature (one row per item,
``level="clip"``), which ``vmtool train`` uses as it is. ``handcrafted`` is vmtool's
richer per-second variant (absolute levels, streaming, contrast and tonnetz); see
``docs/features.md`` for why it departs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vmtool.errors import ParameterError
from vmtool.features.base import Accumulator, AudioExtractor, ExtractorOutput

__all__ = ["VmnetHandcraftedExtractor", "vmnet_frame_rows", "vmnet_columns", "clip_vector", "centred_excerpt",
           "BLOCKS"]

SR = 12000
N_FFT = 512
HOP = 256
EXCERPT = 29.12

#: the blocks of one part, in the order of VM-Net's code
BLOCKS: list[tuple[str, int]] = [
    ("chroma_stft", 12), ("chroma_cens", 12), ("melspectrogram", 96), ("mfcc", 20), ("mfcc_delta", 20),
    ("mfcc_delta2", 20), ("rms", 1), ("spectral_centroid", 1), ("spectral_bandwidth", 1),
    ("spectral_rolloff", 1), ("poly_features_1", 2), ("poly_features_2", 3), ("zero_crossing_rate", 1),
]
PER_PART = sum(n for _, n in BLOCKS)  # 190
STATS = ("mean", "var", "max")


def vmnet_columns() -> list[str]:
    """The 1,140 column names: ``<stat>.<part>.<block>[_<k>]``."""
    rows = []
    for part in ("harmonic", "percussive"):
        for block, n in BLOCKS:
            rows.extend([f"{part}.{block}"] if n == 1 else [f"{part}.{block}_{k:02d}" for k in range(n)])
    return [f"{s}.{r}" for s in STATS for r in rows]


def _db(block: np.ndarray) -> np.ndarray:
    """librosa's ``power_to_db(block, ref=np.max)`` (the old ``logamplitude(ref_power=max)``)."""
    import librosa

    return librosa.power_to_db(block, ref=np.max)


def _part_rows(y: np.ndarray) -> np.ndarray:
    """The 190 rows of one part (harmonic or percussive signal), ``(190, n_frames)``."""
    import librosa

    kw = {"n_fft": N_FFT, "hop_length": HOP}
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_mels=96, **kw)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=20)
    blocks = [
        librosa.feature.chroma_stft(y=y, sr=SR, **kw),
        librosa.feature.chroma_cens(y=y, sr=SR, hop_length=HOP),
        mel,
        mfcc,
        librosa.feature.delta(mfcc),
        librosa.feature.delta(mfcc, order=2),
        librosa.feature.rms(y=y, frame_length=N_FFT, hop_length=HOP),
        librosa.feature.spectral_centroid(y=y, sr=SR, **kw),
        librosa.feature.spectral_bandwidth(y=y, sr=SR, **kw),
        librosa.feature.spectral_rolloff(y=y, sr=SR, **kw),
        librosa.feature.poly_features(y=y, sr=SR, order=1, **kw),
        librosa.feature.poly_features(y=y, sr=SR, order=2, **kw),
        librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP),
    ]
    n = min(b.shape[1] for b in blocks)
    return np.concatenate([_db(b[:, :n]) for b in blocks], axis=0)


def vmnet_frame_rows(y: np.ndarray) -> np.ndarray:
    """The 380 per-frame rows of a 12 kHz excerpt: harmonic part, then percussive.

    Returns
    -------
    np.ndarray [shape=(380, n_frames), dtype=float32]
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if y.size < N_FFT:
        y = np.pad(y, (0, N_FFT - y.size))
    harmonic, percussive = librosa.effects.hpss(y)
    h, p = _part_rows(harmonic), _part_rows(percussive)
    n = min(h.shape[1], p.shape[1])
    return np.concatenate([h[:, :n], p[:, :n]], axis=0).astype(np.float32)


def clip_vector(rows: np.ndarray) -> np.ndarray:
    """Mean, variance and maximum of each row over the frames: ``(380, n)`` -> ``(1140,)``."""
    return np.concatenate([rows.mean(axis=1), rows.var(axis=1), rows.max(axis=1)]).astype(np.float32)


def centred_excerpt(y: np.ndarray, seconds: float) -> np.ndarray:
    """The centred *seconds* of *y* (12 kHz); all of it when shorter or ``seconds <= 0``."""
    length = int(round(seconds * SR))
    if seconds <= 0 or y.size <= length:
        return y
    start = (y.size - length) // 2
    return y[start:start + length]


class _Accumulator(Accumulator):
    """Keeps the clip's samples (12 kHz float32: 2.9 MB per audio-minute), then crops."""

    def __init__(self, excerpt: float):
        self.excerpt = excerpt
        self.parts: list[np.ndarray] = []

    def push(self, block: np.ndarray) -> None:
        self.parts.append(np.asarray(block, dtype=np.float32).reshape(-1))

    def finish(self) -> ExtractorOutput:
        y = np.concatenate(self.parts) if self.parts else np.zeros(0, dtype=np.float32)
        if y.size == 0:
            raise ParameterError("the clip has no audio samples")
        rows = vmnet_frame_rows(centred_excerpt(y, self.excerpt))
        return ExtractorOutput(frames=clip_vector(rows)[None, :])


class VmnetHandcraftedExtractor(AudioExtractor):
    """VM-Net's 1,140-d clip vector (see the module docstring).

    Parameters
    ----------
    excerpt : float
        Seconds kept around the clip's centre (29.12 in VM-Net's code); 0 keeps the whole
        clip, as Prétet et al. 2021 describe the aggregation ("over the whole clip").
    """

    name = "vmnet-handcrafted"
    sample_rate = SR
    version = "1"
    level = "clip"
    summary = "VM-Net's clip vector: mean/var/max of 380 librosa rows (HPSS), 29.12 s centred excerpt"

    def __init__(self, device: str = "cpu", *, excerpt: float = EXCERPT, **params: Any):
        super().__init__(device, **params)
        if not (math.isfinite(excerpt) and excerpt >= 0):
            raise ParameterError(f"excerpt must be a number of seconds >= 0, got {excerpt!r}")
        self.excerpt = float(excerpt)

    @property
    def columns(self) -> list[str]:
        return vmnet_columns()

    def params(self) -> dict[str, Any]:
        return {"sample_rate": SR, "n_fft": N_FFT, "hop_length": HOP, "excerpt": self.excerpt,
                "statistics": list(STATS), "level": "clip"}

    def begin(self, info, rate: float, n_steps: int) -> Accumulator:
        return _Accumulator(self.excerpt)
