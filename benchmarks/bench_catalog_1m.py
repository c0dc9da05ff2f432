"""A catalog too large for memory: one query against 1,000,000 tracks, from disk.

Generates (once, into --dir) a synthetic catalog of N tracks (default 1,000,000) with
8 to 16 segment embeddings each, 512-d, float16, in vmtool's catalog format with the
segment rows in one contiguous uncompressed dataset (so a query memory-maps just its
candidates' rows), and a query file with the video side of the first Q items
(:mod:`vmtool.synth.embeddings`: item i's video matches item i's track). Then measures,
each stage in a fresh process so its peak RSS is its own:

1. the index choice on the catalog's N unit centroids: numpy brute force (float32, the
   exact centroid ranking), faiss IVF (float16 codes) at a few nprobe, usearch HNSW
   (float16) when installed and --usearch: query time and how many of the exact top-P
   centroids each returns;
2. ``vmtool index`` (faiss IVF): build time, file size, peak RSS;
3. the exact ``nw-dtw`` top-10 of the Q queries over the whole catalog (streamed in
   chunks; the reference for recall);
4. ``--prefilter P`` + ``nw-dtw`` through the index for the Q queries: p50/p99 latency
   and how often the exact top-10 is found (recall), peak RSS;
5. exact ``btrace`` of one query over the whole catalog streamed from disk: time, peak RSS.

Targets (2 cores): 4. p50 <= 100 ms, p99 <= 300 ms, exact top-10 for >= 95 % of queries;
5. <= 15 s and peak RSS <= 4 GB. Disk: about 12.5 GB for N = 1,000,000 (check ``df``).

    python benchmarks/bench_catalog_1m.py --dir /big/disk/bench1m [--items 1000000] [--queries 100]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {msg}", flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- 0. generation ----------------------------------------------------------------------

def generate(d: Path, n: int, q: int, seed: int) -> None:
    import h5py

    from vmtool.synth import SynthConfig, synth_chunks
    from vmtool.store import CollectionWriter, Item

    cat, qf = d / "catalog.h5", d / "queries.h5"
    if cat.exists() and qf.exists():
        log(f"reusing {cat}")
        return
    cfg = SynthConfig(dim=512)
    lens, _ = synth_chunks(n, seed=seed, config=cfg, video_items=q)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    rows = int(offsets[-1])
    ids = [f"item{i:07d}" for i in range(n)]
    import hashlib

    shas = [hashlib.sha256(x.encode()).hexdigest() for x in ids]
    model = {"sha256": "synthetic-1m", "name": "synthetic", "dim": 512, "level": "segment",
             "segmentation": {"method": "synthetic", "config": {}, "version": "1"}}
    t0 = time.perf_counter()
    tmp = cat.with_suffix(".tmp.h5")
    with CollectionWriter(tmp, config={"config_version": 1, "synthetic": {"n_items": n, "seed": seed}},
                          command="bench_catalog_1m", flush_items=65536) as w:
        for i in range(n):
            w.add(Item(ids[i], f"synthetic/{ids[i]}.mp4", shas[i], 60.0, True, False, 0.0, 44100), {})
        w.set_attr("model", model)
    qrows, qspans, qoff = [], [], [0]
    with h5py.File(tmp, "a") as f:
        g = f.require_group("embeddings").create_group("audio_segments")
        g.attrs.update({"element": "frames", "modality": "audio", "level": "segment", "extractor": "vmtool-synthetic",
                        "model_sha256": "synthetic-1m", "segmentation": "synthetic"})
        data = g.create_dataset("data", shape=(rows, 512), dtype=np.float16)  # contiguous, uncompressed
        spans = g.create_dataset("spans", shape=(rows, 2), dtype=np.float64)
        g.create_dataset("offsets", data=offsets)
        g.create_dataset("spans_offsets", data=offsets)
        g.create_dataset("rate", data=np.full(n, np.nan))
        g.create_dataset("present", data=np.ones(n, dtype=bool))
        _, chunks = synth_chunks(n, seed=seed, config=cfg, video_items=q)
        for ch in chunks:
            r0, r1 = ch["rows"]
            data[r0:r1] = ch["audio"].astype(np.float16)
            spans[r0:r1] = ch["spans"]
            if "video" in ch:
                nv = len(ch["video_clip"])
                for j in range(nv):
                    i = ch["items"][0] + j
                    a, b = int(offsets[i] - r0), int(offsets[i + 1] - r0)
                    qrows.append(ch["video"][a:b].astype(np.float16))
                    qspans.append(ch["spans"][a:b])
                    qoff.append(qoff[-1] + b - a)
            if ch["items"][0] % 131072 == 0:
                log(f"  generated {ch['items'][1]:,} / {n:,} items")
    os.replace(tmp, cat)
    with CollectionWriter(qf, config={"config_version": 1}, command="bench_catalog_1m") as w:
        for i in range(q):
            w.add(Item(ids[i], f"synthetic/{ids[i]}-video.mp4", hashlib.sha256(f"v{i}".encode()).hexdigest(), 60.0,
                       False, True, 25.0, 0), {})
        w.flush()
        w.write_element("embeddings", "video_segments", qrows, dim=512, dtype=np.float16, present=[True] * q,
                        attrs={"modality": "video", "level": "segment", "extractor": "vmtool-synthetic",
                               "model_sha256": "synthetic-1m", "segmentation": "synthetic"},
                        companions={"spans": qspans})
        w.set_attr("model", model)
    log(f"generated {n:,} items, {rows:,} segments in {time.perf_counter() - t0:.0f} s; "
        f"{cat.stat().st_size / 1e9:.2f} GB")


# --- stages (each in its own process) ----------------------------------------------------

def stage_centroids(d: Path, args) -> dict:
    from vmtool.ranking.index import stream_centroids

    t0 = time.perf_counter()
    c = stream_centroids(d / "catalog.h5", "audio")
    np.save(d / "centroids.npy", c.astype(np.float32))
    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()}


def stage_choice(d: Path, args) -> dict:
    """The index candidates on the N centroids (float32), for the queries' centroids."""
    import faiss

    from vmtool.ranking.catalog import load_item

    x = np.load(d / "centroids.npy", mmap_mode="r")
    x = np.ascontiguousarray(x)
    n = len(x)
    qc = np.stack([load_item(d / "queries.h5", f"item{i:07d}", "video").centroids[0] for i in range(args.queries)])
    qc /= np.linalg.norm(qc, axis=1, keepdims=True)
    P = int(args.prefilter.split(",")[0])
    out: dict = {"n": n, "P": P}
    t0 = time.perf_counter()
    exact = [np.argpartition(-(x @ q), P)[:P] for q in qc]
    out["numpy_flat_ms"] = (time.perf_counter() - t0) / len(qc) * 1000
    top100 = [e[np.argsort(-(x[e] @ q))][:100] for e, q in zip(exact, qc)]
    nlist = int(4 * np.sqrt(n))
    t0 = time.perf_counter()
    ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(x.shape[1]), x.shape[1], nlist,
                                        faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    ivf.train(x[np.sort(rng.choice(n, min(n, nlist * 64), replace=False))])
    ivf.add(x)
    out["faiss_build_s"] = time.perf_counter() - t0
    out["faiss_bytes"] = int(faiss.serialize_index(ivf).nbytes)
    out["faiss"] = []
    for nprobe in (nlist // 64, nlist // 16, nlist // 8):
        ivf.nprobe = max(1, nprobe)
        t0 = time.perf_counter()
        _, idx = ivf.search(qc.astype(np.float32), P)
        ms = (time.perf_counter() - t0) / len(qc) * 1000
        t0 = time.perf_counter()
        for q in qc[:10]:
            ivf.search(q[None, :].astype(np.float32), P)
        ms1 = (time.perf_counter() - t0) / 10 * 1000
        rec = float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(idx, top100)]))
        out["faiss"].append({"nlist": nlist, "nprobe": int(ivf.nprobe), "batch_ms": ms, "one_query_ms": ms1,
                             "top100_in_candidates": rec})
    if args.usearch:
        from usearch.index import Index

        t0 = time.perf_counter()
        ix = Index(ndim=x.shape[1], metric="ip", dtype="f16", connectivity=16)
        ix.add(np.arange(n), x, threads=os.cpu_count())
        out["usearch_build_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        m = ix.search(qc.astype(np.float32), P, threads=os.cpu_count())
        out["usearch_ms"] = (time.perf_counter() - t0) / len(qc) * 1000
        out["usearch_top100_in_candidates"] = float(np.mean([len(set(m.keys[i]) & set(b)) / len(b)
                                                             for i, b in enumerate(top100)]))
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def stage_index(d: Path, args) -> dict:
    from vmtool.ranking.index import build_index, index_path

    t0 = time.perf_counter()
    rep = build_index(d / "catalog.h5", kind="ivf", nlist=args.nlist)
    return {"seconds": time.perf_counter() - t0, "bytes": index_path(d / "catalog.h5").stat().st_size,
            "report": rep.to_dict(), "peak_rss_mb": peak_rss_mb(), "load": os.getloadavg()[0]}


def stage_exact(d: Path, args) -> dict:
    """Exact nw-dtw top-10 of every query over the whole catalog, certified through the index's sketch.

    Ranking 100 queries on the full rows of a million tracks takes hours on a loaded
    2-core machine; on the sketch rows (32 of 512 values) it takes minutes. Each query's
    best 100 by the sketch are then ranked on their full rows. The answer is exact when
    no other track can come closer: a pair's similarity differs from its sketch's by at
    most ``|q_perp| |t_perp| + |sketch(q)| |rounding(t)|`` (the index's ``sketch_error``),
    an alignment by at most the query's segment count times that; a query is *certified*
    when its 10th full distance beats the 101st sketch distance by more than the bound.
    """
    import h5py

    from vmtool.ranking.batched import distances
    from vmtool.ranking.catalog import load_catalog
    from vmtool.ranking.index import index_path, open_index, read_items
    from vmtool.ranking.rank import top_k
    from vmtool.ranking.segments import SegmentSet

    M = 100
    idx = open_index(d / "catalog.h5", "audio")
    with h5py.File(index_path(d / "catalog.h5"), "r") as f:
        err = f["audio/sketch_error"][()]
    qs = load_catalog(d / "queries.h5", "video", clip=False).subset(np.arange(args.queries))
    x = qs.data.astype(np.float32)
    y = x @ idx.projection
    perp = np.sqrt(np.maximum((x * x).sum(1) - (y * y).sum(1), 0))
    ynorm = np.linalg.norm(y, axis=1)
    starts = qs.offsets[:-1]
    bound = qs.lengths * (np.maximum.reduceat(perp, starts) * err[:, 0].max()
                          + np.maximum.reduceat(ynorm, starts) * err[:, 1].max())
    qsk = SegmentSet(y, qs.offsets)
    off = idx.offsets
    best_d = np.full((len(qs), 0), np.inf)
    best_i = np.zeros((len(qs), 0), dtype=np.int64)
    t0 = time.perf_counter()
    step = 20000
    for a in range(0, len(off) - 1, step):
        b = min(a + step, len(off) - 1)
        chunk = SegmentSet(np.asarray(idx.sketch[off[a]:off[b]]), off[a:b + 1] - off[a])
        dd = distances(qsk, chunk, "nw-dtw")
        alld = np.concatenate([best_d, np.where(np.isnan(dd), np.inf, dd)], axis=1)
        alli = np.concatenate([best_i, np.broadcast_to(np.arange(a, b), dd.shape)], axis=1)
        keep = np.argsort(alld, axis=1, kind="stable")[:, :M + 1]
        best_d, best_i = np.take_along_axis(alld, keep, 1), np.take_along_axis(alli, keep, 1)
    sketch_s = time.perf_counter() - t0
    exact, certified = [], 0
    for i in range(len(qs)):
        cands = best_i[i, :M]
        sub = read_items(d / "catalog.h5", "audio", cands, meta=())
        full = distances(qs.subset([i]), sub, "nw-dtw")[0]
        top = top_k(full, 10)
        exact.append(cands[top])
        certified += bool(full[top[-1]] < best_d[i, M] - bound[i])
    best = np.array(exact)
    np.save(d / "exact_top10.npy", best)
    return {"seconds": time.perf_counter() - t0, "sketch_pass_s": sketch_s, "certified": certified / len(qs),
            "max_bound": float(bound.max()), "r_at_1": float(np.mean(best[:, 0] == np.arange(len(qs)))),
            "peak_rss_mb": peak_rss_mb()}


def evict(path: Path) -> None:
    """Drop *path*'s pages from the page cache (that file's only: posix_fadvise DONTNEED)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def stage_prefilter(d: Path, args) -> dict:
    """--prefilter P + nw-dtw through the index, for each P: latency, where it goes, exact top-10 found.

    Candidates by the sketch's centroids (what ``rank --prefilter`` does with a sketch) for
    every P; for the first P also the index's faiss search of the full centroids, then the
    sketch (the path before), and, for P <= 10,000, every candidate on its full rows (no
    sketch stage).
    """
    from vmtool.ranking.catalog import load_item
    from vmtool.ranking.index import open_index, rank_with_index

    t0 = time.perf_counter()
    idx = open_index(d / "catalog.h5", "audio")
    open_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    idx.sketch_centroids  # stored in the index (older ones: computed once per process, on the first query)
    centroids_s = time.perf_counter() - t0
    exact = np.load(d / "exact_top10.npy")
    qs = [load_item(d / "queries.h5", f"item{i:07d}", "video") for i in range(args.queries)]
    for how in ("sketch", "centroid"):
        rank_with_index(qs[0], d / "catalog.h5", idx, "nw-dtw", k=10, prefilter=1000, candidates=how)  # warm
    runs = []
    first = int(args.prefilter.split(",")[0])
    settings = [(int(p), "sketch", None) for p in args.prefilter.split(",")] + [(first, "centroid", None)]
    if first <= 10000:  # every candidate read in full: seconds per query beyond that
        settings.append((first, "centroid", first))
    for P, how, rerank in settings:  # rerank = P: every candidate on its full rows (no sketch stage)
        if args.cold:  # every query's full rows from the disk, not left in the cache by a setting before
            evict(d / "catalog.h5")
        times, hits, overlap, steps = [], 0, [], {}
        for i, q in enumerate(qs):
            t, tim = time.perf_counter(), {}
            res = rank_with_index(q, d / "catalog.h5", idx, "nw-dtw", k=10, prefilter=P, rerank=rerank,
                                  candidates=how, timings=tim)
            times.append(time.perf_counter() - t)
            for k, v in tim.items():
                steps[k] = steps.get(k, 0.0) + v * 1000 / len(qs)
            got = [r.index for r in res.results]
            hits += set(got) == set(exact[i])
            overlap.append(len(set(got) & set(exact[i])))
        t = np.array(times) * 1000
        runs.append({"prefilter": P, "candidates": how, "rerank": rerank or idx.rerank, "sketch": rerank is None,
                     "p50_ms": float(np.percentile(t, 50)), "p99_ms": float(np.percentile(t, 99)),
                     "exact_top10_found": hits / len(qs), "mean_overlap": float(np.mean(overlap)),
                     "steps_ms": {k: round(v, 1) for k, v in steps.items()}, "cold": bool(args.cold),
                     "load": os.getloadavg()[0]})
        log(f"  {runs[-1]}")
    return {"open_index_s": open_s, "sketch_centroids_s": centroids_s, "runs": runs, "peak_rss_mb": peak_rss_mb()}


def _cached_fraction(path: Path, start: int, nbytes: int) -> float:
    """Share of the bytes ``start:start + nbytes`` of *path* in the page cache (``mincore``)."""
    import mmap

    from vmtool.ranking.index import _resident

    base = start - start % mmap.ALLOCATIONGRANULARITY
    with open(path, "rb") as fh:
        m = mmap.mmap(fh.fileno(), start + nbytes - base, offset=base, access=mmap.ACCESS_READ)
    view = np.frombuffer(m, dtype=np.uint8)
    share = _resident(view.ctypes.data, len(view))
    del view
    m.close()
    return share


def stage_btrace(d: Path, args) -> dict:
    """Exact btrace of one query streamed from disk: from a cold page cache (--cold: the file's
    pages are evicted first, posix_fadvise DONTNEED) and from a warm one, peak RSS; the
    other streamed diagonal methods and centroid (warm); where the time goes (the raw read
    of the rows with O_DIRECT, so the page cache does not flatter it; the kernels on the
    chunks held in memory); and the exactness check against the float32 similarity-block
    path (the kernel used before the fused one) on every track."""
    import mmap

    import h5py

    from vmtool.ranking._kernels import half_to_float32, warmup
    from vmtool.ranking.batched import distances
    from vmtool.ranking.catalog import load_item
    from vmtool.ranking.index import iter_chunks, rank_streamed
    from vmtool.ranking.rank import top_k
    from vmtool.ranking.segments import SegmentSet

    cat = d / "catalog.h5"
    out: dict = {}
    with h5py.File(cat, "r") as f:
        ds = f["embeddings/audio_segments/data"]
        start, nbytes, rows = ds.id.get_offset(), ds.id.get_storage_size(), ds.shape[0]
    out["bytes"], out["rows"] = int(nbytes), int(rows)
    block = 64 << 20
    buf = mmap.mmap(-1, block)
    fd = os.open(cat, os.O_RDONLY | getattr(os, "O_DIRECT", 0))
    t0 = time.perf_counter()
    pos, end = start - start % 4096, start + nbytes
    try:
        while pos < end:
            got = os.preadv(fd, [buf], pos)
            if got <= 0:
                break
            pos += got
    finally:
        os.close(fd)
    out["raw_read_s"] = time.perf_counter() - t0
    out["raw_read_gb_s"] = nbytes / 1e9 / out["raw_read_s"]
    q = load_item(d / "queries.h5", "item0000001", "video")
    warmup()
    rank_streamed(q, d / "queries.h5", "video", "btrace", k=1)  # the kernels loaded (numba), off the clock

    def streamed(method: str) -> dict:
        cached = _cached_fraction(cat, start, nbytes)
        t = time.perf_counter()
        res = rank_streamed(q, cat, "audio", method, k=10)
        return {"method": method, "seconds": time.perf_counter() - t, "cached_before": cached,
                "load": os.getloadavg()[0], "top10": [r.id for r in res.results],
                "distances": [r.distance for r in res.results]}

    if args.cold:
        evict(cat)
        out["cold"] = streamed("btrace")
        log(f"  cold: {out['cold']['seconds']:.1f} s (cached before: {out['cold']['cached_before']:.0%})")
    # warm: the rows read into the page cache first (a pass that finds them on the disk reads them around it)
    t0 = time.perf_counter()
    with open(cat, "rb") as fh:
        while fh.readinto(buf):
            pass
    out["cache_fill_s"] = time.perf_counter() - t0
    out["warm"] = []
    for _ in range(3):
        out["warm"].append(streamed("btrace"))
        log(f"  warm: {out['warm'][-1]['seconds']:.1f} s (cached before: {out['warm'][-1]['cached_before']:.0%})")
    out["peak_rss_mb"] = peak_rss_mb()  # the streamed passes only (the reference below holds float32 chunks)
    out["others"] = [streamed(m) for m in ("trace", "btrace-mean", "centroid")]
    # exactness: every track's distance by the float32 similarity-block path (the rows converted first)
    # (and where the time goes: the kernels on chunks held in memory, in the same process)
    fused, plain, secs = [], [], [0.0, 0.0, 0.0]
    for _, chunk in iter_chunks(cat, "audio"):
        chunk = SegmentSet(np.array(chunk.data), chunk.offsets)  # in memory: the kernels alone are timed
        t0 = time.perf_counter()
        fused.append(distances(q, chunk, "btrace")[0])
        t1 = time.perf_counter()
        as32 = SegmentSet(half_to_float32(chunk.data), chunk.offsets)
        t2 = time.perf_counter()
        plain.append(distances(q, as32, "btrace")[0])
        secs[0] += t1 - t0
        secs[1] += t2 - t1
        secs[2] += time.perf_counter() - t2
    fused, plain = np.concatenate(fused), np.concatenate(plain)
    top = top_k(plain, 10)
    ids = [f"item{i:07d}" for i in top]
    out["reference"] = {"fused_s": secs[0], "convert_s": secs[1], "block_s": secs[2], "top10_equal": ids == out["warm"][0]["top10"],
                        "max_abs_diff": float(np.nanmax(np.abs(fused - plain))),
                        "max_rel_diff": float(np.nanmax(np.abs(fused - plain) / np.abs(plain))),
                        "top10_max_abs_diff": float(np.max(np.abs(plain[top] - out["warm"][0]["distances"]))),
                        "same_nan": bool(np.array_equal(np.isnan(fused), np.isnan(plain)))}
    out["load"] = os.getloadavg()[0]
    return out


STAGES = {"centroids": stage_centroids, "choice": stage_choice, "index": stage_index, "exact": stage_exact,
          "prefilter": stage_prefilter, "btrace": stage_btrace}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--prefilter", default="5000,20000,50000",
                    help="candidates from the index, comma-separated (one run of the queries each)")
    ap.add_argument("--write-docs", action="store_true", help="write the figures into docs/performance.md")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nlist", type=int, default=None, help="lists of the IVF index (default: vmtool index's)")
    ap.add_argument("--usearch", action="store_true", help="also build a usearch HNSW index (slow on 2 cores)")
    ap.add_argument("--stages", default="centroids,choice,index,exact,prefilter,btrace")
    ap.add_argument("--keep", action="store_true", help="report the stages of the last run not run again")
    ap.add_argument("--out", type=Path, default=None,
                    help="directory of the results-*.json files (default: --dir; give one of your own when "
                         "--dir is a catalog shared read-only)")
    ap.add_argument("--cold", action="store_true",
                    help="btrace: evict the catalog's pages from the page cache first (posix_fadvise DONTNEED) "
                         "and time a pass from the disk too; prefilter: evict them before each setting")
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.stage:
        print(json.dumps(STAGES[args.stage](args.dir, args)))
        return
    generate(args.dir, args.items, args.queries, args.seed)
    # stages run before (e.g. the index, which takes long) keep their figures in the report
    out_dir = args.out or args.dir  # a catalog directory shared read-only: the results elsewhere
    out_dir.mkdir(parents=True, exist_ok=True)
    earlier = sorted(out_dir.glob("results-*.json"), key=lambda x: x.stat().st_mtime)
    results = json.loads(earlier[-1].read_text()) if earlier and args.keep else {}
    for st in args.stages.split(","):
        log(f"stage {st}")
        cmd = [sys.executable, str(HERE), "--dir", str(args.dir), "--items", str(args.items), "--queries",
               str(args.queries), "--prefilter", str(args.prefilter), "--stage", st] + (["--usearch"] if args.usearch else []) \
            + (["--nlist", str(args.nlist)] if args.nlist else []) + (["--cold"] if args.cold else [])
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            log(f"stage {st} failed:\n{out.stderr[-3000:]}")
            break
        results[st] = json.loads(out.stdout.strip().splitlines()[-1])
        log(f"{st}: {json.dumps(results[st])}")
    (out_dir / f"results-{int(time.time())}.json").write_text(json.dumps(results, indent=2))
    text = report(results, args)
    btrace = report_btrace(results["btrace"], args) if "btrace" in results else ""
    print("\n\n".join(x for x in (text if set(results) - {"btrace"} else "", btrace) if x))
    if args.write_docs:
        sys.path.insert(0, str(HERE.parent))
        from _docs import write_block

        if set(results) - {"btrace"}:
            write_block("bench_catalog_1m", text, "\n## A million-track catalog from disk\n\n")
        if btrace:  # its own block: a run of the btrace stage alone leaves the other figures alone
            write_block("bench_catalog_1m_btrace", btrace, "\n## A million-track catalog from disk: streamed btrace\n\n")


def report(res: dict, args) -> str:
    """The figures of this run, as the Markdown block of docs/performance.md."""
    lines = [f"Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.items:,} tracks, "
             f"{args.queries} queries (`python benchmarks/bench_catalog_1m.py --dir DIR --stages "
             f"{args.stages} --prefilter {args.prefilter}{' --cold' if getattr(args, 'cold', False) else ''}"
             f"{' --keep' if args.keep else ''}`; `--keep` reports "
             "the stages of an earlier run too); every stage in its own process; load average at each figure."]
    if "index" in res:
        r = res["index"]
        m = r["report"]["modalities"]["audio"]
        lines += ["", f"`vmtool index` (ivf, {m['nlist']} lists, sketch of {m['sketch_dim']} directions): "
                  f"{r['seconds']:.0f} s, {r['bytes'] / 1e6:,.0f} MB, peak RSS {r['peak_rss_mb']:,.0f} MB"
                  + (f" (load {r['load']:.1f} at the end)." if "load" in r else ".")]
    if "exact" in res:
        r = res["exact"]
        lines += ["", f"Reference (exact nw-dtw top-10 of each query, certified through the sketch): "
                  f"{r['seconds']:.0f} s (sketch pass {r['sketch_pass_s']:.0f} s); certified exact for "
                  f"{r['certified']:.0%} of queries (largest bound {r['max_bound']:.2g}); R@1 {r['r_at_1']:.2f}."]
    if "prefilter" in res:
        r = res["prefilter"]
        lines += ["", f"`--prefilter P` + `nw-dtw` through the index (opened in {r['open_index_s']:.1f} s, "
                  f"the sketch's centroids ready in {r.get('sketch_centroids_s', 0):.1f} s; "
                  + ("the catalog's pages evicted from the page cache before each setting (--cold); "
                     if any(x.get("cold") for x in r["runs"]) else "")
                  + f"peak RSS {r['peak_rss_mb']:,.0f} MB). Steps: mean ms per query to choose the P candidates, "
                  "rank them on the sketch, read the best from the catalog, rank those:", "",
                  "| P | candidates by | stages | p50 | p99 | exact top-10 found | mean overlap | "
                  "steps (choose / sketch / read / rank) | load |",
                  "|---:|---|---|---:|---:|---:|---:|---|---:|"]
        for x in r["runs"]:
            how = f"sketch, best {x['rerank']} on full rows" if x["sketch"] else "all on full rows"
            by = {"sketch": "sketch centroids (all)", "centroid": "faiss, full centroids"}[x.get("candidates",
                                                                                              "centroid")]
            st = x.get("steps_ms", {})
            steps = " / ".join(f"{st[k]:.0f}" for k in ("candidates", "sketch", "read", "rank")) if st else ""
            lines.append(f"| {x['prefilter']:,} | {by} | {how} | {x['p50_ms']:.0f} ms | {x['p99_ms']:.0f} ms | "
                         f"{x['exact_top10_found']:.0%} | {x['mean_overlap']:.1f} | {steps} | {x['load']:.1f} |")
    return "\n".join(lines)


def report_btrace(r: dict, args) -> str:
    """The streamed btrace figures, as their own Markdown block of docs/performance.md."""
    warm = r["warm"]
    ref = r["reference"]
    lines = [f"Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.items:,} tracks "
             f"(`python benchmarks/bench_catalog_1m.py --dir DIR --stages btrace{' --cold' if args.cold else ''}`), "
             f"in its own process. Exact `btrace` of one query over every track, its {r['bytes'] / 1e9:.1f} GB "
             "of float16 rows streamed from disk:", "",
             "| page cache before the pass | time | load |", "|---|---:|---:|"]
    if "cold" in r:
        c = r["cold"]
        lines.append(f"| cold (the file's pages evicted; {c['cached_before']:.0%} cached) | **{c['seconds']:.1f} s** "
                     f"| {c['load']:.1f} |")
    lines.append(f"| warm (the file read into it first; {min(w['cached_before'] for w in warm):.0%} cached), "
                 f"{len(warm)} passes | **"
                 + " / ".join(f"{w['seconds']:.1f}" for w in warm) + " s** | "
                 + " / ".join(f"{w['load']:.1f}" for w in warm) + " |")
    lines += ["", f"Peak RSS of the streamed passes: {r['peak_rss_mb']:,.0f} MB. The other streamed methods (warm): "
              + ", ".join(f"{o['method']} {o['seconds']:.1f} s" for o in r["others"]) + ". "
              f"The raw read of the rows (O_DIRECT, 64 MB at a time): {r['raw_read_s']:.1f} s "
              f"({r['raw_read_gb_s']:.2f} GB/s). On the chunks held in memory, in the same process: the fused "
              f"kernel {ref['fused_s']:.1f} s, against {ref['convert_s']:.1f} s of float16 -> float32 conversion "
              f"plus {ref['block_s']:.1f} s of the float32 similarity-block path it replaces. Exactness against "
              f"that path on every track: largest difference {ref['max_abs_diff']:.1e} "
              f"(relative {ref['max_rel_diff']:.1e}), the same top-10: {'yes' if ref['top10_equal'] else 'NO'}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
