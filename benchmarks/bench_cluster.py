"""Throughput of ``vmtool extract`` on a Dask LocalCluster against a local run.

N synthetic audio tracks (D seconds each, generated once) are extracted with the
``handcrafted`` audio features (VM-Net's librosa descriptors) four ways, each into its
own output file:

- local: ``extract(..., workers=1)`` in this process (the reference);
- ``--scheduler local:1`` and ``local:2``: a LocalCluster of 1 and 2 worker processes,
  started and warmed (one item per worker: imports, numba caches, extractors) apart
  from the timed extraction (``start``, once per cluster);
- ``workers=2``: vmtool's own process pool, for comparison.

Per-item overhead of the cluster path = (time on local:1 - local time) / N: what Dask
adds per item on a warm worker (task submission, connecting, sending the result back). The machine is shared: the load average is printed with the figures.

    python benchmarks/bench_cluster.py [--tracks 12] [--seconds 20]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()

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

        rows = []
        t0 = time.perf_counter()
        extract(tracks, d / "local.h5", cfg)
        rows.append(("local, 1 process", time.perf_counter() - t0, 0.0))
        t0 = time.perf_counter()
        extract(tracks, d / "pool2.h5", cfg, workers=2)
        rows.append(("local, --workers 2", time.perf_counter() - t0, 0.0))
        for n in (1, 2):
            t0 = time.perf_counter()
            with distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                                          silence_logs=logging.CRITICAL) as cl:
                # start-up: the cluster, then one item per worker (imports, numba caches, extractors)
                extract(tracks[:n], d / f"warm{n}.h5", cfg, scheduler=cl.scheduler_address)
                start = time.perf_counter() - t0
                t0 = time.perf_counter()
                extract(tracks, d / f"dask{n}.h5", cfg, scheduler=cl.scheduler_address)
                rows.append((f"Dask LocalCluster, {n} worker(s)", time.perf_counter() - t0, start))

    ref = rows[0][1]
    audio_min = args.tracks * args.seconds / 60
    print(f"{args.tracks} tracks x {args.seconds:g} s, handcrafted; load average {os.getloadavg()}")
    print(f"{'run':34} {'time s':>7} {'tracks/s':>8} {'vs local':>8} {'s/audio-min':>11} {'start s':>7}")
    for name, t, start in rows:
        print(f"{name:34} {t:7.2f} {args.tracks / t:8.2f} {t / ref:8.2f} {t / audio_min:11.2f} {start:7.2f}")
    one = rows[2][1]
    print(f"per-item overhead of the cluster path (local:1 - local) / N: {(one - ref) / args.tracks * 1000:.0f} ms")


if __name__ == "__main__":
    main()
