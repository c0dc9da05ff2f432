"""Wall time of `vmtool demo` with its defaults, per stage, warm and cold.

    python benchmarks/bench_demo.py [--cold] [--write-docs] [-- extra demo options]

Runs the real command line (`vmtool demo --dir TMP --format json -q`) in a subprocess, so
the figure includes Python start-up and imports, as a user sees it. `--cold` also runs it
with an empty NUMBA_CACHE_DIR (what a fresh install pays once: numba compiles librosa's
and vmtool's kernels). Stage timings come from the demo's results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from _docs import write_block  # benchmarks run as scripts: this folder is on sys.path

VMTOOL = [sys.executable, "-m", "vmtool"]


def run(extra: list[str], env: dict[str, str]) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        subprocess.run([*VMTOOL, "demo", "--dir", d, "--format", "json", "-q", *extra], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        res = json.loads((Path(d) / "results.json").read_text())
    return wall, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("extra", nargs="*")
    args = ap.parse_args()
    runs = []
    if args.cold:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            runs.append(("cold (empty numba cache)", *run(args.extra, env), os.getloadavg()[0]))
    runs.append(("warm", *run(args.extra, dict(os.environ)), os.getloadavg()[0]))

    stages = ["generate", "extract", "segment", "train", "embed", "evaluate", "rank", "align"]
    lines = [f"Measured {date.today().isoformat()} on {os.cpu_count()} CPU cores ({platform.machine()}): "
             f"`vmtool demo {' '.join(args.extra)}`".rstrip() + " (defaults: 120 clips of 24 s, 64x36, 20 held out, "
             "handcrafted + color, olda, 2 workers).", "",
             "| run | total (wall, incl. start-up) | " + " | ".join(stages) + " | load |",
             "|---|---:|" + "---:|" * len(stages) + "---:|"]
    for name, wall, res, load in runs:
        t = res["timings"]
        lines.append(f"| {name} | {wall:.0f} s | " + " | ".join(f"{t.get(s, 0):.1f}" for s in stages)
                     + f" | {load:.1f} |")
    name, wall, res, load = runs[-1]
    ev = {(r["method"], r["scenario"]): r for r in res["evaluation"]["results"] if r["direction"] == "v2m"}
    lines += ["", f"Results of the last run: training {res['training']['epochs']} epochs; "
              f"the held-out query's own track ranked {res['query']['own_track_rank']} of "
              f"{res['query']['candidates']}; V2M on the {res['held_out_items']} held-out clips (vanilla):"]
    lines += ["", "| method | R@1 | R@10 | mean rank |", "|---|---:|---:|---:|"]
    for (m, s), r in ev.items():
        if s == "vanilla":
            lines.append(f"| {m} | {r['r1']:.1f} | {r['r10']:.1f} | {r['mean_rank']:.2f} |")
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        write_block("bench_demo", text,
                    "\n## `vmtool demo`\n\n`python benchmarks/bench_demo.py --cold --write-docs`\n\n"
                    "Target (issue 7): under 5 minutes on 2 cores. Stage columns are seconds.\n\n")


if __name__ == "__main__":
    main()
