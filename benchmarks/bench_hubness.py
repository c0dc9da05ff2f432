"""Retrieval with and without the CSLS hubness correction, over several seeds.

    python benchmarks/bench_hubness.py [--synthetic-seeds 0 1 2] [--demo DIR ...] [--write-docs]

Two corpora:

- the generated embedding corpus (``vmtool.synth.synth_embeddings``: 120 items, 32-d,
  noise 6 so that no method is at 100 %, the last 20 held out), one per seed;
- demo directories written by ``vmtool demo --dir DIR --seed S`` (their ``catalog.h5``
  and ``test-ids.txt``): a model trained on 100 generated music videos, 20 held out.

Each is evaluated in the two views the demo reports: the held-out videos against the
held-out tracks (the papers' protocol on a test split), and the held-out videos against
every track of the catalog (what a user searching it sees). Figures are the mean and
the spread (min-max) over the seeds of R@10 and mean rank, per direction, method and
hubness correction; the load average is recorded with them. The demos' whole-catalog
V2M figures decide ``vmtool rank --hubness auto`` (``vmtool.ranking.hubness.RANK_DEFAULTS``):
the last table says, per method, on how many demos CSLS raised R@10 and lowered the
mean rank, and whether the rule CSLS is a default by holds: over the demos' whole-catalog
view, in both directions, it raises the mean R@10 with no demo's R@10 falling, and lowers
the mean rank. The showcase: the demo's first held-out video (its rule, not a chosen one)
ranking every track with each method, without CSLS and with rank's default.
"""

from __future__ import annotations

import argparse
import os
import platform
from datetime import date
from pathlib import Path

import numpy as np

from vmtool.synth import synth_embeddings
from vmtool.ranking.evaluate import evaluate, evaluate_sets

from _docs import write_block  # benchmarks run as scripts: this folder is on sys.path

METHODS = "clip,centroid,centroid-unit,single,complete,trace,trace-mean,btrace,btrace-mean,nw-dtw,sw-dtw"
HUBNESS = ("none", "csls:10")
DIRECTIONS = ("v2m", "m2v")


def _scores(ev, rows: dict, key: tuple) -> None:
    for s in ev.scores:
        rows.setdefault(key[:1] + (s.direction.upper(),) + key[1:] + (s.method, s.hubness), []).append(
            (s.metrics["r10"], s.metrics["mean_rank"]))


def synthetic(seeds: list[int], rows: dict, n: int = 120, held: int = 20) -> None:
    for seed in seeds:
        sets = synth_embeddings(n, seed=seed, dim=32, noise=6.0)
        v, a = sets["video"], sets["audio"]
        test = np.arange(n - held, n)
        methods = METHODS.replace("clip,", "") if v.clip is None else METHODS
        _scores(evaluate_sets(v.subset(test), a.subset(test), methods, hubness=HUBNESS, directions=DIRECTIONS),
                rows, ("generated", "held-out vs held-out"))
        _scores(evaluate_sets(v, a, methods, hubness=HUBNESS, query_rows=test, directions=DIRECTIONS), rows,
                ("generated", "held-out vs all"))


def cost(cat: str, qid: str, method: str = "nw-dtw", repeat: int = 5) -> str:
    """What CSLS costs rank: one query without it, the catalog's terms (once), one query with them."""
    import time

    from vmtool.ranking import load_catalog, load_item, parse_method, rank
    from vmtool.ranking.hubness import target_terms

    q, tracks, videos = load_item(cat, qid, "video"), load_catalog(cat, "audio"), load_catalog(cat, "video")
    m = parse_method(method)
    rank(q, tracks, m, k=10)  # compiled kernels warm

    def best(fn):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return min(times), out

    plain, _ = best(lambda: rank(q, tracks, m, k=10, hubness="none"))
    once, terms = best(lambda: target_terms(videos, tracks, m, 10))
    corrected, _ = best(lambda: rank(q, tracks, m, k=10, hubness="csls", terms=terms))
    return (f"Cost in rank ({method}, {len(tracks)} tracks, {len(videos)} videos; best of {repeat}): one query "
            f"{plain * 1e3:.1f} ms without CSLS, {corrected * 1e3:.1f} ms with the stored terms "
            f"({corrected / plain:.2f}x); the terms, computed once per catalog, {once * 1e3:.0f} ms "
            f"({once / plain:.0f} queries' worth).")


def demos(dirs: list[Path], rows: dict, showcase: list[str]) -> None:
    from vmtool.ranking import load_catalog, load_item, rank

    for d in dirs:
        ids = [x.strip() for x in (d / "test-ids.txt").read_text().splitlines() if x.strip()]
        cat = str(d / "catalog.h5")
        _scores(evaluate(cat, METHODS, ids=ids, hubness=HUBNESS, directions=DIRECTIONS), rows,
                ("demo", "held-out vs held-out"))
        _scores(evaluate(cat, METHODS, ids=ids, against="all", hubness=HUBNESS, directions=DIRECTIONS), rows,
                ("demo", "held-out vs all"))
        # the demo's showcase: its first held-out video ranks the catalog's tracks
        q = load_item(cat, ids[0], "video")
        tracks, videos = load_catalog(cat, "audio"), load_catalog(cat, "video")
        own = []
        for m in METHODS.split(","):
            got = []
            for h in HUBNESS:
                res = rank(q, tracks, m, k=len(tracks), hubness=h, reference=videos)
                got.append(next(r.rank for r in res.results if r.id == ids[0]))
            own.append(f"{m} {got[0]} -> {got[1]}")
        showcase.append(f"{d.name}: {ids[0]}'s own music among {len(tracks)} tracks, rank without -> with CSLS: "
                        + "; ".join(own))
    if dirs:
        ids = [x.strip() for x in (dirs[0] / "test-ids.txt").read_text().splitlines() if x.strip()]
        showcase.append(cost(str(dirs[0] / "catalog.h5"), ids[0]))


def table(rows: dict, load: float, seeds: dict, showcase: list[str]) -> str:
    lines = [f"Measured {date.today().isoformat()} on {os.cpu_count()} CPU cores ({platform.machine()}), load "
             f"average {load:.1f}: `python benchmarks/bench_hubness.py` "
             f"({'; '.join(f'{k}: {v}' for k, v in seeds.items())}). Vanilla scenario; mean over the seeds "
             "[min-max]; CSLS with k = 10.", "",
             "| corpus | direction | view | method | R@10 none | R@10 csls | mean rank none | mean rank csls |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    views = ["held-out vs held-out", "held-out vs all"]
    order = METHODS.split(",")
    keys = sorted({k[:4] for k in rows}, key=lambda k: (k[0], DIRECTIONS.index(k[1].lower()), views.index(k[2]),
                                                         order.index(k[3])))
    for corpus, direction, view, method in keys:
        cells = []
        for i in (0, 1):
            for h in HUBNESS:
                vals = np.array([x[i] for x in rows[(corpus, direction, view, method, h)]])
                fmt = "{:.0f}" if i == 0 else "{:.1f}"
                cells.append(f"{fmt.format(vals.mean())} [{fmt.format(vals.min())}-{fmt.format(vals.max())}]")
        lines.append(f"| {corpus} | {direction} | {view} | {method} | " + " | ".join(cells) + " |")
    wins = [k for k in keys if k[0] == "demo" and k[2] == "held-out vs all"]
    if wins:
        from vmtool.ranking.hubness import RANK_DEFAULTS

        lines += ["", "Per method, over the demos, whole catalog: on how many CSLS raised R@10 (= ties) and "
                  "lowered the mean rank; whether the rule holds (both directions: mean R@10 up, none down, "
                  "mean rank down); rank's default (`--hubness auto`).", "",
                  "| method | V2M R@10 up (=) | V2M mean rank down | M2V R@10 up (=) | M2V mean rank down "
                  "| rule | auto |",
                  "|---|---:|---:|---:|---:|---|---|"]
        for method in order:
            cells, rule = [], True
            for direction in ("V2M", "M2V"):
                key = ("demo", direction, "held-out vs all", method)
                if key + (HUBNESS[0],) not in rows:
                    continue
                a, b = (np.array(rows[key + (h,)]) for h in HUBNESS)
                up, tie = int((b[:, 0] > a[:, 0]).sum()), int((b[:, 0] == a[:, 0]).sum())
                down = int((b[:, 1] < a[:, 1]).sum())
                cells += [f"{up} ({tie}) of {len(a)}", f"{down} of {len(a)}"]
                rule &= bool(b[:, 0].mean() > a[:, 0].mean() and (b[:, 0] >= a[:, 0]).all()
                             and b[:, 1].mean() < a[:, 1].mean())
            if not cells:
                continue
            auto = RANK_DEFAULTS[method].label if method in RANK_DEFAULTS else "none"
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {'csls' if rule else 'none'} | {auto} |")
    if showcase:
        lines += ["", "The demo's showcase query (its first held-out video) against the whole catalog:", ""] \
            + [f"- {x}" for x in showcase[:-1]] + ["", showcase[-1]]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synthetic-seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    ap.add_argument("--demo", type=Path, nargs="*", default=[])
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    rows: dict = {}
    synthetic(args.synthetic_seeds, rows)
    showcase: list[str] = []
    demos(args.demo, rows, showcase)
    seeds = {"generated": f"{len(args.synthetic_seeds)} seeds"}
    if args.demo:
        seeds["demo"] = f"{len(args.demo)} demos ({', '.join(d.name for d in args.demo)})"
    text = table(rows, os.getloadavg()[0], seeds, showcase)
    print(text)
    if args.write_docs:
        write_block("bench_hubness", text, "\n## Hubness correction (CSLS)\n\n`python benchmarks/bench_hubness.py "
                    "--demo DIR... --write-docs`\n\n")


if __name__ == "__main__":
    main()
