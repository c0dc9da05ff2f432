"""The extractor interface shared by every audio and video feature extractor.

An extractor turns one media file into frame-level features: one row per output step
of ``1 / rate`` seconds (row ``i`` covers ``[i / rate, (i + 1) / rate)``), plus
optionally curves at their own rate (e.g. the shot-boundary likelihood at the video's
native frame rate).

Extractors consume streams, so that several of them share one decoding pass and
memory stays bounded on long files:

- an :class:`AudioExtractor` receives consecutive mono float32 blocks at its
  ``sample_rate``;
- a :class:`VideoExtractor` receives every decoded frame, scaled to its
  ``frame_size``, with the frame's time in seconds.

``begin(...)`` returns an accumulator for one item; ``push`` feeds it; ``finish``
returns an :class:`ExtractorOutput`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from vmtool.errors import ParameterError

__all__ = [
    "Extractor",
    "AudioExtractor",
    "VideoExtractor",
    "Accumulator",
    "ExtractorOutput",
    "n_steps_for",
    "pool_by_time",
    "StepPooler",
]


def n_steps_for(duration: float, rate: float) -> int:
    """Number of output steps for *duration* seconds at *rate* Hz (at least 1).

    A final partial step counts as a step: 2.3 s at 1 Hz gives 3 rows.
    """
    if not (math.isfinite(duration) and duration > 0):
        return 1
    return max(1, math.ceil(round(duration * rate, 6)))


def pool_by_time(times: np.ndarray, values: np.ndarray, rate: float, n_steps: int) -> np.ndarray:
    """Average rows of *values* into output steps by their *times*.

    Parameters
    ----------
    times : np.ndarray [shape=(n,)]
        Time in seconds of each row of *values*.
    values : np.ndarray [shape=(n, d)]
    rate : float
        Output steps per second.
    n_steps : int

    Returns
    -------
    np.ndarray [shape=(n_steps, d), dtype=float32]
        Step ``i`` is the mean of the rows with ``i / rate <= t < (i + 1) / rate``;
        rows past the last step go to the last step. A step that receives no row (a
        frame rate below the output rate, or a stream shorter than the item) takes the
        nearest step that has rows (the earlier one on a tie).
    """
    values = np.asarray(values)
    pooler = StepPooler(rate, n_steps, 1 if values.ndim == 1 else values.shape[1])
    pooler.add(times, values)
    return pooler.result()


class StepPooler:
    """Incremental version of :func:`pool_by_time`: add rows chunk by chunk.

    Memory is ``n_steps x d`` sums, whatever the number of rows added.
    """

    def __init__(self, rate: float, n_steps: int, dim: int):
        self.rate = float(rate)
        self.n_steps = int(n_steps)
        self.sums = np.zeros((self.n_steps, int(dim)), dtype=np.float64)
        self.counts = np.zeros(self.n_steps, dtype=np.int64)

    def add(self, times: np.ndarray, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]
        if len(values) == 0:
            return
        idx = np.clip(np.floor(np.asarray(times, dtype=np.float64) * self.rate + 1e-9).astype(np.int64),
                      0, self.n_steps - 1)
        self.counts += np.bincount(idx, minlength=self.n_steps)
        np.add.at(self.sums, idx, values)

    def result(self) -> np.ndarray:
        out = self.sums.copy()
        have = self.counts > 0
        if not have.any():
            return out.astype(np.float32)
        out[have] /= self.counts[have, None]
        if not have.all():
            steps = np.arange(self.n_steps)
            filled = np.flatnonzero(have)
            pos = np.searchsorted(filled, steps)
            after = filled[np.clip(pos, 0, len(filled) - 1)]
            before = filled[np.clip(pos - 1, 0, len(filled) - 1)]
            pick = np.where(np.abs(steps - before) <= np.abs(after - steps), before, after)
            out[~have] = out[pick[~have]]
        return out.astype(np.float32)


@dataclass
class ExtractorOutput:
    """What an extractor produces for one item.

    Attributes
    ----------
    frames : np.ndarray [shape=(n_steps, dim), dtype=float32]
        One row per output step.
    curves : dict of str -> (np.ndarray [shape=(n,)], float)
        Extra curves with their rate in Hz, stored under ``/curves/<name>``.
    """

    frames: np.ndarray
    curves: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict)


class Accumulator:
    """Per-item state of an extractor: ``push`` data in, ``finish`` to get the output."""

    def push(self, *args: Any) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self) -> ExtractorOutput:  # pragma: no cover - interface
        raise NotImplementedError


class Extractor:
    """Base class of all extractors.

    Subclasses set the class attributes and implement :meth:`begin`. Constructor
    keyword arguments are the extractor's parameters; :meth:`config` returns them
    with the extractor's name and version so that a query can later be processed
    exactly as a catalog was.
    """

    name: ClassVar[str] = ""
    modality: ClassVar[str] = ""  # "audio" or "video"
    version: ClassVar[str] = "1"
    summary: ClassVar[str] = ""
    #: curves this extractor adds (name -> description), stored under /curves
    curve_names: ClassVar[dict[str, str]] = {}
    #: "frame": one row per output step; "clip": one row per item (a timeless vector,
    #: stored with the attribute ``level="clip"``, used by training as it is)
    level: ClassVar[str] = "frame"

    def __init__(self, device: str = "cpu", **params: Any):
        if params:
            raise ParameterError(f"extractor {self.name!r} takes no parameter(s) {', '.join(sorted(params))}")
        self.device = device

    # -- description ----------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return len(self.columns)

    @property
    def columns(self) -> list[str]:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The parameters that determine the output (not the device)."""
        return {}

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "modality": self.modality, **self.params()}

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """Whether the extractor can run here and now, offline, and why not."""
        return True, ""

    def begin(self, info, rate: float, n_steps: int) -> Accumulator:  # pragma: no cover - interface
        raise NotImplementedError


class AudioExtractor(Extractor):
    """An extractor fed with mono float32 audio blocks at :attr:`sample_rate`."""

    modality = "audio"
    sample_rate: int = 22050


class VideoExtractor(Extractor):
    """An extractor fed with every video frame at :attr:`frame_size` ``(width, height)``.

    ``frame_size`` None means the native size.
    """

    modality = "video"
    frame_size: tuple[int, int] | None = None
