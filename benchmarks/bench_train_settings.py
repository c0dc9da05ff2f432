"""The papers' optimiser settings against vmtool's defaults, on a synthetic features file.

    python benchmarks/bench_train_settings.py                 # print the table
    python benchmarks/bench_train_settings.py --write-docs    # and record it in docs/performance.md

VM-Net as Prétet et al. train it (000 IV-E, 001 V-A) uses Adam with lr 1e-6 and dropout
0.5 and stops early; vmtool's defaults are lr 1e-3 and dropout 0.2. Each setting is
trained on the same synthetic features file (``vmtool.synth.synth_features``:
paired audio/video vectors sharing a latent code) with the same budget (``--max-time``
seconds, early stopping with vmtool's patience), for several seeds; the table gives the
held-out V2M R@10 and mean rank of the kept (best) epoch: mean and spread over seeds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _record import DOC, load, write_block

START, END = "<!-- bench_train_settings:start -->", "<!-- bench_train_settings:end -->"
SECTION = "## Training: learning rate and dropout (the papers' settings against vmtool's)\n\n"

SETTINGS = (("vmtool default", 1e-3, 0.2), ("papers' dropout", 1e-3, 0.5), ("papers' lr and dropout", 1e-6, 0.5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=600)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--max-time", type=float, default=30.0)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    from vmtool.training import DataConfig, TrainConfig, train
    from vmtool.synth import synth_features

    work = Path(tempfile.mkdtemp(prefix="bench-train-settings-"))
    feats = work / "feats.h5"
    synth_features(feats, args.items, seed=2026)
    load_start = load()
    results = {}
    for name, lr, dropout in SETTINGS:
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            res = train(feats, work / "m.pt", data=DataConfig(), dropout=dropout,
                        config=TrainConfig(lr=lr, epochs=100000, max_time=args.max_time, seed=seed,
                                           val_fraction=0.2, batch_size=256))
            results.setdefault(name, []).append((res.best["v2m_r10"], res.best["v2m_mean_rank"], res.epochs,
                                                 res.best_epoch, res.stopped, time.perf_counter() - t0))
            print(f"# {name} seed {seed}: {results[name][-1]} [load {load()}]", file=sys.stderr, flush=True)
    n_val = int(round(args.items * 0.2))
    lines = [START, "",
             f"Measured {time.strftime('%Y-%m-%d')} by `benchmarks/bench_train_settings.py`: "
             f"`synth_features` ({args.items} items, seed 2026), clip level, VM-Net's loss, batch 256, "
             f"{n_val} held-out items ranked among themselves (chance: R@10 {100 * 10 / n_val:.1f} %, mean rank "
             f"{(n_val + 1) / 2:.1f}), early stopping (patience 10) within {args.max_time:g} s per run, "
             f"seeds 0-{args.seeds - 1}. Mean / spread over seeds. Load average {load_start} at the start, "
             f"{load()} at the end.", "",
             "| setting | lr | dropout | V2M R@10 % | V2M mean rank | epochs run | stopped by |", "|---|---|---|---|---|---|---|"]
    for name, lr, dropout in SETTINGS:
        r = results[name]
        r10 = np.array([x[0] for x in r])
        mr = np.array([x[1] for x in r])
        ep = np.array([x[2] for x in r])
        stops = sorted({x[4].split(":")[0] for x in r})
        lines.append(f"| {name} | {lr:g} | {dropout:g} | {r10.mean():.1f} / {r10.std():.1f} | "
                     f"{mr.mean():.1f} / {mr.std():.1f} | {ep.mean():.0f} | {'; '.join(stops)} |")
    lines += ["", END]
    block = "\n".join(lines)
    print(block)
    if args.write_docs:
        write_block(block, START, END, SECTION)
        print(f"# wrote {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
