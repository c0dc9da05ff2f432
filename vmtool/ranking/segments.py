"""Sequences of segment embeddings, stored ragged, and the evaluation scenarios.

A :class:`SegmentSet` holds N sequences (one per item) the way a catalog stores them:
all segments' rows in one ``(R, d)`` matrix, item ``i`` owning rows
``offsets[i]:offsets[i+1]``, with the segments' spans in seconds and, optionally, one
clip embedding per item. The ranking code works on whole sets (never item by item).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vmtool.errors import ParameterError

__all__ = ["SegmentSet", "crop_queries", "stretch_targets", "SCENARIOS"]

#: evaluation scenarios: what is done to the queries and the targets
SCENARIOS: tuple[str, ...] = ("vanilla", "crop-query", "stretch-targets", "crop-stretch")


@dataclass
class SegmentSet:
    """N sequences of segment embeddings (ragged) with their spans and clip embeddings.

    Attributes
    ----------
    data : np.ndarray [shape=(R, d), dtype=float32 or float16]
        All segments' embeddings, item after item (unit vectors).
    offsets : np.ndarray [shape=(N + 1,), dtype=int64]
        Item ``i`` owns ``data[offsets[i]:offsets[i+1]]``.
    spans : np.ndarray [shape=(R, 2), dtype=float64] or None
        Start and end of each segment, seconds.
    clip : np.ndarray [shape=(N, d)] or None
        One clip embedding per item (NaN rows where an item has none).
    ids, sources, sha256s : list of str or None
        Item ids, media paths and file digests (from the catalog).
    modality : str or None
        ``audio`` or ``video``.
    """

    data: np.ndarray
    offsets: np.ndarray
    spans: np.ndarray | None = None
    clip: np.ndarray | None = None
    ids: list[str] | None = None
    sources: list[str] | None = None
    sha256s: list[str] | None = None
    modality: str | None = None
    _centroids: np.ndarray | None = field(default=None, repr=False, compare=False)
    _means: np.ndarray | None = field(default=None, repr=False, compare=False)
    _centroid_norms2: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data)
        if self.data.ndim != 2:
            raise ParameterError(f"segment embeddings must be a (rows, dim) matrix, got shape {self.data.shape}")
        if self.data.dtype not in (np.float16, np.float32, np.float64):
            self.data = self.data.astype(np.float32)
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        if (self.offsets.ndim != 1 or len(self.offsets) < 1 or self.offsets[0] != 0
                or self.offsets[-1] != len(self.data) or np.any(np.diff(self.offsets) < 0)):
            raise ParameterError(f"offsets do not match the {len(self.data)} segment rows")
        n = len(self.offsets) - 1
        if self.spans is not None:
            self.spans = np.asarray(self.spans, dtype=np.float64)
            if self.spans.shape != (len(self.data), 2):
                raise ParameterError(f"spans have shape {self.spans.shape}, expected ({len(self.data)}, 2)")
        if self.clip is not None:
            self.clip = np.asarray(self.clip)
            if self.clip.shape != (n, self.data.shape[1]):
                raise ParameterError(f"clip embeddings have shape {self.clip.shape}, expected ({n}, {self.data.shape[1]})")
        for name in ("ids", "sources", "sha256s"):
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise ParameterError(f"{len(v)} {name} for {n} items")

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_sequences(
        cls,
        sequences: Sequence[np.ndarray],
        *,
        spans: Sequence[np.ndarray] | None = None,
        clip: np.ndarray | Sequence[np.ndarray] | None = None,
        ids: Sequence[str] | None = None,
        sources: Sequence[str] | None = None,
        sha256s: Sequence[str] | None = None,
        modality: str | None = None,
        dim: int | None = None,
    ) -> SegmentSet:
        """A set from one ``(K_i, d)`` matrix per item.

        Without *spans*, segment ``k`` spans ``[k, k + 1)`` seconds.
        """
        arrays = [np.asarray(x) for x in sequences]
        if dim is None:
            dims = {a.shape[-1] for a in arrays if a.size}
            if len(dims) > 1:
                raise ParameterError(f"segment embeddings of different widths: {sorted(dims)}")
            dim = dims.pop() if dims else 0
        seqs = [a.reshape(-1, dim) for a in arrays]
        lens = np.array([len(a) for a in seqs], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        data = np.concatenate(seqs, axis=0) if seqs else np.zeros((0, dim), dtype=np.float32)
        if spans is None:
            k = np.arange(int(lens.sum())) - np.repeat(offsets[:-1], lens)
            sp = np.stack([k, k + 1.0], axis=1).astype(np.float64)
        else:
            sp = np.concatenate([np.asarray(x, dtype=np.float64).reshape(-1, 2) for x in spans]) if len(spans) \
                else np.zeros((0, 2))
        clip_arr = None if clip is None else np.asarray(clip).reshape(len(seqs), dim)
        return cls(data, offsets, spans=sp, clip=clip_arr, ids=None if ids is None else list(ids),
                   sources=None if sources is None else list(sources),
                   sha256s=None if sha256s is None else list(sha256s), modality=modality)

    # -- shape -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def dim(self) -> int:
        return int(self.data.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        """Number of segments of each item, ``(N,)`` int64."""
        return np.diff(self.offsets)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes + self.offsets.nbytes + (0 if self.spans is None else self.spans.nbytes)
                   + (0 if self.clip is None else self.clip.nbytes))

    def segments(self, index: int) -> np.ndarray:
        """Item *index*'s segment embeddings, ``(K, d)``."""
        return self.data[self.offsets[index]:self.offsets[index + 1]]

    def spans_of(self, index: int) -> np.ndarray | None:
        """Item *index*'s segment spans, ``(K, 2)`` seconds, or None."""
        return None if self.spans is None else self.spans[self.offsets[index]:self.offsets[index + 1]]

    def id_of(self, index: int) -> str:
        return self.ids[index] if self.ids is not None else str(index)

    @property
    def means(self) -> np.ndarray:
        """Each item's raw mean segment embedding (Seg-VM-Net's centroid), ``(N, d)`` float32.

        NaN rows for items without segments; computed once and kept.
        """
        if self._means is None:
            from vmtool.ranking._kernels import item_means

            self._means = item_means(self.data, self.offsets)
        return self._means

    @property
    def centroids(self) -> np.ndarray:
        """Each item's centroid: the mean of its segment embeddings, L2-normalised.

        ``(N, d)`` float32, NaN rows for items without segments. Computed once and
        kept: a prefilter ranks by centroid, so the catalog's centroids are part of
        its index.
        """
        if self._centroids is None:
            c = self.means
            norm = np.linalg.norm(c, axis=1, keepdims=True)
            # a zero mean has no direction and stays zero; items without segments stay NaN
            unit = np.divide(c, norm, out=np.zeros_like(c), where=norm > 0)
            unit[np.isnan(norm[:, 0])] = np.nan
            self._centroids = unit
        return self._centroids

    @property
    def centroid_norms2(self) -> np.ndarray:
        """Squared norms of :attr:`centroids`, ``(N,)`` float64 (kept, like the centroids)."""
        if self._centroid_norms2 is None:
            c = self.centroids
            self._centroid_norms2 = np.einsum("ij,ij->i", c, c, dtype=np.float64)
        return self._centroid_norms2

    # -- selections and scenarios ------------------------------------------------------------
    def subset(self, indices: Sequence[int] | np.ndarray) -> SegmentSet:
        """The items *indices* (in that order), as a new set (rows are copied)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        lens = self.lengths[idx]
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        rows = _ranges(self.offsets[idx], lens)
        sub = SegmentSet(
            self.data[rows], offsets,
            spans=None if self.spans is None else self.spans[rows],
            clip=None if self.clip is None else self.clip[idx],
            ids=None if self.ids is None else [self.ids[i] for i in idx],
            sources=None if self.sources is None else [self.sources[i] for i in idx],
            sha256s=None if self.sha256s is None else [self.sha256s[i] for i in idx],
            modality=self.modality,
        )
        if self._centroids is not None:
            sub._centroids = self._centroids[idx]
        if self._means is not None:
            sub._means = self._means[idx]
        return sub

    def with_rows(self, rows: np.ndarray, lengths: np.ndarray, spans: np.ndarray | None) -> SegmentSet:
        """The same items with other segment rows (indices into ``data``); clip kept."""
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return SegmentSet(self.data[rows], offsets, spans=spans, clip=self.clip, ids=self.ids,
                          sources=self.sources, sha256s=self.sha256s, modality=self.modality)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for each start ``s`` and length ``n``."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    out_start = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) + np.repeat(np.asarray(starts, dtype=np.int64) - out_start, lengths)


def crop_queries(queries: SegmentSet, n: int = 2) -> SegmentSet:
    """Drop the first *n* segments of every query that has more than *n* (``crop-query``).

    The clip embeddings are kept as they are: they describe the whole item.
    """
    lens = queries.lengths
    drop = np.where(lens > n, n, 0)
    new_lens = lens - drop
    rows = _ranges(queries.offsets[:-1] + drop, new_lens)
    spans = None if queries.spans is None else queries.spans[rows]
    return queries.with_rows(rows, new_lens, spans)


def stretch_targets(targets: SegmentSet, factor: int = 2) -> SegmentSet:
    """Repeat every target segment *factor* times (``stretch-targets``).

    Simulates a slower version of each track: the repeated segments split the original
    span into *factor* equal parts.
    """
    if factor < 1:
        raise ParameterError(f"stretch factor must be >= 1, got {factor}")
    rows = np.repeat(np.arange(len(targets.data)), factor)
    spans = None
    if targets.spans is not None:
        s = targets.spans[rows].copy()
        part = np.tile(np.arange(factor), len(targets.data))
        width = (s[:, 1] - s[:, 0]) / factor
        s[:, 0] = targets.spans[rows, 0] + part * width
        s[:, 1] = s[:, 0] + width
        spans = s
    return targets.with_rows(rows, targets.lengths * factor, spans)
