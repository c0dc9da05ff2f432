"""A prefilter index stored next to a catalog, so a query reads only its candidates.

``vmtool rank --prefilter N`` ranks the catalog by centroid (the normalised mean of an
item's segment embeddings) and re-ranks the best N with the alignment method. On a
catalog too large for memory (a million tracks of 8-16 segments of 512-d take 12 GB as
float16) computing every centroid per run is out of the question: ``vmtool index
CATALOG.h5`` computes them once — reading the segment embeddings in chunks of items, so
memory stays bounded — and stores them in the sidecar file ``CATALOG.h5.index``. A query
then searches the index for its N candidates and reads only their rows from the catalog.

A centroid keeps too little of what an alignment rewards for N to stay small: on a
million synthetic tracks the exact ``nw-dtw`` top-10 lies within the 5,000 nearest
centroids for only 40 % of queries (docs/performance.md). The index therefore also
stores a *sketch* of every segment row: its projection on the ``sketch_dim`` leading
principal directions (uncentred, so dot products are kept) as float16, 32 values instead
of 512. A query ranks its N candidates with the method itself on their sketch rows — a
sixteenth of the bytes of the full rows, read in place by a compiled kernel — and
re-ranks only the best ``rerank`` of them on the full rows: many candidates at the cost
of few. With a sketch, the N candidates are the items nearest by centroid in the
sketch's subspace (every item compared, in memory: at a million tracks faster than the
faiss lists a large N needs); the centroid index below serves an index without a sketch.

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
from vmtool.ranking.catalog import MODALITIES
from vmtool.ranking.segments import SegmentSet

__all__ = ["INDEX_SUFFIX", "KINDS", "index_path", "build_index", "open_index", "PrefilterIndex", "IndexReport",
           "fingerprint", "stale_reason", "stale_sidecar", "read_items", "rank_with_index",
           "rank_streamed", "iter_chunks", "stream_centroids", "too_large", "available_memory",
           "principal_directions", "evaluate_streamed"]

INDEX_SUFFIX = ".index"
KIND_INDEX = "index"
INDEX_SCHEMA = "1.1"
KINDS = ("flat", "ivf")
CHUNK_ROWS = 1 << 18  # segment rows read at a time (256 MB of 512-d float16; peak RSS about 4x that)
SKETCH_DIM = 32  # principal directions of the sketch rows (0: no sketch)
RERANK = 500  # candidates re-ranked on their full rows after the sketch ranking
SKETCH_SAMPLE = 16384  # items whose rows estimate the principal directions


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

    from vmtool.ranking.catalog import catalog_model, hash_strings

    p = Path(catalog)
    model = catalog_model(p)  # the root attributes only (existence, kind and version checked)
    model = model.get("sha256", "") if isinstance(model, dict) else ""
    with h5py.File(p, "r") as f:
        name = f"embeddings/{_segments_name(modality)}"
        if name not in f:
            raise FormatError(f"has no segment embeddings '{name}'", p)
        h = hashlib.sha256()
        for col in ("items/id", "items/sha256"):
            hash_strings(h, f[col])
        offsets = f[f"{name}/offsets"][()].astype("<i8")
        h.update(offsets.tobytes())
        return {"items": int(len(offsets) - 1), "digest": h.hexdigest(), "model_sha256": str(model),
                "dim": int(f[f"{name}/data"].shape[1]), "dtype": str(f[f"{name}/data"].dtype)}


def iter_chunks(catalog: str | os.PathLike, modality: str, *, chunk_rows: int = CHUNK_ROWS, prefetch: bool = True,
                reuse: bool = False):
    """Yield ``(first_item, SegmentSet)`` over a catalog's segment embeddings, whole items at a time.

    About *chunk_rows* rows per chunk (at least one item): memory stays bounded by two
    chunks whatever the catalog's size. The sets carry segments only (no ids, spans).
    A contiguous uncompressed dataset is read by :func:`_contiguous_rows` (read-only
    views of a memory map; with *prefetch*, the next chunk is read while the caller
    works on this one); a chunked one through h5py. *reuse*: the caller keeps nothing
    of a chunk once it asks for the next, so rows not in the page cache may be read
    around it into two buffers used in turn (a single pass over a catalog too large
    for memory: ``rank``, ``evaluate``).
    """
    import h5py

    with h5py.File(catalog, "r") as f:
        g = f[f"embeddings/{_segments_name(modality)}"]
        data, offsets = g["data"], g["offsets"][()].astype(np.int64)
        n = len(offsets) - 1
        bounds, a = [], 0
        while a < n:
            b = int(np.searchsorted(offsets, offsets[a] + chunk_rows, side="right")) - 1
            b = min(max(b, a + 1), n)
            bounds.append((a, b))
            a = b
        start = data.id.get_offset()
        if data.chunks is None and data.compression is None and start is not None:
            reads = _contiguous_rows(catalog, start, data.dtype, data.shape[1], offsets, bounds, prefetch=prefetch,
                                     direct=reuse)
        else:
            reads = (data[int(offsets[a]):int(offsets[b])] for a, b in bounds)
        for (a, b), rows in zip(bounds, reads):
            yield a, SegmentSet(rows, offsets[a:b + 1] - offsets[a], modality=modality)


def _contiguous_rows(path, start: int, dtype, width: int, offsets: np.ndarray, bounds: list[tuple[int, int]], *,
                     prefetch: bool = True, direct: bool = False):
    """The rows of each ``(a, b)`` item range of a contiguous dataset at byte *start*.

    Each range is read where its bytes are (docs/performance.md, "streamed btrace"):

    - in the page cache (at least half its pages, ``mincore``): as a view of a read-only
      memory map, no copy; its pages are mapped in advance (:func:`_populate`) and
      unmapped (``madvise`` DONTNEED) once the caller asks for the next range, so
      resident memory stays about two ranges. A million tracks' rows in the page cache
      took 4.3-5.6 s of ``pread`` into buffers, and as much CPU; mapped, under a second.
    - on the disk, with *direct*: around the page cache (``O_DIRECT``) into two buffers
      used in turn (a view stays valid until the next range is asked for). Through the
      cache, a pass over a file near the size of memory makes the kernel evict as much
      as it reads — on a loaded machine, 1.5-3 times the time of the direct read, the
      extra all CPU — and leaves the other programs' files evicted.
    - else: through the memory map, the kernel asked to read it ahead (``posix_fadvise``).

    With *prefetch* a thread reads the next range while the caller works on this one.
    """
    import mmap
    from concurrent.futures import ThreadPoolExecutor

    row_bytes = np.dtype(dtype).itemsize * width
    rows = int(offsets[-1])
    end = start + rows * row_bytes
    base = start - start % mmap.ALLOCATIONGRANULARITY
    fd = os.open(path, os.O_RDONLY)
    dfd = -1
    try:
        size = os.fstat(fd).st_size
        if end > size:
            raise FormatError(f"ends before its segment rows (byte {size:,} of {end:,})", Path(path))
        if rows == 0:
            yield from (np.zeros((0, width), dtype=dtype) for _ in bounds)
            return
        mm = mmap.mmap(fd, end - base, offset=base, access=mmap.ACCESS_READ)
        arr = np.frombuffer(mm, dtype=dtype, count=rows * width, offset=start - base).reshape(rows, width)
        address = arr.ctypes.data - (start - base)  # of the mapping's first byte
        page = mmap.PAGESIZE
        if direct and hasattr(os, "O_DIRECT"):
            try:
                dfd = os.open(path, os.O_RDONLY | os.O_DIRECT)
            except OSError:  # a file system without direct I/O (tmpfs)
                dfd = -1
        ring: list = []

        def span(j):  # bytes of range j, from the mapping's first byte
            a, b = bounds[j]
            return start - base + int(offsets[a]) * row_bytes, start - base + int(offsets[b]) * row_bytes

        def read_direct(j):
            nonlocal dfd
            lo, hi = span(j)
            alo, ahi = lo - lo % _DIRECT_ALIGN, hi + (-hi) % _DIRECT_ALIGN
            if not ring:
                most = max(span(i)[1] - span(i)[0] for i in range(len(bounds))) + 2 * _DIRECT_ALIGN
                ring.extend(mmap.mmap(-1, most) for _ in range(2))  # page-aligned, as O_DIRECT needs
            buf = memoryview(ring[j % 2])
            done = 0
            while done < hi - alo:
                try:
                    got = os.preadv(dfd, [buf[done:min(ahi - alo, done + _DIRECT_PIECE)]], base + alo + done)
                except OSError:  # direct I/O refused after all: the memory map
                    os.close(dfd)
                    dfd = -1
                    return None
                if got <= 0:
                    raise FormatError(f"ends before its segment rows (byte {base + alo + done:,})", Path(path))
                done += got
            return np.frombuffer(ring[j % 2], dtype=dtype, count=(hi - lo) // row_bytes * width,
                                 offset=lo - alo).reshape(-1, width)

        def fetch(j):
            lo, hi = span(j)
            plo = lo - lo % page
            if dfd >= 0 and _resident(address + plo, hi - plo) < 0.5:
                rows_j = read_direct(j)
                if rows_j is not None:
                    return rows_j
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, base + lo, hi - lo, os.POSIX_FADV_WILLNEED)
            _populate(address + plo, hi - plo)
            a, b = bounds[j]
            return arr[int(offsets[a]):int(offsets[b])]

        with ThreadPoolExecutor(1) as pool:
            nxt = pool.submit(fetch, 0) if prefetch else None
            for j in range(len(bounds)):
                got = nxt.result() if prefetch else fetch(j)
                if prefetch and j + 1 < len(bounds):
                    nxt = pool.submit(fetch, j + 1)
                yield got
                lo, hi = span(j)
                lo, hi = lo - lo % page, hi - hi % page  # whole pages (the last one is shared with the next range)
                if hi > lo and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
                    mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
    finally:
        os.close(fd)
        if dfd >= 0:
            os.close(dfd)


_DIRECT_ALIGN = 4096  # O_DIRECT: offsets and lengths in whole logical blocks
_DIRECT_PIECE = 64 << 20  # bytes per direct read (the disk's full rate from 16 MB on)
_MADV_POPULATE_READ = 22  # Linux >= 5.14


def _libc():
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _resident(address: int, length: int) -> float:
    """Share of the pages of a mapped range in the page cache (``mincore``; 1.0 where it cannot be known)."""
    import ctypes
    import mmap
    import sys

    if not sys.platform.startswith("linux") or length <= 0:
        return 1.0
    vec = np.zeros((length + mmap.PAGESIZE - 1) // mmap.PAGESIZE, dtype=np.uint8)
    if _libc().mincore(ctypes.c_void_p(address), ctypes.c_size_t(length), vec.ctypes.data_as(ctypes.c_void_p)):
        return 1.0
    return float(np.mean(vec & 1))


def _populate(address: int, length: int) -> None:
    """Map a range of a file mapping's pages in advance (``madvise`` MADV_POPULATE_READ), where Linux has it.

    The caller's threads would otherwise fault the pages in one by one as they read
    them: on a million tracks' rows in the page cache, 4.5 s of ranking instead of 1.8 s.
    Through ctypes, so the GIL is released while the kernel waits for a cold disk.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    # EINVAL on older kernels: nothing done, the pages are faulted in as they are read
    _libc().madvise(ctypes.c_void_p(address), ctypes.c_size_t(length), ctypes.c_int(_MADV_POPULATE_READ))


def stream_centroids(catalog: str | os.PathLike, modality: str, *, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """Unit centroids ``(N, d)`` float32 of every item, reading the segments in chunks.

    Items without segments get a NaN row; a zero mean stays zero (as
    :attr:`SegmentSet.centroids`).
    """
    parts = [s.centroids for _, s in iter_chunks(catalog, modality, chunk_rows=chunk_rows)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def available_memory() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable``; the free pages elsewhere)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def too_large(catalog: str | os.PathLike, modality: str | tuple[str, ...], *, fraction: float = 0.5) -> bool:
    """Whether *catalog*'s segment embeddings of *modality* (one, or several held at once)
    take more than *fraction* of the available memory.

    Ranking them in memory needs them as float32 (twice float16 storage): such a catalog
    is streamed from disk instead (:func:`rank_streamed`, :func:`evaluate_streamed`).
    """
    import h5py

    need = 0
    try:
        with h5py.File(catalog, "r") as f:
            for mod in [modality] if isinstance(modality, str) else modality:
                name = f"embeddings/{_segments_name(mod)}/data"
                if name in f:
                    need += int(np.prod(f[name].shape)) * 4
    except (OSError, KeyError, TypeError):  # not a readable catalog: the loader reports it as it always has
        return False
    return need > fraction * available_memory()


def rank_streamed(query: SegmentSet, catalog: str | os.PathLike, modality: str, method, *, k: int,
                  exclude_sha256: str | None = None, exclude: np.ndarray | None = None, device: str = "cpu",
                  chunk_rows: int = CHUNK_ROWS):
    """The exact ranking of the whole catalog, its segments read from disk chunk by chunk.

    Same answer as :func:`vmtool.ranking.rank.rank` without a prefilter; memory holds one
    chunk and one distance per item. *modality* is the targets' (``audio`` for v2m).
    Reading and ranking overlap (:func:`iter_chunks`): a pass costs about the larger of
    the two. *exclude*: items never to return (bool per item, e.g. those ``--where`` leaves out).
    """
    import h5py

    from vmtool.ranking.batched import distances
    from vmtool.ranking.methods import parse_method
    from vmtool.ranking.rank import rank, top_k

    m = parse_method(method)
    t0 = time.perf_counter()
    parts = []
    for _, chunk in iter_chunks(catalog, modality, chunk_rows=chunk_rows, reuse=True):
        d = distances(query, chunk, m, device=device)[0]
        d[chunk.lengths == 0] = np.nan
        parts.append(d)
    d = np.concatenate(parts)
    usable = int(np.isfinite(d).sum())
    excluded = np.zeros(len(d), dtype=bool) if exclude is None else np.asarray(exclude, dtype=bool).copy()
    if exclude_sha256 is not None:
        with h5py.File(catalog, "r") as f:
            excluded |= f["items/sha256"].asstr()[()] == exclude_sha256
    excluded &= np.isfinite(d)
    d[excluded] = np.nan
    best = top_k(d, k)
    sub = read_items(catalog, modality, best)
    res = rank(query, sub, m, k=k, device=device)
    for r in res.results:
        r.index = int(best[r.index])
    res.n_targets, res.excluded = len(d), int(excluded.sum())
    res.n_candidates = usable - res.excluded
    res.seconds = time.perf_counter() - t0
    return res


@dataclass
class IndexReport:
    path: Path
    modalities: dict[str, dict[str, Any]]  # modality -> {kind, items, indexed, seconds, bytes}

    def to_dict(self) -> dict[str, Any]:
        return {"index": str(self.path), "modalities": self.modalities}


def build_index(catalog: str | os.PathLike, output: str | os.PathLike | None = None, *, kind: str = "ivf",
                nlist: int | None = None, nprobe: int | None = None, sketch_dim: int = SKETCH_DIM,
                rerank: int = RERANK, seed: int = 0) -> IndexReport:
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
    sketch_dim : int
        Principal directions kept in the sketch rows (0: no sketch; the candidates are
        then ranked on their full rows). At most the embedding width.
    rerank : int
        With a sketch: how many of the candidates, best by the sketch ranking, are
        ranked again on their full rows (the index's default for ``rank``).
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
    if sketch_dim < 0 or rerank < 1:
        raise ParameterError(f"--sketch-dim must be >= 0 and --rerank >= 1, got {sketch_dim} and {rerank}")
    from vmtool.ranking._kernels import item_means

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
            g = fo.create_group(mod)
            r = min(int(sketch_dim), fp["dim"])
            if r:
                proj = principal_directions(cat, mod, r, seed=seed)
                offsets = _offsets(cat, mod)
                g.create_dataset("projection", data=proj)
                g.create_dataset("offsets", data=offsets)
                sk = g.create_dataset("sketch", shape=(int(offsets[-1]), r), dtype=np.float16)  # contiguous
                # the items' unit sketch centroids, which pick a query's candidates: stored, so a
                # process's first query does not compute them (a million items: 1.5-3 s)
                sc = g.create_dataset("sketch_centroids", shape=(fp["items"], r), dtype=np.float32)  # contiguous
                g.attrs["rerank"] = int(rerank)
            # float16 centroids filled in place: a million 512-d float32 rows and their copies
            # took 8.3 GB of peak RSS; the index stores them as float16 anyway
            cents = np.zeros((fp["items"], fp["dim"]), dtype=np.float16)
            valid = np.zeros(fp["items"], dtype=bool)
            row, errs = 0, []
            for a, chunk in iter_chunks(cat, mod, chunk_rows=CHUNK_ROWS // 4):  # one pass: centroids, sketch rows
                c = chunk.centroids
                valid[a:a + len(c)] = np.isfinite(c).all(axis=1)
                cents[a:a + len(c)][valid[a:a + len(c)]] = c[valid[a:a + len(c)]]
                if r:
                    block, err = _project(chunk.data, proj, errors=chunk.offsets)
                    sk[row:row + len(block)] = block
                    sc[a:a + len(c)] = unit_rows(item_means(block, chunk.offsets))
                    errs.append(err)
                    row += len(block)
            if r:
                g.create_dataset("sketch_error", data=np.concatenate(errs) if errs else np.zeros((0, 2), np.float32))
            g.attrs["kind"] = kind
            g.attrs["fingerprint"] = json.dumps(fp)
            ids = np.flatnonzero(valid).astype(np.int64)
            if kind == "flat":
                g.create_dataset("centroids", data=cents, chunks=(min(len(cents), 65536) or 1, cents.shape[1]))
                g.create_dataset("valid", data=valid)
                size = cents.nbytes
            else:
                n_valid = len(ids)
                nl = int(nlist) if nlist else max(1, min(int(4 * np.sqrt(max(n_valid, 1))), n_valid // 39 or 1))
                if n_valid < nl:
                    raise ParameterError(f"--nlist {nl} is more than the {n_valid} items with segments", cat)
                quant = faiss.IndexFlatIP(cents.shape[1])
                ivf = faiss.IndexIVFScalarQuantizer(quant, cents.shape[1], nl, faiss.ScalarQuantizer.QT_fp16,
                                                    faiss.METRIC_INNER_PRODUCT)
                rng = np.random.default_rng(seed)
                train = cents[np.sort(ids[rng.permutation(n_valid)[: max(nl * 64, min(n_valid, 100_000))]])]
                ivf.cp.seed = seed
                ivf.train(train.astype(np.float32))
                del train
                for b in range(0, n_valid, 65536):  # float32 copies of 65,536 centroids at a time
                    ivf.add_with_ids(cents[ids[b:b + 65536]].astype(np.float32), ids[b:b + 65536])
                blob = faiss.serialize_index(ivf)
                g.create_dataset("faiss", data=blob)
                g.attrs["nlist"] = nl
                g.attrs["nprobe"] = int(nprobe) if nprobe else max(1, nl // 64)
                size = blob.nbytes
            if r:
                size += int(np.prod(sk.shape)) * 2 + int(np.prod(sc.shape)) * 4
            report.modalities[mod] = {"kind": kind, "items": fp["items"], "indexed": int(valid.sum()),
                                      "seconds": round(time.perf_counter() - t0, 3), "bytes": int(size),
                                      "sketch_dim": r, "rerank": int(rerank) if r else None}
            if kind == "ivf":
                report.modalities[mod].update(nlist=int(g.attrs["nlist"]), nprobe=int(g.attrs["nprobe"]))
    return report


def _offsets(catalog, modality: str) -> np.ndarray:
    import h5py

    with h5py.File(catalog, "r") as f:
        return f[f"embeddings/{_segments_name(modality)}/offsets"][()].astype(np.int64)


def _project(rows: np.ndarray, proj: np.ndarray, errors: np.ndarray | None = None):
    """Sketch rows: *rows* ``(n, d)`` times the projection ``(d, r)``, as float16.

    With *errors* (item offsets into *rows*) also, per item, the largest norm of a row's
    part outside the subspace and of its sketch's float16 rounding, ``(items, 2)``: a
    query row ``q`` and a target row ``t`` then have ``|q.t - sketch(q).sketch(t)| <=
    |q_perp| |t_perp| + |sketch(q)| |rounding(t)|`` (bounds for a certified ranking).
    """
    from vmtool.ranking._kernels import half_to_float32

    x = half_to_float32(rows) if rows.dtype == np.float16 else np.asarray(rows, dtype=np.float32)
    y = x @ proj
    y16 = y.astype(np.float16)
    if errors is None:
        return y16
    perp = np.sqrt(np.maximum(np.einsum("ij,ij->i", x, x) - np.einsum("ij,ij->i", y, y), 0))
    rnd = np.linalg.norm(y - y16.astype(np.float32), axis=1)
    starts = np.asarray(errors[:-1], dtype=np.int64)
    err = np.zeros((len(starts), 2), dtype=np.float32)
    has = np.diff(errors) > 0
    if has.any():
        err[has, 0] = np.maximum.reduceat(perp, starts[has])
        err[has, 1] = np.maximum.reduceat(rnd, starts[has])
    return y16, err


def principal_directions(catalog: str | os.PathLike, modality: str, r: int, *, sample: int = SKETCH_SAMPLE,
                         seed: int = 0) -> np.ndarray:
    """The *r* leading eigenvectors ``(d, r)`` float32 of the segment rows' second moment.

    Estimated on the rows of *sample* items drawn at random (all of them in a smaller
    catalog). Uncentred, so a sketch keeps dot products: ``(x W) . (y W)`` is the
    product of the projections of *x* and *y* on the subspace that holds most of the
    rows' energy.
    """
    offsets = _offsets(catalog, modality)
    n = len(offsets) - 1
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(n, size=min(n, sample), replace=False))
    x = read_items(catalog, modality, pick, meta=()).data.astype(np.float64)
    if not len(x):
        raise ParameterError("no segment rows to estimate the sketch's directions from", Path(catalog))
    w, v = np.linalg.eigh(x.T @ x)
    return np.ascontiguousarray(v[:, ::-1][:, :r], dtype=np.float32)


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


def unit_rows(x: np.ndarray) -> np.ndarray:
    """*x* with each row divided by its norm, in place (zero and NaN rows kept)."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=x, where=norm > 0)


def _mapped(path: Path, ds) -> np.ndarray:
    """A dataset of an index file, memory-mapped when stored contiguous and uncompressed, else read."""
    if ds.shape[0] and ds.chunks is None and ds.compression is None and ds.id.get_offset() is not None:
        return np.memmap(path, dtype=ds.dtype, mode="r", offset=ds.id.get_offset(), shape=ds.shape)
    return ds[()]


class PrefilterIndex:
    """An open, checked prefilter index of one modality of a catalog."""

    def __init__(self, path: Path, modality: str, kind: str, fingerprint: dict[str, Any], *, centroids=None,
                 valid=None, ivf=None, nprobe: int = 1, sketch=None, projection=None, offsets=None,
                 rerank: int = RERANK, sketch_centroids=None):
        self.path, self.modality, self.kind = path, modality, kind
        self.n_items = int(fingerprint["items"])
        # ivf: the faiss index, or a function that loads it (deserialising a million centroids takes
        # seconds and a GB, and a query with a sketch does not search it)
        self._ivf = ivf
        if valid is not None:
            self.n_indexed = int(valid.sum())
        elif offsets is not None:  # the items with segments: those the build indexed
            self.n_indexed = int((np.diff(offsets) > 0).sum())
        else:
            self.n_indexed = int(self.ivf.ntotal)
        self.centroids, self.valid, self.nprobe = centroids, valid, nprobe
        # sketch rows (memory-mapped), their projection (d, r) and the segment offsets; None without a sketch
        self.sketch, self.projection, self.offsets, self.rerank = sketch, projection, offsets, int(rerank)
        self._sketch_centroids = sketch_centroids

    @property
    def ivf(self):
        """The faiss index (``ivf`` kind), loaded on first use."""
        if callable(self._ivf):
            self._ivf = self._ivf()
        return self._ivf

    @property
    def sketch_centroids(self) -> np.ndarray:
        """Unit means ``(N, r)`` float32 of every item's sketch rows (NaN rows for items without rows).

        The mean of the sketch rows is the sketch of the mean (up to float16 rounding): these
        are the items' centroids seen in the sketch's subspace. Computed on first use, from
        the memory-mapped sketch (about a second for 12 million rows).
        """
        if self._sketch_centroids is None:  # an index written before they were stored
            from vmtool.ranking._kernels import item_means

            self._sketch_centroids = unit_rows(item_means(self.sketch, self.offsets))
        return self._sketch_centroids

    def sketch_candidates(self, query_rows: np.ndarray, n: int) -> np.ndarray:
        """Item indices of the *n* items whose sketch centroids are nearest the query's, in catalog order.

        *query_rows*: the query's segment rows projected on the sketch (``(m, r)``). The
        catalog order (not best first) lets a ranking walk the sketch rows forwards.
        """
        from vmtool.ranking.batched import _blas_single_thread, _map

        c = self.sketch_centroids
        q = np.asarray(query_rows, dtype=np.float32).mean(axis=0)
        norm = float(np.linalg.norm(q))
        if norm > 0:
            q = q / norm
        score = np.empty(len(c), dtype=np.float32)
        step = -(-len(c) // 2) or 1

        def part(a):
            score[a:a + step] = c[a:a + step] @ q

        with _blas_single_thread():  # two halves in two threads: a million rows in about 10 ms
            _map(part, list(range(0, len(c), step)))
        score[~np.isfinite(score)] = -np.inf
        return np.sort(_largest(score, int(n)))

    def sketched(self, query: SegmentSet, candidates: np.ndarray) -> tuple[SegmentSet, SegmentSet]:
        """The query and the *candidates* (item indices) as sketch rows, for a first ranking."""
        q = SegmentSet(np.asarray(query.data, dtype=np.float32) @ self.projection, query.offsets,
                       modality=query.modality)
        lo, hi = self.offsets[candidates], self.offsets[candidates + 1]
        lens = hi - lo
        rows = np.repeat(lo - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(int(lens.sum()))
        return q, SegmentSet(np.asarray(self.sketch[rows]), np.concatenate([[0], np.cumsum(lens)]),
                             modality=self.modality)

    def sketch_distances(self, query: SegmentSet, candidates: np.ndarray, method, *, device: str = "cpu") -> np.ndarray:
        """*method*'s distances of *query* to *candidates* (item indices) on their sketch rows.

        The segment methods read the rows in place (:mod:`vmtool.ranking._sketch_kernels`);
        others go through :meth:`sketched` and :func:`~vmtool.ranking.batched.distances`.
        NaN for a candidate without rows.
        """
        from vmtool.ranking._kernels import CODES
        from vmtool.ranking.methods import parse_method

        m = parse_method(method)
        if m.name in CODES:
            from vmtool.ranking._sketch_kernels import sketch_distances

            qrows = np.asarray(query.data, dtype=np.float32) @ self.projection
            return sketch_distances(qrows, self.sketch, self.offsets, candidates, m)
        from vmtool.ranking.batched import distances

        qs, ts = self.sketched(query, candidates)
        d = distances(qs, ts, m, device=device)[0]
        d[ts.lengths == 0] = np.nan
        return d

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


def _largest(score: np.ndarray, n: int) -> np.ndarray:
    """Indices of the *n* largest finite values of *score* (in no order).

    ``argpartition`` over a million values took 15-50 ms; a threshold from a sample of
    them (a quantile with room to spare) leaves a few more than *n* to partition.
    """
    finite = np.isfinite(score)
    n = min(n, int(finite.sum()))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    if n < len(score) // 8:
        stride = max(1, len(score) // 16384)
        sample = score[::stride]
        j = int(len(sample) * (1.0 - 1.25 * n / len(score)))
        if 0 < j < len(sample):
            above = np.flatnonzero(score >= np.partition(sample, j)[j])
            if len(above) >= n:
                return above[np.argpartition(-score[above], n - 1)[:n]]
    pick = np.flatnonzero(finite)
    return pick[np.argpartition(-score[pick], n - 1)[:n]] if n < len(pick) else pick


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
        sk = {}
        if "sketch" in g:  # index 1.1
            sk = {"sketch": _mapped(p, g["sketch"]),
                  "projection": g["projection"][()], "offsets": g["offsets"][()].astype(np.int64),
                  "rerank": int(g.attrs["rerank"])}
            if "sketch_centroids" in g:  # stored since 2026-12-06; before, computed on the first query
                sk["sketch_centroids"] = _mapped(p, g["sketch_centroids"])
        if kind == "flat":
            return PrefilterIndex(p, modality, kind, stored, centroids=g["centroids"][()], valid=g["valid"][()],
                                  **sk)
        if kind == "ivf":
            faiss = _import_faiss()
            ds = g["faiss"]
            where = (ds.id.get_offset(), ds.shape) if ds.chunks is None and ds.compression is None else None

            def load(p=p, name=ds.name, where=where):
                if where is not None and where[0] is not None:  # contiguous: mapped, not read into a copy first (faiss copies it once)
                    return faiss.deserialize_index(np.memmap(p, dtype=np.uint8, mode="r", offset=where[0],
                                                             shape=where[1]))
                with h5py.File(p, "r") as f:
                    return faiss.deserialize_index(np.asarray(f[name][()], dtype=np.uint8))

            ivf = load if sk else load()
            return PrefilterIndex(p, modality, kind, stored, ivf=ivf, nprobe=int(g.attrs["nprobe"]), **sk)
        raise FormatError(f"unknown index kind {kind!r} (group '{modality}', attribute 'kind')", p)


def read_items(catalog: str | os.PathLike, modality: str, indices: np.ndarray, *,
               meta: tuple[str, ...] = ("id", "source", "sha256"), offsets: np.ndarray | None = None) -> SegmentSet:
    """The items *indices* of a catalog (in that order), reading only their rows.

    *meta*: the item columns to read as well (``ids``, ``sources``, ``sha256s`` of the set).
    *offsets*: the catalog's segment offsets when the caller holds them already (an
    index does): at a million items reading them again costs more than the rows.

    An uncompressed contiguous dataset is read with one positioned read per item; a
    chunked one item by item through a chunk cache.
    """
    import h5py

    idx = np.asarray(indices, dtype=np.int64)
    with h5py.File(catalog, "r", rdcc_nbytes=64 << 20) as f:
        g = f[f"embeddings/{_segments_name(modality)}"]
        if offsets is None:
            offsets = g["offsets"][()]
        offsets = np.asarray(offsets, dtype=np.int64)
        lo, lens = offsets[idx], offsets[idx + 1] - offsets[idx]
        data_arr = _gather(catalog, g["data"], lo, lens)
        sp = _gather(catalog, g["spans"], lo, lens).astype(np.float64) if "spans" in g else None
        cols = _columns(f, idx, meta)
    if sp is None:
        sp = np.concatenate([np.stack([np.arange(n), np.arange(n) + 1.0], axis=1) for n in lens] or [np.zeros((0, 2))])
    return SegmentSet(data_arr, np.concatenate([[0], np.cumsum(lens)]).astype(np.int64), spans=sp,
                      ids=[str(x) for x in cols["id"]] if "id" in cols else None,
                      sources=[str(x) for x in cols["source"]] if "source" in cols else None,
                      sha256s=[str(x) for x in cols["sha256"]] if "sha256" in cols else None, modality=modality)


def _columns(f, indices: np.ndarray, names) -> dict[str, np.ndarray]:
    """Item columns *names* (strings) of the open catalog *f* at *indices* (any order, repeats allowed)."""
    uniq, inv = np.unique(indices, return_inverse=True)  # h5py selections must be increasing
    return {k: np.asarray(f[f"items/{k}"].asstr()[uniq.tolist()], dtype=object)[inv] if len(uniq) else []
            for k in names}


def _gather(catalog, ds, lo: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Rows ``lo[j]:lo[j] + lens[j]`` of dataset *ds* for every j, one after the other (any order)."""
    offset = ds.id.get_offset()
    if ds.chunks is None and ds.compression is None and offset is not None:
        # contiguous: one positioned read per item straight into the result (500 items of a
        # million, in the page cache: 4 ms, against 6 ms through a memory map's page faults;
        # reading them from 4 threads took 11 ms, the threads contending for the GIL)
        row_bytes = np.dtype(ds.dtype).itemsize * int(np.prod(ds.shape[1:]))
        out = np.empty((int(lens.sum()),) + ds.shape[1:], dtype=ds.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        fd = os.open(catalog, os.O_RDONLY)
        try:
            starts, sizes = (offset + lo * row_bytes).tolist(), (lens * row_bytes).tolist()
            if hasattr(os, "posix_fadvise"):
                # every range asked of the disk at once (the kernel reads ahead, no waiting),
                # then read in order: ranges not in the page cache arrive in parallel instead
                # of one disk round trip each (500 items of a million, cold: 81 -> 19 ms)
                for a, n in zip(starts, sizes):
                    os.posix_fadvise(fd, a, n, os.POSIX_FADV_WILLNEED)
            pos = 0
            for a, n in zip(starts, sizes):
                done = 0
                while done < n:
                    got = os.preadv(fd, [view[pos + done:pos + n]], a + done)
                    if got <= 0:
                        raise FormatError(f"ends before the rows of dataset {ds.name}", Path(catalog))
                    done += got
                pos += n
        finally:
            os.close(fd)
        return out
    order = np.argsort(lo, kind="stable")  # a chunked dataset: item by item, in file order
    parts = [None] * len(lo)
    for j in order:
        parts[j] = ds[int(lo[j]):int(lo[j] + lens[j])]
    return np.concatenate(parts) if parts else np.zeros((0,) + ds.shape[1:], dtype=ds.dtype)


def rank_with_index(query: SegmentSet, catalog: str | os.PathLike, index: PrefilterIndex, method, *, k: int,
                    prefilter: int, exclude_sha256: str | None = None, device: str = "cpu",
                    nprobe: int | None = None, rerank: int | None = None, candidates: str = "sketch",
                    timings: dict[str, float] | None = None):
    """:func:`vmtool.ranking.rank.rank` with ``--prefilter``, reading only the candidates.

    The *prefilter* candidates are the items whose centroids are nearest the query's:
    with a sketch (*candidates* ``sketch``), the centroids in the sketch's subspace, all
    of them compared in memory (``N x r`` values: 128 MB at a million items and r = 32,
    a few milliseconds, where the faiss lists a large *prefilter* needs took tens);
    without a sketch, or with *candidates* ``centroid``, the index's own search (flat or
    faiss) of the full centroids. With a sketch, *method* ranks the candidates on their
    sketch rows, read in place (:mod:`vmtool.ranking._sketch_kernels`), and only the best
    *rerank* (default: the index's) are read from *catalog*; without, all of them are.
    Those are ranked with *method* on their full rows. Result indices are the items'
    indices in the catalog. *timings*, when given, receives the seconds of each step
    (``candidates``, ``sketch``, ``read``, ``rank``).
    """
    from vmtool.ranking.methods import parse_method
    from vmtool.ranking.rank import rank, top_k

    if prefilter < 1:
        raise ParameterError(f"--prefilter must be >= 1, got {prefilter}")
    if candidates not in ("sketch", "centroid"):
        raise ParameterError(f"unknown candidate score {candidates!r}; use sketch or centroid")
    t0 = time.perf_counter()
    m = parse_method(method)
    if len(query) != 1 or query.lengths[0] == 0:  # before any candidate is chosen: one line, no warnings
        raise ParameterError(f"rank takes one query, got {len(query)}" if len(query) != 1 else
                             f"the query has no segment embeddings; method {m.name!r} needs them")
    keep = max(int(rerank or index.rerank), k + (exclude_sha256 is not None))
    steps = {}

    def step(name, since):
        now = time.perf_counter()
        steps[name] = now - since
        return now

    if index.sketch is not None and candidates == "sketch":
        cands = index.sketch_candidates(np.asarray(query.data, dtype=np.float32) @ index.projection, prefilter)
    else:
        cands = index.search(query.centroids[0], prefilter, nprobe=nprobe)
    t = step("candidates", t0)
    if index.sketch is not None and len(cands) > keep:
        cands = cands[top_k(index.sketch_distances(query, cands, m, device=device), keep)]
    t = step("sketch", t)
    # the candidates' rows (and content hashes to exclude the query's); ids and sources of the results only
    sub = read_items(catalog, index.modality, cands, meta=("sha256",) if exclude_sha256 is not None else (),
                     offsets=index.offsets)
    t = step("read", t)
    exclude = None
    if exclude_sha256 is not None:
        exclude = np.array([s == exclude_sha256 for s in sub.sha256s], dtype=bool)
    res = rank(query, sub, method, k=k, exclude=exclude, device=device)
    if res.results:
        import h5py

        best = cands[[r.index for r in res.results]]
        order = np.argsort(best, kind="stable")
        with h5py.File(catalog, "r") as f:  # the results' ids and sources only, not their rows again
            named = _columns(f, best[order], ("id", "source"))
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        for j, r in enumerate(res.results):
            r.index, r.id, r.source = int(best[j]), str(named["id"][back[j]]), str(named["source"][back[j]])
    res.n_targets, res.n_candidates, res.prefilter = index.n_items, index.n_indexed, int(prefilter)
    step("rank", t)
    res.seconds = time.perf_counter() - t0
    if timings is not None:
        timings.update(steps)
    return res


def evaluate_streamed(catalog: str | os.PathLike, methods="btrace-mean", *, scenarios=("vanilla",),
                      directions=("v2m",), device: str = "cpu", progress=None, ids=None, label: str | None = None,
                      against: str = "ids", sample: int = 20000, seed: int = 0, chunk_rows: int = CHUNK_ROWS):
    """:func:`vmtool.ranking.evaluate.evaluate` on a catalog too large for memory.

    The queries (every item, or those of *ids*) are read into memory; the targets are
    read from disk in chunks, and each query keeps only the number of targets closer
    than its own, the nearest 25 (label-match@K) and a sample of distances (plots).
    Same figures as the in-memory evaluation (segment methods, no hubness correction).
    With *ids* and *against* ``ids`` only those items are read, and evaluated in memory.
    """
    import h5py

    from vmtool.progress import Progress
    from vmtool.ranking.batched import distance_matrices
    from vmtool.ranking.evaluate import (RECALL_AT, Evaluation, Score, apply_scenario, catalog_labels,
                                         evaluate_sets, parse_directions, parse_scenarios, rank_metrics)
    from vmtool.ranking.methods import parse_methods

    progress = progress or Progress()
    ms = parse_methods(methods)
    flat = [m.name for m in ms if m.level != "segment"]
    if flat:
        raise ParameterError(f"a catalog streamed from disk is evaluated with segment methods only, not "
                             f"{', '.join(flat)} (choose them with -m, or --in-memory)")
    scens, dirs = parse_scenarios(list(scenarios)), parse_directions(list(directions))
    if against not in ("ids", "all"):
        raise ParameterError(f"unknown candidate set {against!r}; use ids or all")
    with h5py.File(catalog, "r") as f:
        all_ids = list(f["items/id"].asstr()[()])
    lengths = {m: np.diff(_offsets(catalog, m)) for m in MODALITIES}
    paired = np.flatnonzero((lengths["video"] > 0) & (lengths["audio"] > 0))
    labels = catalog_labels(catalog, label)
    if ids is not None:
        pos = {item: i for i, item in enumerate(all_ids)}
        missing = [item for item in ids if item not in pos]
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise ParameterError(f"{len(missing)} id(s) not in the catalog: {', '.join(missing[:5])}{more}", catalog)
        chosen = np.array(sorted({pos[item] for item in ids}), dtype=np.int64)
        if against == "ids":  # a few items: read them and evaluate in memory
            sets = [read_items(catalog, m, chosen, meta=("id",)) for m in ("video", "audio")]
            ev = evaluate_sets(*sets, ms, scenarios=scens, directions=dirs, device=device, progress=progress,
                               labels=None if labels is None else (labels[0][chosen], labels[1][chosen]),
                               sample=sample, seed=seed)
            ev.path, ev.label = str(catalog), None if labels is None else labels[2]
            return ev
        queries = np.intersect1d(chosen, paired)
    else:
        queries = paired
    if len(paired) < 2 or len(queries) < 1:
        raise ParameterError(f"only {len(paired)} item(s) have both modalities; evaluation needs at least 2")
    n, nq, top = len(paired), len(queries), max(RECALL_AT)
    rng = np.random.default_rng(seed)
    scores = []
    steps = [(d, s) for d in dirs for s in scens]
    progress.batch_start(len(steps))
    for direction in dirs:
        qmod, tmod = ("video", "audio") if direction == "v2m" else ("audio", "video")
        qset = read_items(catalog, qmod, queries, meta=())
        own = read_items(catalog, tmod, queries, meta=())
        for scenario in scens:
            progress.file_start(f"{direction} {scenario}", 1.0)
            q, own_t = apply_scenario(qset, own, scenario)
            gt = {m.label: np.diagonal(d).copy() for m, d in
                  zip(ms, distance_matrices(q, own_t, ms, device=device).values())}
            closer = {m.label: np.zeros(nq, dtype=np.int64) for m in ms}
            best = {m.label: (np.full((nq, 0), np.inf), np.zeros((nq, 0), dtype=np.int64)) for m in ms}
            others = {m.label: [] for m in ms}
            secs = {m.label: 0.0 for m in ms}
            for a, chunk in iter_chunks(catalog, tmod, chunk_rows=chunk_rows, reuse=True):
                sel = paired[(paired >= a) & (paired < a + len(chunk))]
                if not len(sel):
                    continue
                t = apply_scenario(qset, chunk.subset(sel - a), scenario)[1]
                timings: dict[str, float] = {}
                dd = distance_matrices(q, t, ms, device=device, timings=timings)
                is_own = sel[None, :] == queries[:, None]
                for m in ms:
                    x = np.where(np.isnan(dd[m.label]), np.inf, dd[m.label])
                    x[is_own] = gt[m.label][np.flatnonzero(is_own.any(axis=1))]  # the one value ranked against
                    secs[m.label] += timings[m.label]
                    closer[m.label] += ((x < gt[m.label][:, None]) & ~is_own).sum(axis=1)
                    bd, bi = best[m.label]
                    alld = np.concatenate([bd, x], axis=1)
                    alli = np.concatenate([bi, np.broadcast_to(sel, x.shape)], axis=1)
                    keep = np.argsort(alld, axis=1, kind="stable")[:, :top]  # ties: the earlier item first
                    best[m.label] = np.take_along_axis(alld, keep, 1), np.take_along_axis(alli, keep, 1)
                    off = x[~is_own]
                    want = int(np.ceil(sample * len(sel) / n))
                    others[m.label].append(off[rng.choice(len(off), min(want, len(off)), replace=False)])
            for m in ms:
                g = gt[m.label]
                ranks = 1 + closer[m.label]
                ranks[~np.isfinite(g)] = n
                metrics = rank_metrics(ranks)
                if labels is not None:
                    ql, tl = (labels[0], labels[1]) if direction == "v2m" else (labels[1], labels[0])
                    metrics.update(_label_match_top(best[m.label][1], ql[queries], tl, tl[paired]))
                oth = np.concatenate(others[m.label]) if others[m.label] else np.zeros(0)
                scores.append(Score(m.label, direction, scenario, nq, metrics, secs[m.label], ranks.astype(np.int64),
                                    np.where(np.isfinite(g), g, np.nan), oth[:sample], n_candidates=n))
            progress.file_done(f"{direction} {scenario}", True)
    ev = Evaluation(scores, nq, ms, scens, dirs, ids=[all_ids[i] for i in queries], hubness=["none"],
                    n_candidates=n if nq < n else None)
    ev.path, ev.label = str(catalog), None if labels is None else labels[2]
    return ev


def _label_match_top(nearest: np.ndarray, query_labels, target_labels, candidate_labels) -> dict[str, float]:
    """:func:`vmtool.ranking.evaluate.label_match` from each query's nearest targets (item indices)."""
    from vmtool.ranking.evaluate import RECALL_AT

    ql, tl = np.asarray(query_labels, dtype=object), np.asarray(target_labels, dtype=object)
    has = ql != ""
    if not has.any():
        return {**{f"label_match{k}": float("nan") for k in RECALL_AT}, "label_chance": float("nan")}
    same = tl[nearest[has]] == ql[has][:, None]
    out = {f"label_match{k}": float(100.0 * same[:, :min(k, same.shape[1])].mean()) for k in RECALL_AT}
    cl = np.asarray(candidate_labels, dtype=object)
    out["label_chance"] = float(100.0 * np.mean([np.mean(cl == q) for q in ql[has]]))
    return out
