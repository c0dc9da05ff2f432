"""Rank a catalog for one query: every target at once, optionally prefiltered by centroid."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vmtool.errors import ParameterError
from vmtool.ranking.align import Alignment, align
from vmtool.ranking.batched import DEFAULT_BLOCK_MB, distances
from vmtool.ranking.hubness import csls, resolve_hubness, target_terms
from vmtool.ranking.methods import DEFAULT_METHOD, RHYTHM, Method, parse_method
from vmtool.ranking.rhythm import combine
from vmtool.ranking.segments import SegmentSet

__all__ = ["Ranked", "Ranking", "rank", "top_k", "prefilter_candidates"]


@dataclass
class Ranked:
    """One result of a ranking.

    Attributes
    ----------
    rank : int
        1 for the best match.
    index : int
        The target's index in the catalog.
    id, source : str or None
        The target item's id and media path.
    distance : float
    span : (float, float) or None
        Alignment methods: start and end of the matched part of the target, seconds.
    segments : (int, int) or None
        Alignment methods: first and last matched target segment.
    """

    rank: int
    index: int
    id: str | None
    source: str | None
    distance: float
    span: tuple[float, float] | None = None
    segments: tuple[int, int] | None = None
    alignment: Alignment | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "id": self.id, "source": self.source, "distance": self.distance,
                "start": None if self.span is None else self.span[0],
                "end": None if self.span is None else self.span[1],
                "segments": None if self.segments is None else list(self.segments)}


@dataclass
class Ranking:
    """The best targets for a query."""

    method: Method
    results: list[Ranked]
    n_targets: int
    n_candidates: int
    prefilter: int | None
    excluded: int
    seconds: float
    hubness: str = "none"

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method.label, "indel": self.method.indel, "targets": self.n_targets,
                "candidates": self.n_candidates, "prefilter": self.prefilter, "excluded": self.excluded, "hubness": self.hubness,
                "seconds": round(self.seconds, 6), "results": [r.to_dict() for r in self.results]}


def top_k(d: np.ndarray, k: int) -> np.ndarray:
    """Indices of the *k* smallest finite values of *d*, best first (ties by index)."""
    d = np.asarray(d, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(d))
    if len(finite) == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    vals = d[finite]
    if k < len(finite):
        part = np.argpartition(vals, k - 1)[:k]
        cut = vals[part].max()
        part = np.flatnonzero(vals <= cut)  # every tie of the k-th value, then sort
    else:
        part = np.arange(len(finite))
    order = np.lexsort((finite[part], vals[part]))
    return finite[part][order][:k]


def prefilter_candidates(query: SegmentSet, catalog: SegmentSet, n: int, candidates: np.ndarray) -> np.ndarray:
    """The *n* candidates whose centroids are nearest the query's, best first.

    Uses the catalog's kept centroids and their norms: one matrix-vector product.
    """
    cq = query.centroids[0].astype(np.float32)
    d2 = catalog.centroid_norms2 - 2.0 * (catalog.centroids @ cq).astype(np.float64)  # + |cq|^2, the same for all
    return candidates[top_k(d2[candidates], n)]


def rank(
    query: SegmentSet,
    catalog: SegmentSet,
    method: str | Method = DEFAULT_METHOD,
    *,
    k: int = 10,
    prefilter: int | None = None,
    exclude: np.ndarray | None = None,
    device: str = "cpu",
    block_mb: float = DEFAULT_BLOCK_MB,
    pair_scorer=None,
    hubness: str | None = None,
    reference: SegmentSet | None = None,
    terms: np.ndarray | None = None,
    rhythm: np.ndarray | None = None,
) -> Ranking:
    """The *k* targets of *catalog* nearest to *query* (a one-item set).

    Parameters
    ----------
    query : SegmentSet
        One item: its segment embeddings (and clip embedding for ``clip``).
    catalog : SegmentSet
        The targets (same width).
    method : str or Method
        Default :data:`~vmtool.ranking.methods.DEFAULT_METHOD` (``btrace-mean``).
    k : int
        How many results.
    prefilter : int, optional
        Rank by centroid first and re-rank only the best *prefilter* targets with
        *method* (for large catalogs).
    exclude : np.ndarray [shape=(len(catalog),), dtype=bool], optional
        Targets never to return (e.g. the query item itself).
    pair_scorer : callable, optional
        Method ``head``: the BCE model's pair classifier (see
        :func:`~vmtool.ranking.batched.distances`).
    hubness : str, optional
        ``csls`` or ``csls:K``: rank by CSLS-corrected distances
        (:mod:`vmtool.ranking.hubness`), the targets' terms taken against *reference*;
        ``auto``: the method's default (:func:`~vmtool.ranking.hubness.resolve_hubness`).
    reference : SegmentSet, optional
        The reference queries of CSLS (the catalog's own items of the query's modality).
    terms : np.ndarray [shape=(len(catalog),)], optional
        The targets' CSLS terms, computed beforehand
        (:func:`~vmtool.ranking.hubness.catalog_target_terms`): *reference* is then not needed.
    rhythm : np.ndarray [shape=(len(catalog),)], optional
        A ``name+rhythm:W`` method: each target's rhythm-fit distance
        (:func:`vmtool.structure.rhythm_fit.rhythm_distances`; NaN leaves a target out),
        added to the learned distance by :func:`vmtool.ranking.rhythm.combine`.

    Returns
    -------
    Ranking
        With, for alignment methods, each result's matched span in the target.
    """
    m = parse_method(method)
    if m.name == RHYTHM:
        raise ParameterError("method 'rhythm' compares no embeddings: rank with vmtool.ranking.rhythm.rank_rhythm")
    if m.rhythm is not None and (rhythm is None or len(rhythm) != len(catalog)):
        raise ParameterError(f"method {m.label!r} needs one rhythm-fit distance per target")
    full, m = m, m.learned
    if len(query) != 1:
        raise ParameterError(f"rank takes one query, got {len(query)}")
    if k < 1:
        raise ParameterError(f"k must be >= 1, got {k}")
    if query.dim != catalog.dim:
        raise ParameterError(f"dimension mismatch: the query has {query.dim}-d embeddings, "
                             f"the catalog {catalog.dim}-d")
    if m.level == "segment" and query.lengths[0] == 0:
        raise ParameterError(f"the query has no segment embeddings; method {m.name!r} needs them")
    t0 = time.perf_counter()
    n = len(catalog)
    if m.level == "clip":
        if catalog.clip is None:
            raise ParameterError("the catalog has no clip embeddings; method 'clip' needs them")
        usable = np.isfinite(catalog.clip).all(axis=1)
    else:
        usable = catalog.lengths > 0
    excluded = 0
    if exclude is not None:
        exclude = np.asarray(exclude, dtype=bool)
        excluded = int((exclude & usable).sum())
        usable &= ~exclude
    candidates = np.flatnonzero(usable)
    pre = None
    if prefilter is not None:
        if prefilter < 1:
            raise ParameterError(f"--prefilter must be >= 1, got {prefilter}")
        if m.level == "segment" and m.name not in ("centroid", "centroid-unit") and prefilter < len(candidates):
            pre = int(prefilter)
            candidates = prefilter_candidates(query, catalog, pre, candidates)
    if pre is not None or excluded:  # excluded targets (--where, --exclude-self) cost no distance
        sub = catalog.subset(candidates)
        d_sub = distances(query, sub, m, device=device, block_mb=block_mb, pair_scorer=pair_scorer)[0]
        d = np.full(n, np.nan)
        d[candidates] = d_sub
    else:
        d = distances(query, catalog, m, device=device, block_mb=block_mb, pair_scorer=pair_scorer)[0]
        d[~usable] = np.nan
    hub = resolve_hubness(hubness, m, prefilter=prefilter)
    if hub.active and len(candidates):
        if terms is not None:
            mt = np.asarray(terms, dtype=np.float64)[candidates]
        elif reference is None:
            raise ParameterError("CSLS needs reference queries (the catalog's items of the query's modality)")
        else:
            mt = target_terms(reference, catalog.subset(candidates), m, hub.k, device=device, block_mb=block_mb,
                              pair_scorer=pair_scorer)
        d[candidates] = csls(d[candidates][None, :], hub.k, target_terms=mt)[0]
    ranked = usable
    if full.rhythm is not None:
        d = combine(d, rhythm, full.rhythm)
        ranked = usable & np.isfinite(np.asarray(rhythm, dtype=np.float64))  # a track without beats is left out
    best = top_k(d, k)
    results = []
    for r, idx in enumerate(best, start=1):
        idx = int(idx)
        item = Ranked(r, idx, catalog.ids[idx] if catalog.ids else None,
                      catalog.sources[idx] if catalog.sources else None, float(d[idx]))
        if m.aligns:
            al = align(query.segments(0), catalog.segments(idx), m, query_spans=query.spans_of(0),
                       target_spans=catalog.spans_of(idx))
            item.alignment = al
            item.span = al.target_span
            item.segments = al.target_segments
        results.append(item)
    return Ranking(full, results, n, int(ranked.sum()), pre, excluded, time.perf_counter() - t0, hub.label)
