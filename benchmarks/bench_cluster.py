"""Throughput of ``vmtool extract`` on a Dask LocalCluster against a local run.

N synthetic audio tracks (D seconds each, generated once) are extracted with the
``handcrafted`` audio features (VM-Net's librosa descriptors) four ways, each into its
own output file:

- local: ``extract(..., workers=1)`` in this process with one thread, as a Dask worker
  (the reference, warmed first);
- ``--scheduler local:1`` and ``local:2``: a LocalCluster of 1 and 2 worker processes,
  started and warmed (one item per worker: imports, numba caches, extractors) apart
  from the timed extraction (``start``, once per cluster);
- ``workers=2``: vmtool's own process pool, for comparison; it starts its processes
  in every run (as every ``vmtool extract -j 2`` does), so its time includes that.

Every run goes through the command's whole path, checkpoint included. The local run
and the ``local:1`` run are repeated ``--repeats`` times (alternating, so that a change
of the machine's load hits both) and their medians give the per-item overhead of the
cluster path = (median on local:1 - median local) / N: what Dask adds per item on a
warm worker (task submission, sending the result back). The machine is shared: the
load average is printed with the figures.

    python benchmarks/bench_cluster.py [--tracks 12] [--seconds 20] [--repeats 3]

``--checkpoint-cost CLIP...`` instead measures what a run's checkpoint costs per item:
the clips' ``extract_item`` results (``handcrafted`` audio; ``transnet`` + ``color``
video) recorded with :class:`vmtool.batch.Checkpoint`, against their extraction time.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--checkpoint-cost", nargs="+", metavar="CLIP", help="Media files (e.g. a demo's clips).")
    args = ap.parse_args()
    if args.checkpoint_cost:
        checkpoint_cost(args.checkpoint_cost)
        return

    import distributed

    from vmtool import synth
    from vmtool.extract import ExtractConfig, extract

    cfg = ExtractConfig(audio_features=("handcrafted",), video_features=())
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as td:
        d = Path(td)
        tracks = []
        for k in range(args.tracks):
            y, _ = synth.synth_music(duration=args.seconds, sr=22050, tempo=90.0 + 5 * k, sections="ABAC", seed=k)
            tracks.append(synth.write_media(d / f"t{k:03d}.wav", audio=y, sr=22050))
        extract(tracks[:1], d / "warm.h5", cfg)  # imports and numba caches, outside the timings

        def timed(out: str, **kw) -> float:
            t0 = time.perf_counter()
            extract(tracks, d / out, cfg, **kw)
            return time.perf_counter() - t0

        def timed_one_thread(out: str) -> float:
            # a Dask worker runs with one thread (its nanny sets OMP_NUM_THREADS=1 and the
            # like); the reference does too, or the overhead measured is the thread count's
            import torch
            from threadpoolctl import threadpool_limits

            before = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                with threadpool_limits(limits=1):
                    return timed(out)
            finally:
                torch.set_num_threads(before)

        local: list[float] = []
        dask1: list[float] = []
        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                                      silence_logs=logging.CRITICAL) as cl:
            t0 = time.perf_counter()
            # start-up: the cluster, then one item (imports, numba caches, extractors)
            extract(tracks[:1], d / "warm1.h5", cfg, scheduler=cl.scheduler_address)
            start1 = time.perf_counter() - t0
            for r in range(args.repeats):
                local.append(timed_one_thread(f"local{r}.h5"))
                dask1.append(timed(f"dask1-{r}.h5", scheduler=cl.scheduler_address))
        pool2 = timed("pool2.h5", workers=2)
        t0 = time.perf_counter()
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                      silence_logs=logging.CRITICAL) as cl:
            extract(tracks[:2], d / "warm2.h5", cfg, scheduler=cl.scheduler_address)
            start2 = time.perf_counter() - t0
            dask2 = timed("dask2.h5", scheduler=cl.scheduler_address)

    ref = statistics.median(local)
    audio_min = args.tracks * args.seconds / 60
    rows = [("local, 1 process", local, None), ("local, --workers 2", [pool2], None),
            ("Dask LocalCluster, 1 worker", dask1, start1), ("Dask LocalCluster, 2 workers", [dask2], start2)]
    print(f"{args.tracks} tracks x {args.seconds:g} s, handcrafted, {args.repeats} repeats; "
          f"load average {tuple(round(x, 2) for x in os.getloadavg())}")
    print(f"{'run':30} {'median s':>8} {'min-max s':>13} {'tracks/s':>8} {'vs local':>8} {'s/audio-min':>11} "
          f"{'start s':>7}")
    for name, ts, start in rows:
        t = statistics.median(ts)
        spread = f"{min(ts):.2f}-{max(ts):.2f}" if len(ts) > 1 else "-"
        print(f"{name:30} {t:8.2f} {spread:>13} {args.tracks / t:8.2f} {t / ref:8.2f} {t / audio_min:11.2f} "
              f"{start if start is not None else float('nan'):7.2f}")
    per_item = (statistics.median(dask1) - ref) / args.tracks
    lo = (min(dask1) - max(local)) / args.tracks
    hi = (max(dask1) - min(local)) / args.tracks
    print(f"per-item overhead of the cluster path (median local:1 - median local) / N: {per_item * 1000:.0f} ms "
          f"(from the extremes: {lo * 1000:.0f} to {hi * 1000:.0f} ms)")


def checkpoint_cost(clips: list[str]) -> None:
    from vmtool.batch import Checkpoint, partial_path
    from vmtool.extract import ExtractConfig, build_extractors, extract_item
    from vmtool.store import sha256_file

    for audio, video in ((("handcrafted",), ()), ((), ("transnet", "color"))):
        cfg = ExtractConfig(audio_features=audio, video_features=video)
        extractors = build_extractors(cfg, "cpu")
        t0 = time.perf_counter()
        results = [extract_item(c, extractors, cfg, item_id=Path(c).stem, sha256=sha256_file(c)) for c in clips]
        t_extract = time.perf_counter() - t0
        with tempfile.TemporaryDirectory(prefix="bench-checkpoint-") as td:
            ck = Checkpoint(Path(td) / "out.h5", resume=False)
            t0 = time.perf_counter()
            for i, r in enumerate(results):
                ck._append(f"{i:032x}", r)
            ck._close()  # (its final fsync included)
            t_ck = time.perf_counter() - t0
            size = partial_path(Path(td) / "out.h5").stat().st_size
        n = len(clips)
        print(f"{'+'.join(audio + video):18} extract {t_extract / n * 1000:8.0f} ms/item; checkpoint "
              f"{t_ck / n * 1000:6.1f} ms/item ({t_ck / t_extract * 100:.2f} %), {size / n / 1024:.0f} KiB/item")
    print(f"load average {tuple(round(x, 2) for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
