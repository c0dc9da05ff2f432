"""What every segmentation method returns, and the boundary clean-up they share.

Conventions (``docs/format.md``): boundaries are times in seconds, sorted, unique,
strictly inside ``(0, duration)``; 0 and the duration are implicit edges, so ``k``
boundaries make ``k + 1`` segments. Segments shorter than ``min_duration`` are merged
away by :func:`clean_boundaries`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vmtool.errors import ParameterError

__all__ = ["Segmentation", "clean_boundaries", "segment_edges", "check_audio", "positive_number"]


@dataclass
class Segmentation:
    """The result of one method on one item.

    Attributes
    ----------
    boundaries : np.ndarray [shape=(k,), dtype=float64]
        Seconds, cleaned (see :func:`clean_boundaries`).
    duration : float
        The item's duration in seconds.
    labels : np.ndarray [shape=(k + 1,), dtype=int64] or None
        One label per segment, when the method gives labels.
    curve : np.ndarray [shape=(n,)] or None
        The method's novelty / likelihood / onset curve, for plots.
    curve_rate : float
        Samples per second of *curve*.
    timings : dict of str -> float
        Wall seconds spent per stage (``decode``, ``features``, ``algorithm``...).
    extra : dict
        Method-specific results (e.g. ``beats_per_bar``, ``downbeat_phase``).
    """

    boundaries: np.ndarray
    duration: float
    labels: np.ndarray | None = None
    curve: np.ndarray | None = None
    curve_rate: float = math.nan
    timings: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_segments(self) -> int:
        return len(self.boundaries) + 1


def clean_boundaries(
    times: np.ndarray | list[float],
    duration: float,
    *,
    min_duration: float = 1.0,
    labels: np.ndarray | list | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Sort, deduplicate, clip and merge boundary times.

    Parameters
    ----------
    times : array-like of float
        Candidate boundaries in seconds (may include 0, the duration, duplicates).
    duration : float
        Item duration in seconds.
    min_duration : float
        Segments shorter than this are merged: a boundary closer than
        ``min_duration`` to the previous kept boundary (or to 0) is dropped, and so is
        the last boundary when it is closer than ``min_duration`` to the end.
    labels : array-like, optional
        One label per segment of *times* as given (``len(times) + 1`` labels for
        boundaries strictly inside, as msaf returns them with the edges: ``len(times) - 1``
        labels when *times* includes 0 and the duration). When given, the labels of the
        kept segments are returned: a segment takes the label of its first part.

    Returns
    -------
    boundaries : np.ndarray [shape=(k,), dtype=float64]
    labels : np.ndarray [shape=(k + 1,), dtype=int64] or None
    """
    if not (math.isfinite(duration) and duration > 0):
        raise ParameterError(f"duration must be positive, got {duration!r}")
    if min_duration < 0:
        raise ParameterError(f"min_duration must be >= 0, got {min_duration!r}")
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    lab = None
    if labels is not None:
        lab = np.asarray(labels).reshape(-1)
        # labels describe the segments between consecutive times (with 0/duration added when absent)
        edges = np.unique(np.concatenate([[0.0], t[np.isfinite(t)], [duration]]))
        edges = edges[(edges >= 0) & (edges <= duration)]
        if len(lab) != len(edges) - 1:
            raise ParameterError(f"{len(lab)} labels for {len(edges) - 1} segments")
        t = edges[1:-1]
    t = np.sort(t[np.isfinite(t)])
    kept: list[float] = []
    kept_idx: list[int] = []
    last = 0.0
    for i, x in enumerate(t):
        if x <= 0 or x >= duration:
            continue
        if x - last < max(min_duration, 1e-9):
            continue
        kept.append(float(x))
        kept_idx.append(i)
        last = x
    while kept and duration - kept[-1] < max(min_duration, 1e-9):
        kept.pop()
        kept_idx.pop()
    b = np.asarray(kept, dtype=np.float64)
    if lab is None:
        return b, None
    # segment j of the result starts at 0 (j = 0) or at kept boundary j-1, i.e. at original
    # segment kept_idx[j-1] + 1
    first = [0] + [k + 1 for k in kept_idx]
    return b, np.asarray([int(lab[k]) for k in first], dtype=np.int64)


def segment_edges(boundaries: np.ndarray, duration: float) -> np.ndarray:
    """Segment ``(start, end)`` pairs in seconds, shape ``(k + 1, 2)``."""
    e = np.concatenate([[0.0], np.asarray(boundaries, dtype=np.float64), [float(duration)]])
    return np.stack([e[:-1], e[1:]], axis=1)


def check_audio(y, sr) -> tuple[np.ndarray, int]:
    """Check a mono float signal and its sample rate; return ``(float32 signal, int sr)``.

    Raises
    ------
    ParameterError
        Not 1-d, not floats, empty, non-finite samples, or a sample rate that is not a
        positive integer.
    """
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ParameterError(f"y must be a mono signal of shape (n,), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ParameterError(f"y must hold floats, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ParameterError("y is empty")
    if not np.all(np.isfinite(arr)):
        raise ParameterError("y holds non-finite values (NaN or inf)")
    try:
        sr_ok = float(sr) > 0 and float(sr) == int(sr)
    except (TypeError, ValueError, OverflowError):
        sr_ok = False
    if not sr_ok:
        raise ParameterError(f"sr must be a positive integer, got {sr!r}")
    return arr.astype(np.float32, copy=False), int(sr)


def positive_number(name: str, value) -> float:
    """*value* as a finite float > 0, or a ParameterError naming *name*."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise ParameterError(f"{name} must be a positive number, got {value!r}")
    return v
