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
    P = args.prefilter
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
            "report": rep.to_dict(), "peak_rss_mb": peak_rss_mb()}


def stage_exact(d: Path, args) -> dict:
    """Exact nw-dtw top-10 of every query over the whole catalog, streamed."""
    from vmtool.ranking.batched import distances
    from vmtool.ranking.index import iter_chunks
    from vmtool.ranking.rank import top_k
    from vmtool.ranking.catalog import load_catalog

    qs = load_catalog(d / "queries.h5", "video", clip=False).subset(np.arange(args.queries))
    best_d = np.full((len(qs), 0), np.nan)
    best_i = np.zeros((len(qs), 0), dtype=np.int64)
    t0 = time.perf_counter()
    for a, chunk in iter_chunks(d / "catalog.h5", "audio", chunk_rows=1 << 19):
        dd = distances(qs, chunk, "nw-dtw")
        alld = np.concatenate([best_d, dd], axis=1)
        alli = np.concatenate([best_i, np.broadcast_to(np.arange(a, a + len(chunk)), dd.shape)], axis=1)
        keep = np.stack([top_k(row, 10) for row in alld])
        best_d = np.take_along_axis(alld, keep, 1)
        best_i = np.take_along_axis(alli, keep, 1)
    np.save(d / "exact_top10.npy", best_i)
    r1 = float(np.mean(best_i[:, 0] == np.arange(len(qs))))
    return {"seconds": time.perf_counter() - t0, "r_at_1": r1, "peak_rss_mb": peak_rss_mb()}


def stage_prefilter(d: Path, args) -> dict:
    from vmtool.ranking.catalog import load_item
    from vmtool.ranking.index import open_index, rank_with_index

    t0 = time.perf_counter()
    idx = open_index(d / "catalog.h5", "audio")
    open_s = time.perf_counter() - t0
    exact = np.load(d / "exact_top10.npy")
    qs = [load_item(d / "queries.h5", f"item{i:07d}", "video") for i in range(args.queries)]
    nprobe = max(1, int(idx.ivf.nlist) // 64)  # vmtool index's default (an index built before it stores nlist/16)
    rank_with_index(qs[0], d / "catalog.h5", idx, "nw-dtw", k=10, prefilter=args.prefilter)  # warm (numba)
    times, hits, overlap = [], 0, []
    for i, q in enumerate(qs):
        t = time.perf_counter()
        res = rank_with_index(q, d / "catalog.h5", idx, "nw-dtw", k=10, prefilter=args.prefilter, nprobe=nprobe)
        times.append(time.perf_counter() - t)
        got = [r.index for r in res.results]
        hits += set(got) == set(exact[i])
        overlap.append(len(set(got) & set(exact[i])))
    t = np.array(times) * 1000
    return {"open_index_s": open_s, "p50_ms": float(np.percentile(t, 50)), "p99_ms": float(np.percentile(t, 99)),
            "max_ms": float(t.max()), "exact_top10_found": hits / len(qs), "mean_overlap": float(np.mean(overlap)),
            "prefilter": args.prefilter, "nprobe": int(idx.ivf.nprobe), "peak_rss_mb": peak_rss_mb()}


def stage_btrace(d: Path, args) -> dict:
    from vmtool.ranking.catalog import load_item
    from vmtool.ranking.index import rank_streamed

    q = load_item(d / "queries.h5", "item0000001", "video")
    rank_streamed(q, d / "queries.h5", "video", "btrace", k=10)  # warm the kernels on the tiny file
    t0 = time.perf_counter()
    res = rank_streamed(q, d / "catalog.h5", "audio", "btrace", k=10)
    return {"seconds": time.perf_counter() - t0, "top1": res.results[0].id, "peak_rss_mb": peak_rss_mb()}


STAGES = {"centroids": stage_centroids, "choice": stage_choice, "index": stage_index, "exact": stage_exact,
          "prefilter": stage_prefilter, "btrace": stage_btrace}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--prefilter", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nlist", type=int, default=None, help="lists of the IVF index (default: vmtool index's)")
    ap.add_argument("--usearch", action="store_true", help="also build a usearch HNSW index (slow on 2 cores)")
    ap.add_argument("--stages", default="centroids,choice,index,exact,prefilter,btrace")
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.stage:
        print(json.dumps(STAGES[args.stage](args.dir, args)))
        return
    generate(args.dir, args.items, args.queries, args.seed)
    results = {}
    for st in args.stages.split(","):
        log(f"stage {st}")
        cmd = [sys.executable, str(HERE), "--dir", str(args.dir), "--items", str(args.items), "--queries",
               str(args.queries), "--prefilter", str(args.prefilter), "--stage", st] + (["--usearch"] if args.usearch else []) \
            + (["--nlist", str(args.nlist)] if args.nlist else [])
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            log(f"stage {st} failed:\n{out.stderr[-3000:]}")
            break
        results[st] = json.loads(out.stdout.strip().splitlines()[-1])
        log(f"{st}: {json.dumps(results[st])}")
    (args.dir / f"results-{int(time.time())}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
