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

The targets' terms of a catalog cost one distance per pair of its videos and tracks.
``vmtool rank`` computes them once per catalog, method and ``k`` and keeps them in the
sidecar file ``CATALOG.h5.csls`` (:func:`catalog_target_terms`), keyed by the catalog's
content (its items, their content hashes, embedding layout, model and write history):
a catalog changed by ``embed --resume``, ``merge`` or a new model gets new terms, never
stale ones. A query then pays only its own term, the mean of its ``k`` smallest
distances, taken from the distances it is ranked by.

Where it is rank's default: :data:`RANK_DEFAULTS` (``--hubness auto``), chosen by
measurement (docs/performance.md, "Hubness correction (CSLS)").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vmtool.errors import ParameterError

__all__ = ["Hubness", "parse_hubness", "resolve_hubness", "knn_mean", "csls", "target_terms",
           "catalog_target_terms", "terms_path", "DEFAULT_K", "RANK_DEFAULTS", "TERMS_SUFFIX"]

DEFAULT_K = 10
TERMS_SUFFIX = ".csls"
KIND_TERMS = "csls-terms"
TERMS_SCHEMA = "1.0"
#: memory budget of one block of reference x target distances when computing the terms, MB
TERMS_BLOCK_MB = 256.0


@dataclass(frozen=True)
class Hubness:
    """A hubness correction: ``none`` or ``csls`` with its neighbourhood size *k*."""

    name: str = "none"
    k: int = DEFAULT_K

    @property
    def label(self) -> str:
        return self.name if self.name in ("none", "auto") else f"csls:{self.k}"

    @property
    def active(self) -> bool:
        return self.name == "csls"


#: ``vmtool rank --hubness auto``: CSLS for the methods where, on three demo catalogs
#: (``vmtool demo --seed 0, 1, 2``; benchmarks/bench_hubness.py, docs/performance.md), the
#: held-out videos searching the whole catalog (and its held-out tracks searching its
#: videos) found their own match more often on average with it, on no catalog less
#: often, at a lower mean rank: R@10 clip 23 -> 37 %, btrace-mean 35 -> 48 %, nw-dtw
#: 53 -> 72 %, sw-dtw 38 -> 70 % (V2M). btrace and trace (Seg-VM-Net's unnormalised
#: traces) lose with it; single, complete and trace-mean gain on average but not on
#: every catalog. Methods not listed (and ``head``, not measured): none.
RANK_DEFAULTS: dict[str, Hubness] = {
    name: Hubness("csls", DEFAULT_K)
    for name in ("clip", "centroid", "centroid-unit", "btrace-mean", "nw-dtw", "sw-dtw")
}


def parse_hubness(text: str | Hubness | None, *, allow_auto: bool = True) -> Hubness:
    """``none``, ``auto`` (see :func:`resolve_hubness`), ``csls`` (k = 10) or ``csls:K``.

    *allow_auto* False (evaluation, which shows each correction by name): ``auto`` is refused.

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
    if name == "auto" and not k and allow_auto:
        return Hubness("auto")
    if name != "csls":
        raise ParameterError(f"unknown hubness correction {text!r}; use none, {'auto, ' if allow_auto else ''}"
                             "csls or csls:K")
    if not k:
        return Hubness("csls", DEFAULT_K)
    try:
        kk = int(k)
    except ValueError:
        raise ParameterError(f"hubness correction {text!r}: K must be a positive integer") from None
    if kk < 1:
        raise ParameterError(f"hubness correction {text!r}: K must be a positive integer")
    return Hubness("csls", kk)


def resolve_hubness(hub: str | Hubness | None, method, *, prefilter: int | None = None,
                    catalog: str | os.PathLike | None = None, query_modality: str | None = None,
                    streamed: bool = False) -> Hubness:
    """The correction ``auto`` stands for with *method*: :data:`RANK_DEFAULTS`, or none.

    ``auto`` is none with a centroid prefilter (large catalogs: the targets' terms cost
    one distance per pair of the catalog's items, once), for a catalog *streamed* from
    disk (the terms need it in memory), and, given *catalog* and
    *query_modality*, for a catalog without embeddings of that modality (a catalog of
    music alone has no videos to take the tracks' terms against). Other values are
    returned as parsed.
    """
    from vmtool.ranking.methods import parse_method

    h = parse_hubness(hub)
    if h.name != "auto":
        return h
    m = parse_method(method)
    if prefilter is not None or streamed:
        return Hubness()
    h = RANK_DEFAULTS.get(m.name, Hubness())
    if h.active and catalog is not None and query_modality is not None \
            and not _has_embeddings(catalog, query_modality, clip=m.level == "clip"):
        return Hubness()
    return h


def _has_embeddings(catalog: str | os.PathLike, modality: str, *, clip: bool) -> bool:
    """Whether any item of *catalog* has *modality* embeddings (clip or segments)."""
    import h5py

    name = f"embeddings/{modality}" + ("" if clip else "_segments")
    try:
        with h5py.File(catalog, "r") as f:
            if name not in f:
                return False
            g = f[name]
            if "present" in g:
                return bool(np.asarray(g["present"][()]).any())
            return bool(np.diff(g["offsets"][()]).any()) if "offsets" in g else g["data"].shape[0] > 0
    except (OSError, KeyError, TypeError, ValueError):  # missing, not HDF5, damaged: the loader names it
        return True


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


def target_terms(reference, targets, method, k: int, *, device: str = "cpu", block_mb: float | None = None,
                 pair_scorer=None) -> np.ndarray:
    """``m_t`` of each of *targets*: its mean distance to its *k* nearest *reference* queries.

    Parameters
    ----------
    reference : SegmentSet
        The reference queries (a catalog's own items of the query's modality).
    targets : SegmentSet
    method : Method
    pair_scorer : callable, optional
        Method ``head``: the pair classifier (see :func:`~vmtool.ranking.batched.distances`).

    Returns
    -------
    np.ndarray [shape=(len(targets),)]
        NaN for a target with no finite distance.

    Costs one distance per (reference, target) pair: the same as evaluating the catalog.
    The reference is taken in blocks of rows (:data:`TERMS_BLOCK_MB` of distances at a
    time), keeping each target's *k* smallest, so memory does not grow with the catalog
    squared.
    """
    from vmtool.ranking.batched import DEFAULT_BLOCK_MB, distances

    usable = reference.lengths > 0 if method.level == "segment" else np.isfinite(reference.clip).all(axis=1)
    ref = reference.subset(np.flatnonzero(usable)) if not usable.all() else reference
    if len(ref) == 0:
        raise ParameterError(f"CSLS needs reference queries: the catalog has no {reference.modality} "
                             "embeddings of its own items")
    n_t = len(targets)
    rows = max(int(k), int(TERMS_BLOCK_MB * 2**20 / (8 * max(n_t, 1))))
    best = np.full((0, n_t), np.inf)
    for lo in range(0, len(ref), rows):
        block = ref if rows >= len(ref) else ref.subset(np.arange(lo, min(lo + rows, len(ref))))
        d = distances(block, targets, method, device=device, block_mb=block_mb or DEFAULT_BLOCK_MB,
                      pair_scorer=pair_scorer).astype(np.float64)
        best = np.concatenate([best, np.where(np.isfinite(d), d, np.inf)])
        if len(best) > k:
            best = np.partition(best, k - 1, axis=0)[:k]
    return knn_mean(best, k, axis=0)


def terms_path(catalog: str | os.PathLike) -> Path:
    """The sidecar file of a catalog's CSLS terms: ``CATALOG.h5.csls``."""
    return Path(os.fspath(catalog) + TERMS_SUFFIX)


def _catalog_key(catalog: str | os.PathLike) -> str:
    """What the terms depend on: a SHA-256 over the catalog's item ids and content hashes,
    its model, its write history (every vmtool write appends to it: ``embed --resume``,
    ``merge``...) and each embedding dataset's name, shape, type and offsets."""
    import hashlib

    import h5py

    from vmtool.ranking.catalog import hash_strings

    h = hashlib.sha256()
    with h5py.File(catalog, "r") as f:
        for a in ("created", "history", "model"):
            h.update(f"{a}={f.attrs.get(a, '')}\0".encode())
        for col in ("items/id", "items/sha256"):
            if col in f:
                hash_strings(h, f[col])

        def add(name, obj):
            if isinstance(obj, h5py.Dataset):
                h.update(f"{name}:{obj.shape}:{obj.dtype}\0".encode())
                if name.endswith("offsets"):
                    h.update(obj[()].astype("<i8").tobytes())

        if "embeddings" in f:
            f["embeddings"].visititems(add)
    return h.hexdigest()


def _stored_terms(path: Path, key: str) -> dict[str, np.ndarray]:
    """The terms stored in sidecar *path* for the catalog state *key* (empty when the file
    is absent, damaged, or was written for another state of the catalog)."""
    import h5py

    kept: dict[str, np.ndarray] = {}
    if not path.is_file():
        return kept
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("vmtool_kind") == KIND_TERMS and f.attrs.get("catalog_key") == key:
                f.visititems(lambda n, o: kept.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    except OSError:  # damaged or unreadable: computed again and replaced
        return {}
    return kept


def terms_stored(catalog: str | os.PathLike, modality: str, method, k: int) -> bool:
    """Whether *catalog*'s sidecar holds the CSLS terms of its *modality* items for *method*
    and *k*, for the catalog as it is now (then the other side need not be loaded)."""
    path = terms_path(catalog)
    return path.is_file() and f"{modality}/{method.label}/k{int(k)}" in _stored_terms(path, _catalog_key(catalog))


def catalog_target_terms(catalog: str | os.PathLike, targets, method, k: int, *, load_reference,
                         device: str = "cpu", block_mb: float | None = None, pair_scorer=None
                         ) -> tuple[np.ndarray, str]:
    """The CSLS terms of every target of *catalog*, from its sidecar file or computed and stored there.

    Parameters
    ----------
    catalog : path
    targets : SegmentSet
        Every item of the catalog's target modality (``load_catalog``), in the catalog's order.
    method : Method
    k : int
    load_reference : callable
        ``() -> SegmentSet``: the catalog's items of the query's modality (read only when
        the terms are computed).

    Returns
    -------
    (np.ndarray [shape=(len(targets),)], str)
        The terms, and how they were had: ``"read from PATH"``, ``"computed, stored in
        PATH"`` or ``"computed (not stored: REASON)"``.
    """
    import h5py

    from vmtool.errors import VmtoolError

    path = terms_path(catalog)
    key = _catalog_key(catalog)
    name = f"{targets.modality}/{method.label}/k{int(k)}"
    got = _stored_terms(path, key).get(name)
    if got is not None and got.shape == (len(targets),):
        return got.astype(np.float64), f"read from {path}"
    terms = target_terms(load_reference(), targets, method, k, device=device, block_mb=block_mb,
                         pair_scorer=pair_scorer)
    try:
        from vmtool.atomic import atomic_output, output_lock

        # read again under the sidecar's lock: another rank may have stored its own terms
        # (another method or k) while these were computed, and they are kept
        with output_lock(path):
            kept = _stored_terms(path, key)
            kept[name] = terms
            with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
                f.attrs["vmtool_kind"] = KIND_TERMS
                f.attrs["vmtool_schema"] = TERMS_SCHEMA
                f.attrs["catalog"] = Path(catalog).name
                f.attrs["catalog_key"] = key
                for n, v in kept.items():
                    ds = f.create_dataset(n, data=np.asarray(v, dtype=np.float64))
                    ds.attrs["description"] = ("CSLS target term: mean distance of each item to its k nearest "
                                               "items of the other modality")
    except (VmtoolError, OSError) as exc:
        return terms, f"computed (not stored: {exc})"
    return terms, f"computed, stored in {path}"
