"""Segment-level features: aggregate an item's frame rows over each segment.

Seg-VM-Net represents a clip as a sequence of segments; each segment's feature vector
is a statistic of the frame-level rows it covers. Rows are weighted by how much of
their time span falls inside the segment, so a segment shorter than one frame step
still gets a vector (the row, or rows, it overlaps), and results do not depend on
where row and segment edges fall.
"""

from __future__ import annotations

import numpy as np

from vmtool.errors import ParameterError
from vmtool.segmentation.base import segment_edges

__all__ = ["segment_features", "STATS", "item_segment_features"]

STATS = ("mean", "var", "max")


def segment_features(
    rows: np.ndarray,
    rate: float,
    boundaries: np.ndarray,
    duration: float,
    *,
    stats: tuple[str, ...] | list[str] = ("mean",),
) -> np.ndarray:
    """Aggregate frame rows over segments.

    Parameters
    ----------
    rows : np.ndarray [shape=(n, d)]
        Frame-level features; row ``j`` covers ``[j / rate, (j + 1) / rate)`` seconds.
    rate : float
        Rows per second.
    boundaries : np.ndarray [shape=(k,)]
        Segment boundaries in seconds (0 and *duration* are implicit edges).
    duration : float
        Item duration in seconds.
    stats : sequence of {"mean", "var", "max"}
        Statistics to concatenate, in this order. ``mean`` and ``var`` are weighted
        by each row's overlap with the segment; ``max`` is over the overlapping rows.

    Returns
    -------
    np.ndarray [shape=(k + 1, d * len(stats)), dtype=float32]

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(6, dtype=np.float32)[:, None]       # 6 rows at 1 Hz
    >>> segment_features(X, 1.0, np.array([2.0]), 6.0).ravel().tolist()
    [0.5, 3.5]
    """
    bad = [s for s in stats if s not in STATS]
    if bad or not stats:
        raise ParameterError(f"unknown statistic(s) {bad or stats!r}; use {', '.join(STATS)}")
    X = np.asarray(rows, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ParameterError(f"rows must have shape (n, d) with n >= 1, got {X.shape}")
    if not rate > 0:
        raise ParameterError(f"rate must be positive, got {rate!r}")
    n = X.shape[0]
    starts = np.arange(n) / rate
    ends = starts + 1.0 / rate
    ends[-1] = max(ends[-1], float(duration))  # the last row covers the item's end
    out = []
    for s, e in segment_edges(boundaries, duration):
        w = np.clip(np.minimum(ends, e) - np.maximum(starts, s), 0.0, None)
        if not w.any():  # a segment past the rows (duration longer than rows): nearest row
            w = np.zeros(n)
            w[min(n - 1, int(s * rate))] = 1.0
        w = w / w.sum()
        parts = []
        mean = w @ X
        for stat in stats:
            if stat == "mean":
                parts.append(mean)
            elif stat == "var":
                parts.append(w @ (X - mean) ** 2)
            else:
                parts.append(X[w > 0].max(axis=0))
        out.append(np.concatenate(parts))
    return np.asarray(out, dtype=np.float32)


def item_segment_features(collection, index: int, feature: str, segmentation: str, *,
                          stats: tuple[str, ...] | list[str] = ("mean",)) -> np.ndarray:
    """Segment-level matrix of item *index* of an open collection.

    Parameters
    ----------
    collection : vmtool.store.Collection
    index : int
    feature : str
        Name under ``/features``.
    segmentation : str
        Name under ``/segmentations``.

    Returns
    -------
    np.ndarray [shape=(n_segments, d * len(stats)), dtype=float32]
    """
    f = collection.feature(feature)
    rows = f.rows(index)
    if rows.shape[0] == 0:
        raise ParameterError(f"item {collection.ids[index]!r} has no {feature!r} features", collection.path)
    seg = collection.ragged("segmentations", segmentation)
    if not seg.present(index):
        raise ParameterError(f"item {collection.ids[index]!r} has no {segmentation!r} segmentation", collection.path)
    return segment_features(rows, f.rate(index), seg.rows(index), collection.item(index).duration, stats=stats)
