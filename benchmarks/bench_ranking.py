"""Ranking speed: the 1,000 x 1,000 evaluation per method, and one query against 100,000 tracks.

Usage::

    python benchmarks/bench_ranking.py                 # everything, rows printed as they come
    python benchmarks/bench_ranking.py --write-docs    # and record them in docs/performance.md
    python benchmarks/bench_ranking.py --skip-large    # only the 1,000 x 1,000 part

On synthetic unit-norm 512-d embeddings (``vmtool.synth.embeddings``), 8 to 16 segments
per item:

1. every method's full 1,000 x 1,000 distance matrix (one call of
   ``vmtool.ranking.distances``, warm), its R@1, and its speedup over a plain Python
   transcription (per pair: the pair's similarity matrix with numpy, then the method's
   loops in Python, as the paper's algorithms are written), timed on a subset of pairs
   and scaled to 10^6 pairs;
2. one query against 100,000 tracks (float32 and float16 storage, each in a fresh
   process): ``btrace``, and ``--prefilter 1000`` + ``nw-dtw``; how often the prefilter's
   top-10 equals the exact top-10 (over 100 queries); the process's peak memory.

The machine is shared: the 1-minute load average is printed with every row, and
``--max-load`` waits (up to ``--wait`` seconds) for a quieter machine before each part.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"
START, END = "<!-- bench_ranking:start -->", "<!-- bench_ranking:end -->"
SECTION = """## Ranking: distances, evaluation and one query against a large catalog

`python benchmarks/bench_ranking.py --write-docs`

Targets (issue 5, on 2 cores): the full 1,000 x 1,000 evaluation in at most 10 s for
`nw-dtw` and `sw-dtw` and 2 s for `trace`/`btrace`; one query against 100,000 tracks in
at most 1 s with `btrace` and 0.2 s with `--prefilter 1000` + `nw-dtw`, whose top-10 should
equal the exact top-10 for at least 95 % of queries. Synthetic unit-norm 512-d embeddings
(`vmtool.synth.embeddings`), 8 to 16 segments per item. The paper reported 13'41" for
NW-DTW and 53" for the trace on its test set (i7 CPU).

"""


def load() -> float:
    return round(os.getloadavg()[0], 2)


def wait_for_quiet(max_load: float | None, wait: float) -> None:
    if max_load is None:
        return
    t0 = time.time()
    while load() > max_load and time.time() - t0 < wait:
        print(f"# load {load()} > {max_load}: waiting", file=sys.stderr, flush=True)
        time.sleep(15)


# --- plain Python transcriptions (per pair) -----------------------------------------------------


def py_pair(method: str, q: np.ndarray, m: np.ndarray, qc: np.ndarray, mc: np.ndarray, indel: float) -> float:
    if method == "clip":
        return float(np.linalg.norm(qc - mc))
    if method == "centroid":  # Seg-VM-Net: squared distance of the raw means
        return float(((q.mean(0) - m.mean(0)) ** 2).sum())
    if method == "centroid-unit":
        a, b = q.mean(0), m.mean(0)
        return float(np.linalg.norm(a / np.linalg.norm(a) - b / np.linalg.norm(b)))
    S = (q @ m.T).tolist()
    kq, kc = len(S), len(S[0])
    if method in ("single", "complete"):  # squared distances of unit vectors
        e = [2 - 2 * s for row in S for s in row]
        return min(e) if method == "single" else max(e)
    if method in ("trace", "btrace", "trace-mean", "btrace-mean"):
        n = min(kq, kc)
        best = -1e300
        for k in range(abs(kc - kq) + 1 if method.startswith("btrace") else 1):
            acc = 0.0
            for i in range(n):
                acc += S[i][i + k] if kc >= kq else S[i + k][i]
            best = max(best, acc / n if method.endswith("-mean") else acc - n)
        return -best if method.endswith("-mean") else -2.0 * best  # unit vectors: sum (2 - 2 s) = -2 (sum s - n)
    g = indel
    local = method == "sw-dtw"
    H = [[0.0] * (kc + 1) for _ in range(kq + 1)]
    if not local:
        for i in range(1, kq + 1):
            H[i][0] = H[i - 1][0] - g
        for j in range(1, kc + 1):
            H[0][j] = H[0][j - 1] - g
    best = 0.0
    for i in range(1, kq + 1):
        for j in range(1, kc + 1):
            v = max(H[i - 1][j - 1] + S[i - 1][j - 1], H[i - 1][j] - g, H[i][j - 1] - g)
            if local:
                v = max(v, 0.0)
                best = max(best, v)
            H[i][j] = v
    return -(best if local else H[kq][kc])


def python_seconds_per_pair(method: str, video, audio, indel: float, n_queries: int = 20,
                            n_targets: int = 100) -> float:
    """Seconds per pair of the Python transcription: the same subset of pairs for every
    method (the first *n_queries* x *n_targets*), best of two runs."""
    qs = [(video.segments(a).astype(np.float64), video.clip[a].astype(np.float64)) for a in range(n_queries)]
    ts = [(audio.segments(b).astype(np.float64), audio.clip[b].astype(np.float64)) for b in range(n_targets)]
    best = np.inf
    for _ in range(2):
        t0 = time.perf_counter()
        for q, qc in qs:
            for m, mc in ts:
                py_pair(method, q, m, qc, mc, indel)
        best = min(best, time.perf_counter() - t0)
    return best / (n_queries * n_targets)


# --- part 1: 1,000 x 1,000 ---------------------------------------------------------------------------


def part_evaluation(n_items: int, seed: int) -> list[dict]:
    from vmtool.ranking import METHODS, distances, ground_truth_ranks, parse_method
    from vmtool.synth import synth_embeddings
    from vmtool.ranking._kernels import threads, warmup

    sets = synth_embeddings(n_items, seed=seed, dim=512)
    video, audio = sets["video"], sets["audio"]
    warmup(np.float32)
    distances(video.subset(range(40)), audio.subset(range(40)), "btrace")  # the grouped path, warm
    rows = []
    print(f"# {n_items} x {n_items}, 512-d, {int(audio.lengths.sum())} track segments, {threads()} thread(s)",
          flush=True)
    print("method | seconds | R@1 % | Python s (est.) | speedup | load", flush=True)
    for name in METHODS:
        m = parse_method(name)
        l0 = load()
        t0 = time.perf_counter()
        d = distances(video, audio, m)
        secs = time.perf_counter() - t0
        r1 = float(100 * np.mean(ground_truth_ranks(d) <= 1))
        per_pair = python_seconds_per_pair(name, video, audio, m.indel or 0.0)
        py = per_pair * len(video) * len(audio)
        row = {"method": name, "seconds": secs, "r1": r1, "python_seconds": py, "speedup": py / secs,
               "load": max(l0, load())}
        rows.append(row)
        print(f"{name} | {secs:.2f} | {r1:.1f} | {py:.0f} | {py / secs:.0f}x | {row['load']}", flush=True)
    return rows


# --- part 2: one query against a large catalog (run in a child process) ------------------------------


def part_large(n_tracks: int, n_queries: int, dtype: str, seed: int, agreement: bool) -> dict:
    from vmtool.ranking import distance_matrices, rank
    from vmtool.synth import synth_embeddings
    from vmtool.ranking._kernels import warmup
    from vmtool.ranking.rank import top_k

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    warmup(np.float32)
    t0 = time.perf_counter()
    sets = synth_embeddings(n_tracks, seed=seed, dim=512, dtype=np.dtype(dtype), video_items=n_queries)
    gen = time.perf_counter() - t0
    audio, video = sets["audio"], sets["video"]
    t0 = time.perf_counter()
    audio.centroids  # part of the catalog's index, computed once
    index_s = time.perf_counter() - t0
    loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    out = {"dtype": dtype, "tracks": n_tracks, "queries": len(video), "segments": int(audio.lengths.sum()),
           "catalog_mb": audio.data.nbytes / 2**20, "catalog_total_mb": audio.nbytes / 2**20,
           "centroids_mb": audio.centroids.nbytes / 2**20, "generate_s": gen, "centroid_index_s": index_s,
           "rss_before_mb": base, "rss_loaded_mb": loaded_mb, "load_start": load()}
    rank(video.subset([0]), audio, "btrace", k=10)  # warm (threads, caches)
    bt = []
    for i in range(5):
        t0 = time.perf_counter()
        rank(video.subset([i % len(video)]), audio, "btrace", k=10)
        bt.append(time.perf_counter() - t0)
    out["btrace_s"] = float(np.median(bt))
    out["btrace_all_s"] = bt
    pre = []
    for i in range(20):
        t0 = time.perf_counter()
        rank(video.subset([i % len(video)]), audio, "nw-dtw", k=10, prefilter=1000)
        pre.append(time.perf_counter() - t0)
    out["prefilter_nw_s"] = float(np.median(pre))
    out["prefilter_nw_all_s"] = pre
    tracemalloc.start()
    rank(video.subset([7 % len(video)]), audio, "btrace", k=10)
    out["btrace_alloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    if agreement:
        t0 = time.perf_counter()
        exact = distance_matrices(video, audio, "nw-dtw")["nw-dtw"]
        out["exact_nw_batch_s"] = time.perf_counter() - t0
        out["exact_r1_pct"] = 100 * float(np.mean(np.argmin(exact, axis=1) == np.arange(len(video))))
        out["prefilter"] = []
        for size in (1000, 5000, 10000):
            same = overlap = top1 = 0
            secs = []
            for i in range(len(video)):
                want = list(top_k(exact[i], 10))
                t0 = time.perf_counter()
                res = rank(video.subset([i]), audio, "nw-dtw", k=10, prefilter=size)
                secs.append(time.perf_counter() - t0)
                got = [r.index for r in res.results]
                same += set(want) == set(got)
                overlap += len(set(want) & set(got))
                top1 += want[0] == got[0]
            n = len(video)
            out["prefilter"].append({"size": size, "agree_top10_pct": 100 * same / n, "mean_overlap": overlap / n,
                                     "agree_top1_pct": 100 * top1 / n, "median_s": float(np.median(secs))})
    out["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    out["load_end"] = load()
    return out


def run_large_child(args, dtype: str, agreement: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", dtype, "--catalog", str(args.catalog), "--queries", str(args.queries),
           "--seed", str(args.seed)] + (["--agreement"] if agreement else [])
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.stderr.write(res.stderr)
        raise SystemExit(f"child process for {dtype} failed")
    return json.loads(res.stdout.strip().splitlines()[-1])


# --- docs ---------------------------------------------------------------------------------------------


def render(evals: list[dict], large: list[dict], info: dict) -> str:
    lines = [START, f"Measured {info['date']} on {info['cpus']} CPU cores ({info['machine']}), numpy {info['numpy']}, "
             f"numba {info['numba']}; 1-minute load average given per row (the machine is shared).", ""]
    if evals:
        lines += ["Full 1,000 x 1,000 distance matrix per method (V2M, vanilla), warm, float32:", "",
                  "| method | seconds | R@1 % | plain Python (est.) | speedup | load |",
                  "|---|---:|---:|---:|---:|---:|"]
        for r in evals:
            lines.append(f"| `{r['method']}` | {r['seconds']:.2f} | {r['r1']:.1f} | {_hms(r['python_seconds'])} | "
                         f"{r['speedup']:.0f}x | {r['load']} |")
        lines.append("")
    for r in large:
        lines += [f"One query against {r['tracks']:,} tracks ({r['segments']:,} segments), **{r['dtype']}** "
                  f"storage (load {r['load_start']}–{r['load_end']}):", "",
                  "| measure | value |", "|---|---:|",
                  f"| `btrace`, whole catalog (median of 5 queries) | {r['btrace_s']:.3f} s |",
                  f"| `--prefilter 1000` + `nw-dtw` (median of 20 queries) | {r['prefilter_nw_s']:.3f} s |",
                  f"| centroid index (once per loaded catalog) | {r['centroid_index_s']:.2f} s |",
                  f"| segment embeddings in memory | {r['catalog_mb']:,.0f} MB |",
                  f"| whole catalog in memory (segments, spans, clip) + centroids | "
                  f"{r['catalog_total_mb'] + r['centroids_mb']:,.0f} MB |",
                  f"| process peak RSS (Python, numpy, numba, catalog, ranking) | {r['rss_peak_mb']:,.0f} MB |",
                  f"| peak allocations of one `btrace` query (tracemalloc) | {r['btrace_alloc_peak_mb']:,.0f} MB |"]
        for p in r.get("prefilter", []):
            lines.append(f"| `--prefilter {p['size']}`: top-10 = exact top-10 / mean overlap / same top-1 "
                         f"({r['queries']} queries), median time | {p['agree_top10_pct']:.0f} % / "
                         f"{p['mean_overlap']:.2f} / {p['agree_top1_pct']:.0f} %, {p['median_s']:.3f} s |")
        if "exact_nw_batch_s" in r:
            lines.append(f"| exact `nw-dtw`, {r['queries']} queries x {r['tracks']:,} tracks in one batch | "
                         f"{r['exact_nw_batch_s']:.1f} s (R@1 {r['exact_r1_pct']:.0f} %) |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def _hms(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 60:
        return f"{int(s // 60)}'{int(round(s % 60)):02d}\""
    return f"{s:.1f} s"


def write_docs(block: str) -> None:
    from _record import write_block

    write_block(block, START, END, SECTION, DOC)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--catalog", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--skip-eval", action="store_true")
    ap.add_argument("--max-load", type=float, default=None, help="wait for a lower 1-min load before each part")
    ap.add_argument("--wait", type=float, default=900)
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--agreement", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(part_large(args.catalog, args.queries, args.child, args.seed, args.agreement)))
        return
    import numba

    info = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "machine": platform.machine(),
            "numpy": np.__version__, "numba": numba.__version__}
    evals = []
    if not args.skip_eval:
        wait_for_quiet(args.max_load, args.wait)
        evals = part_evaluation(args.items, args.seed)
    large = []
    if not args.skip_large:
        for dtype, agreement in (("float32", True), ("float16", False)):
            wait_for_quiet(args.max_load, args.wait)
            print(f"# one query against {args.catalog:,} tracks, {dtype} storage ...", flush=True)
            r = run_large_child(args, dtype, agreement)
            large.append(r)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
                              if not k.endswith("all_s")}, default=str), flush=True)
    block = render(evals, large, info)
    print(block)
    if args.write_docs:
        write_docs(block)
        print(f"# wrote {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
