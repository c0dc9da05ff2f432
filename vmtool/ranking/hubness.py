"""Hubness correction of ranking distances: CSLS.

In a high-dimensional joint space a few targets ("hubs") are near many queries and crowd
every result list, while others are near none. Cross-domain similarity local scaling
(CSLS; Conneau, Lample, Ranzato, Denoyer and Jégou, "Word translation without parallel
data", ICLR 2018) corrects a similarity by each side's mean similarity to its ``k``
nearest neighbours on the other side: ``CSLS(x, y) = 2 cos(x, y) - r_T(x) - r_S(y)``.
vmtool ranks by distances, so with ``s = -d`` the same correction reads

    d_csls(q, t) = 2 d(q, t) - m_q - m_t

where ``m_q`` is the mean of the query's ``k`` smallest distances to the targets and
``m_t`` the mean of the target's ``k`` smallest distances to a population of queries.
The query's term does not change its own ranking; the target's term pushes hubs down.
The reference queries for ``m_t`` are, in evaluation, all the queries evaluated; in
``vmtool rank``, the catalog's own items of the query's modality (its videos, for v2m).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vmtool.errors import ParameterError

__all__ = ["Hubness", "parse_hubness", "knn_mean", "csls", "DEFAULT_K"]

DEFAULT_K = 10


@dataclass(frozen=True)
class Hubness:
    """A hubness correction: ``none`` or ``csls`` with its neighbourhood size *k*."""

    name: str = "none"
    k: int = DEFAULT_K

    @property
    def label(self) -> str:
        return "none" if self.name == "none" else f"csls:{self.k}"

    @property
    def active(self) -> bool:
        return self.name != "none"


def parse_hubness(text: str | Hubness | None) -> Hubness:
    """``none``, ``csls`` (k = 10) or ``csls:K``.

    Raises
    ------
    ParameterError
        Another name, or K not a positive integer.
    """
    if isinstance(text, Hubness):
        return text
    if text is None:
        return Hubness()
    s = str(text).strip().lower()
    name, _, k = s.partition(":")
    if name == "none" and not k:
        return Hubness()
    if name != "csls":
        raise ParameterError(f"unknown hubness correction {text!r}; use none, csls or csls:K")
    if not k:
        return Hubness("csls", DEFAULT_K)
    try:
        kk = int(k)
    except ValueError:
        raise ParameterError(f"hubness correction {text!r}: K must be a positive integer") from None
    if kk < 1:
        raise ParameterError(f"hubness correction {text!r}: K must be a positive integer")
    return Hubness("csls", kk)


def knn_mean(d: np.ndarray, k: int, axis: int = 1) -> np.ndarray:
    """Mean of the *k* smallest finite values along *axis* (fewer when fewer are finite; NaN when none)."""
    x = np.asarray(d, dtype=np.float64)
    if axis == 0:
        x = x.T
    x = np.where(np.isfinite(x), x, np.inf)
    kk = max(1, min(int(k), x.shape[1])) if x.shape[1] else 0
    if kk == 0:
        return np.full(x.shape[0], np.nan)
    part = np.partition(x, kk - 1, axis=1)[:, :kk]
    finite = np.isfinite(part)
    counts = finite.sum(axis=1)
    sums = np.where(finite, part, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def csls(d: np.ndarray, k: int = DEFAULT_K, *, query_terms: np.ndarray | None = None,
         target_terms: np.ndarray | None = None) -> np.ndarray:
    """CSLS-corrected distances ``2 d - m_q - m_t`` of a query x target matrix.

    Parameters
    ----------
    d : np.ndarray [shape=(n_queries, n_targets)]
        Distances (NaN where undefined; it stays NaN).
    k : int
        Neighbourhood size.
    query_terms, target_terms : np.ndarray, optional
        ``m_q`` and ``m_t``; by default computed from *d* itself (each row's and each
        column's *k* smallest distances).
    """
    d = np.asarray(d, dtype=np.float64)
    if d.ndim != 2:
        raise ParameterError(f"CSLS needs a query x target matrix, got shape {d.shape}")
    mq = knn_mean(d, k, axis=1) if query_terms is None else np.asarray(query_terms, dtype=np.float64)
    mt = knn_mean(d, k, axis=0) if target_terms is None else np.asarray(target_terms, dtype=np.float64)
    return 2.0 * d - mq[:, None] - mt[None, :]


def target_terms(reference, targets, method, k: int, *, device: str = "cpu", block_mb: float | None = None
                 ) -> np.ndarray:
    """``m_t`` of each of *targets*: its mean distance to its *k* nearest *reference* queries.

    Parameters
    ----------
    reference : SegmentSet
        The reference queries (a catalog's own items of the query's modality).
    targets : SegmentSet
    method : Method

    Costs one distance per (reference, target) pair: the same as evaluating the catalog.
    """
    from vmtool.ranking.batched import DEFAULT_BLOCK_MB, distances

    usable = reference.lengths > 0 if method.level == "segment" else np.isfinite(reference.clip).all(axis=1)
    ref = reference.subset(np.flatnonzero(usable)) if not usable.all() else reference
    if len(ref) == 0:
        raise ParameterError(f"CSLS needs reference queries: the catalog has no {reference.modality} "
                             "embeddings of its own items")
    d = distances(ref, targets, method, device=device, block_mb=block_mb or DEFAULT_BLOCK_MB)
    return knn_mean(d, k, axis=0)
