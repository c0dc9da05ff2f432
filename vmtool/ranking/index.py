"""A prefilter index stored next to a catalog, so a query reads only its candidates.

``vmtool rank --prefilter N`` ranks the catalog by centroid (the normalised mean of an
item's segment embeddings) and re-ranks the best N with the alignment method. On a
catalog too large for memory (a million tracks of 8-16 segments of 512-d take 12 GB as
float16) computing every centroid per run is out of the question: ``vmtool index
CATALOG.h5`` computes them once — reading the segment embeddings in chunks of items, so
memory stays bounded — and stores them in the sidecar file ``CATALOG.h5.index``. A query
then searches the index for its N candidates and reads only their rows from the catalog.

Two kinds of index (``docs/format.md``, "Prefilter index"):

- ``flat``: the unit centroids as float16; a query is one matrix-vector product over all
  of them (exact centroid ranking; numpy only).
- ``ivf``: a faiss inverted-file index (``IndexIVFScalarQuantizer``, float16 codes, inner
  product) over the same unit centroids: a query scans the ``nprobe`` lists nearest to
  it, a few percent of the catalog (approximate centroid ranking; needs ``faiss-cpu``).

The index records the catalog it was built from — number of items, a SHA-256 over the
item ids, their content hashes and the segment offsets, and the model's SHA-256 — and is
refused when the catalog no longer matches (items added by ``embed --resume`` or
``merge``, another model): a stale index is never used silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vmtool.errors import FormatError, ParameterError, VmtoolError
from vmtool.ranking.catalog import MODALITIES, catalog_model
from vmtool.ranking.segments import SegmentSet

__all__ = ["INDEX_SUFFIX", "KINDS", "index_path", "build_index", "open_index", "PrefilterIndex", "IndexReport",
           "fingerprint", "stale_reason", "stale_sidecar", "read_items", "rank_with_index",
           "rank_streamed", "iter_chunks", "stream_centroids"]

INDEX_SUFFIX = ".index"
KIND_INDEX = "index"
INDEX_SCHEMA = "1.0"
KINDS = ("flat", "ivf")
CHUNK_ROWS = 1 << 18  # segment rows read at a time (256 MB of 512-d float16; peak RSS about 4x that)


def index_path(catalog: str | os.PathLike) -> Path:
    """The sidecar index file of *catalog*: ``CATALOG.h5.index``."""
    return Path(os.fspath(catalog) + INDEX_SUFFIX)


def _segments_name(modality: str) -> str:
    return f"{modality}_segments"


def fingerprint(catalog: str | os.PathLike, modality: str) -> dict[str, Any]:
    """What identifies a catalog's *modality* segment embeddings for an index.

    ``{"items", "digest", "model_sha256"}``; the digest is a SHA-256 over the item ids,
    their SHA-256s and the segment offsets (any added, removed, reordered or re-embedded
    item changes it).
    """
    import h5py

    p = Path(catalog)
    model = (catalog_model(p) or {}).get("sha256", "")
    with h5py.File(p, "r") as f:
        name = f"embeddings/{_segments_name(modality)}"
        if name not in f:
            raise FormatError(f"has no segment embeddings '{name}'", p)
        h = hashlib.sha256()
        for col in ("items/id", "items/sha256"):
            for s in f[col].asstr()[()]:
                h.update(s.encode())
                h.update(b"\0")
        offsets = f[f"{name}/offsets"][()].astype("<i8")
        h.update(offsets.tobytes())
        return {"items": int(len(offsets) - 1), "digest": h.hexdigest(), "model_sha256": str(model),
                "dim": int(f[f"{name}/data"].shape[1]), "dtype": str(f[f"{name}/data"].dtype)}


def iter_chunks(catalog: str | os.PathLike, modality: str, *, chunk_rows: int = CHUNK_ROWS):
    """Yield ``(first_item, SegmentSet)`` over a catalog's segment embeddings, whole items at a time.

    About *chunk_rows* rows per chunk (at least one item): memory stays bounded by one
    chunk whatever the catalog's size. The sets carry segments only (no ids, spans).
    """
    import h5py

    with h5py.File(catalog, "r") as f:
        g = f[f"embeddings/{_segments_name(modality)}"]
        data, offsets = g["data"], g["offsets"][()].astype(np.int64)
        n = len(offsets) - 1
        a = 0
        while a < n:
            b = int(np.searchsorted(offsets, offsets[a] + chunk_rows, side="right")) - 1
            b = min(max(b, a + 1), n)
            r0, r1 = int(offsets[a]), int(offsets[b])
            yield a, SegmentSet(data[r0:r1], offsets[a:b + 1] - r0, modality=modality)
            a = b


def stream_centroids(catalog: str | os.PathLike, modality: str, *, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """Unit centroids ``(N, d)`` float32 of every item, reading the segments in chunks.

    Items without segments get a NaN row; a zero mean stays zero (as
    :attr:`SegmentSet.centroids`).
    """
    parts = [s.centroids for _, s in iter_chunks(catalog, modality, chunk_rows=chunk_rows)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def rank_streamed(query: SegmentSet, catalog: str | os.PathLike, modality: str, method, *, k: int,
                  exclude_sha256: str | None = None, device: str = "cpu", chunk_rows: int = CHUNK_ROWS):
    """The exact ranking of the whole catalog, its segments read from disk chunk by chunk.

    Same answer as :func:`vmtool.ranking.rank.rank` without a prefilter; memory holds one
    chunk and one distance per item. *modality* is the targets' (``audio`` for v2m).
    """
    import h5py

    from vmtool.ranking.batched import distances
    from vmtool.ranking.methods import parse_method
    from vmtool.ranking.rank import rank, top_k

    m = parse_method(method)
    t0 = time.perf_counter()
    parts = []
    for _, chunk in iter_chunks(catalog, modality, chunk_rows=chunk_rows):
        d = distances(query, chunk, m, device=device)[0]
        d[chunk.lengths == 0] = np.nan
        parts.append(d)
    d = np.concatenate(parts)
    if exclude_sha256 is not None:
        with h5py.File(catalog, "r") as f:
            d[f["items/sha256"].asstr()[()] == exclude_sha256] = np.nan
    best = top_k(d, k)
    sub = read_items(catalog, modality, best)
    res = rank(query, sub, m, k=k, device=device)
    for r in res.results:
        r.index = int(best[r.index])
    res.n_targets, res.n_candidates = len(d), int(np.isfinite(d).sum())
    res.seconds = time.perf_counter() - t0
    return res


@dataclass
class IndexReport:
    path: Path
    modalities: dict[str, dict[str, Any]]  # modality -> {kind, items, indexed, seconds, bytes}

    def to_dict(self) -> dict[str, Any]:
        return {"index": str(self.path), "modalities": self.modalities}


def build_index(catalog: str | os.PathLike, output: str | os.PathLike | None = None, *, kind: str = "ivf",
                nlist: int | None = None, nprobe: int | None = None, seed: int = 0) -> IndexReport:
    """Build the prefilter index of every modality with segment embeddings; write it atomically.

    Parameters
    ----------
    catalog : path
        A catalog (``vmtool embed``) with segment embeddings.
    output : path, optional
        Default: :func:`index_path` of *catalog*.
    kind : {"ivf", "flat"}
    nlist : int, optional
        ``ivf``: number of lists; default ``4 * sqrt(N)`` (faiss's rule of thumb), at most N/39.
    nprobe : int, optional
        ``ivf``: lists scanned per query by default; default nlist/64 (on a million synthetic
        tracks, 4,000 lists: 98 % of the 100 nearest centroids among 5,000 candidates, at a
        quarter of the time of nlist/16; docs/performance.md). A query scans more lists when
        it asks for more candidates than they hold.
    """
    import h5py

    from vmtool.atomic import atomic_output
    from vmtool.store import KIND_COLLECTION, read_kind

    if kind not in KINDS:
        raise ParameterError(f"unknown index kind {kind!r}; use {', '.join(KINDS)}")
    cat = Path(catalog)
    got, _ = read_kind(cat)
    if got != KIND_COLLECTION:
        raise FormatError(f"is a vmtool {got!r} file, expected a catalog", cat)
    with h5py.File(cat, "r") as f:
        mods = [m for m in MODALITIES if f"embeddings/{_segments_name(m)}" in f]
    if not mods:
        raise FormatError("has no segment embeddings (embeddings/audio_segments or video_segments): "
                          "nothing to index; run vmtool embed with a segmentation", cat)
    faiss = _import_faiss() if kind == "ivf" else None
    out = Path(output) if output is not None else index_path(cat)
    report = IndexReport(out, {})
    with atomic_output(out) as tmp, h5py.File(tmp, "w") as fo:
        fo.attrs["vmtool_kind"] = KIND_INDEX
        fo.attrs["vmtool_schema"] = INDEX_SCHEMA
        fo.attrs["catalog"] = cat.name
        for mod in mods:
            t0 = time.perf_counter()
            fp = fingerprint(cat, mod)
            cents = stream_centroids(cat, mod)
            valid = np.isfinite(cents).all(axis=1)
            g = fo.create_group(mod)
            g.attrs["kind"] = kind
            g.attrs["fingerprint"] = json.dumps(fp)
            ids = np.flatnonzero(valid).astype(np.int64)
            if kind == "flat":
                c16 = np.zeros(cents.shape, dtype=np.float16)
                c16[valid] = cents[valid]
                g.create_dataset("centroids", data=c16, chunks=(min(len(c16), 65536) or 1, c16.shape[1]))
                g.create_dataset("valid", data=valid)
                size = c16.nbytes
            else:
                n_valid = len(ids)
                nl = int(nlist) if nlist else max(1, min(int(4 * np.sqrt(max(n_valid, 1))), n_valid // 39 or 1))
                if n_valid < nl:
                    raise ParameterError(f"--nlist {nl} is more than the {n_valid} items with segments", cat)
                quant = faiss.IndexFlatIP(cents.shape[1])
                ivf = faiss.IndexIVFScalarQuantizer(quant, cents.shape[1], nl, faiss.ScalarQuantizer.QT_fp16,
                                                    faiss.METRIC_INNER_PRODUCT)
                rng = np.random.default_rng(seed)
                train = cents[ids[rng.permutation(n_valid)[: max(nl * 64, min(n_valid, 100_000))]]]
                ivf.cp.seed = seed
                ivf.train(np.ascontiguousarray(train))
                ivf.add_with_ids(np.ascontiguousarray(cents[ids]), ids)
                blob = faiss.serialize_index(ivf)
                g.create_dataset("faiss", data=blob)
                g.attrs["nlist"] = nl
                g.attrs["nprobe"] = int(nprobe) if nprobe else max(1, nl // 64)
                size = blob.nbytes
            report.modalities[mod] = {"kind": kind, "items": fp["items"], "indexed": int(valid.sum()),
                                      "seconds": round(time.perf_counter() - t0, 3), "bytes": int(size)}
            if kind == "ivf":
                report.modalities[mod].update(nlist=int(g.attrs["nlist"]), nprobe=int(g.attrs["nprobe"]))
    return report


def _import_faiss():
    try:
        import faiss
    except ImportError:
        raise ParameterError("an 'ivf' index needs faiss: pip install 'vmtool[index]' (the package faiss-cpu), "
                             "or build a 'flat' index (--kind flat)") from None
    return faiss


def stale_reason(stored: dict[str, Any], current: dict[str, Any]) -> str | None:
    """Why an index built for *stored* does not serve a catalog whose fingerprint is *current*."""
    if stored.get("model_sha256") != current.get("model_sha256"):
        return (f"built for embeddings of another model (model {str(stored.get('model_sha256'))[:12]}, "
                f"the catalog's {str(current.get('model_sha256'))[:12]})")
    if stored.get("items") != current.get("items"):
        return (f"built for a catalog of {stored.get('items')} items, this one has {current.get('items')} "
                "(items added or removed since: embed --resume, merge)")
    if stored.get("digest") != current.get("digest") or stored.get("dim") != current.get("dim"):
        return "built for another catalog (its items or their segments differ)"
    return None


class PrefilterIndex:
    """An open, checked prefilter index of one modality of a catalog."""

    def __init__(self, path: Path, modality: str, kind: str, fingerprint: dict[str, Any], *, centroids=None,
                 valid=None, ivf=None, nprobe: int = 1):
        self.path, self.modality, self.kind = path, modality, kind
        self.n_items = int(fingerprint["items"])
        self.n_indexed = int(valid.sum()) if valid is not None else int(ivf.ntotal)
        self.centroids, self.valid, self.ivf, self.nprobe = centroids, valid, ivf, nprobe

    def search(self, query_centroid: np.ndarray, n: int, *, nprobe: int | None = None) -> np.ndarray:
        """Item indices of the *n* centroids nearest the query's (by direction), best first."""
        q = np.asarray(query_centroid, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(q))
        if norm > 0:
            q = q / norm
        if self.kind == "flat":
            from vmtool.ranking.rank import top_k

            scores = np.empty(len(self.centroids), dtype=np.float32)
            step = 65536
            q16 = q.astype(np.float32)
            for a in range(0, len(self.centroids), step):
                scores[a:a + step] = self.centroids[a:a + step].astype(np.float32) @ q16
            d = -scores.astype(np.float64)
            d[~self.valid] = np.nan
            return top_k(d, n)
        # enough lists for n candidates: twice n over the mean list length, at least nprobe
        nlist = int(self.ivf.nlist)
        need = int(np.ceil(2.0 * n * nlist / max(self.n_indexed, 1)))
        self.ivf.nprobe = min(nlist, max(int(nprobe or self.nprobe), need))
        _, idx = self.ivf.search(q[None, :], int(n))
        idx = idx[0]
        return idx[idx >= 0].astype(np.int64)


def stale_sidecar(catalog: str | os.PathLike) -> str | None:
    """A one-line notice when *catalog* has a sidecar index that no longer matches it, else None.

    For the commands that rewrite a catalog (``embed``, ``merge``): the index is not
    updated by them (rebuilding costs a pass over the catalog); ``rank`` refuses it
    until ``vmtool index`` is run again.
    """
    import h5py

    p = index_path(catalog)
    if not p.exists():
        return None
    try:
        with h5py.File(p, "r") as f:
            stored = {m: json.loads(f[m].attrs["fingerprint"]) for m in f}
        for mod, fp in stored.items():
            why = stale_reason(fp, fingerprint(catalog, mod))
            if why is not None:
                return f"{p}: the prefilter index is now stale ({why}); rebuild it with: vmtool index {catalog}"
    except (OSError, KeyError, ValueError, VmtoolError):
        return f"{p}: not a readable prefilter index of this catalog; rebuild it with: vmtool index {catalog}"
    return None


def open_index(catalog: str | os.PathLike, modality: str, path: str | os.PathLike | None = None) -> PrefilterIndex:
    """Open and check the index of *catalog*'s *modality*.

    Raises
    ------
    VmtoolError
        No index file; or it was built for another catalog or model (stale).
    FormatError
        Not an index file, or no index of *modality* in it.
    """
    import h5py

    from vmtool.store import _check_root

    p = Path(path) if path is not None else index_path(catalog)
    if not p.exists():
        raise VmtoolError(f"no prefilter index; build it with: vmtool index {catalog}", p)
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise FormatError("not an HDF5 file (or damaged)", p) from exc
    with f:
        _check_root(f, p, expected_kind=KIND_INDEX)
        if modality not in f:
            raise FormatError(f"holds no index of the {modality} embeddings (it has: {', '.join(f) or 'none'})", p)
        g = f[modality]
        stored = json.loads(g.attrs["fingerprint"])
        why = stale_reason(stored, fingerprint(catalog, modality))
        if why is not None:
            raise VmtoolError(f"is stale: {why}; rebuild it with: vmtool index {catalog}", p)
        kind = str(g.attrs["kind"])
        if kind == "flat":
            return PrefilterIndex(p, modality, kind, stored, centroids=g["centroids"][()], valid=g["valid"][()])
        if kind == "ivf":
            faiss = _import_faiss()
            ivf = faiss.deserialize_index(np.asarray(g["faiss"][()], dtype=np.uint8))
            return PrefilterIndex(p, modality, kind, stored, ivf=ivf, nprobe=int(g.attrs["nprobe"]))
        raise FormatError(f"unknown index kind {kind!r} (group '{modality}', attribute 'kind')", p)


def read_items(catalog: str | os.PathLike, modality: str, indices: np.ndarray, *,
               meta: tuple[str, ...] = ("id", "source", "sha256")) -> SegmentSet:
    """The items *indices* of a catalog (in that order), reading only their rows.

    *meta*: the item columns to read as well (``ids``, ``sources``, ``sha256s`` of the set).

    An uncompressed contiguous dataset is memory-mapped; a chunked one is read item
    by item through a chunk cache.
    """
    import h5py

    idx = np.asarray(indices, dtype=np.int64)
    order = np.argsort(idx, kind="stable")
    srt = idx[order]
    with h5py.File(catalog, "r", rdcc_nbytes=64 << 20) as f:
        g = f[f"embeddings/{_segments_name(modality)}"]
        offsets = g["offsets"][()]
        lo, hi = offsets[srt].astype(np.int64), offsets[srt + 1].astype(np.int64)
        dim = g["data"].shape[1]
        rows = _gather(catalog, g["data"], lo, hi)
        spans = _gather(catalog, g["spans"], lo, hi) if "spans" in g else None
        uniq, inv = np.unique(srt, return_inverse=True)  # h5py selections must be increasing
        cols = {k: np.asarray(f[f"items/{k}"].asstr()[uniq.tolist()], dtype=object)[inv] if len(uniq) else []
                for k in meta}
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    rows = [rows[j] for j in back]
    lens = np.array([len(r) for r in rows], dtype=np.int64)
    data_arr = np.concatenate(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    if spans is not None:
        sp = np.concatenate([spans[j] for j in back]).astype(np.float64) if len(back) else np.zeros((0, 2))
    else:
        sp = np.concatenate([np.stack([np.arange(n), np.arange(n) + 1.0], axis=1) for n in lens] or [np.zeros((0, 2))])
    return SegmentSet(data_arr, np.concatenate([[0], np.cumsum(lens)]).astype(np.int64), spans=sp,
                      ids=[str(cols["id"][j]) for j in back] if "id" in cols else None,
                      sources=[str(cols["source"][j]) for j in back] if "source" in cols else None,
                      sha256s=[str(cols["sha256"][j]) for j in back] if "sha256" in cols else None, modality=modality)


def _gather(catalog, ds, lo: np.ndarray, hi: np.ndarray) -> list[np.ndarray]:
    """Rows ``lo[j]:hi[j]`` of dataset *ds*, for every j (ranges sorted by start)."""
    offset = ds.id.get_offset()
    if ds.chunks is None and ds.compression is None and offset is not None:
        # contiguous: memory-map the file and gather every row at once (only those pages are read)
        mm = np.memmap(catalog, dtype=ds.dtype, mode="r", offset=offset, shape=ds.shape)
        lens = hi - lo
        rows = np.repeat(lo - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(int(lens.sum()))
        block = np.asarray(mm[rows])
        return np.split(block, np.cumsum(lens)[:-1]) if len(lens) else []
    return [ds[a:b] for a, b in zip(lo, hi)]


def rank_with_index(query: SegmentSet, catalog: str | os.PathLike, index: PrefilterIndex, method, *, k: int,
                    prefilter: int, exclude_sha256: str | None = None, device: str = "cpu",
                    nprobe: int | None = None):
    """:func:`vmtool.ranking.rank.rank` with ``--prefilter``, reading only the candidates.

    The index gives the *prefilter* items whose centroids are nearest the query's; only
    their segment rows are read from *catalog* and ranked with *method*. Result indices
    are the items' indices in the catalog.
    """
    from vmtool.ranking.rank import rank

    if prefilter < 1:
        raise ParameterError(f"--prefilter must be >= 1, got {prefilter}")
    t0 = time.perf_counter()
    cands = index.search(query.centroids[0], prefilter, nprobe=nprobe)
    # the candidates' rows (and content hashes to exclude the query's); ids and sources of the results only
    sub = read_items(catalog, index.modality, cands, meta=("sha256",) if exclude_sha256 is not None else ())
    exclude = None
    if exclude_sha256 is not None:
        exclude = np.array([s == exclude_sha256 for s in sub.sha256s], dtype=bool)
    res = rank(query, sub, method, k=k, exclude=exclude, device=device)
    if res.results:
        named = read_items(catalog, index.modality, cands[[r.index for r in res.results]], meta=("id", "source"))
        for j, r in enumerate(res.results):
            r.index, r.id, r.source = int(cands[r.index]), named.ids[j], named.sources[j]
    res.n_targets, res.n_candidates, res.prefilter = index.n_items, index.n_indexed, int(prefilter)
    res.seconds = time.perf_counter() - t0
    return res
