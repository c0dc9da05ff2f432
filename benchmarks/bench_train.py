"""CPU training throughput of ``vmtool train`` per loss, and its memory.

One epoch over N clip-level pairs at batch 1000 (default N = 50,000; target <= 60 s on
2 cores). Inputs have the widths of the default features' statistics: audio 1218
(handcrafted 406 x mean/var/max), video 3150 (transnet 1024 + color 26, x 3). They are
stored as a clip-level features file (written once, cached), so the run goes through
the real path: store -> memory-mapped prepared inputs -> batches.

Peak memory (ru_maxrss of the training process, which runs in a child process per
loss) is reported next to the size of the prepared inputs, to show that the inputs are
streamed from the memory maps rather than held in RAM.

    python benchmarks/bench_train.py [--pairs 50000] [--losses vmnet,bce,cosface,infonce]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np


def make_file(path: Path, n: int, audio_dim: int, video_dim: int) -> None:
    """Clip-level features file with a learnable association (written in blocks)."""
    import hashlib

    from vmtool.store import CollectionWriter, Item, RaggedArray

    rng = np.random.default_rng(0)
    latent = 16
    A = rng.normal(size=(latent, audio_dim)).astype(np.float32)
    B = rng.normal(size=(latent, video_dim)).astype(np.float32)
    tmp = path.with_suffix(".tmp.h5")
    with CollectionWriter(tmp, config={"config_version": 1, "rate": 1.0, "benchmark": "bench_train"},
                          flush_items=2048) as w:
        w.declare("features", "audio", dim=audio_dim, attrs={"modality": "audio", "level": "clip"})
        w.declare("features", "video", dim=video_dim, attrs={"modality": "video", "level": "clip"})
        for i in range(n):
            z = rng.normal(size=(1, latent)).astype(np.float32)
            a = z @ A + rng.normal(size=(1, audio_dim)).astype(np.float32)
            v = np.tanh(z @ B) + rng.normal(size=(1, video_dim)).astype(np.float32)
            w.add(Item(f"c{i:06d}", "bench", hashlib.sha256(str(i).encode()).hexdigest(), 10.0, True, True),
                  {("features", "audio"): RaggedArray(a.astype(np.float16).astype(np.float32)),
                   ("features", "video"): RaggedArray(v.astype(np.float16).astype(np.float32))})
    os.replace(tmp, path)


def _run(args: tuple) -> dict:
    path, loss, epochs, threads = args
    import torch

    torch.set_num_threads(threads)
    from vmtool.models.losses import LossConfig
    from vmtool.training import DataConfig, TrainConfig, train

    out = Path(path).with_name(f"bench-{loss}.pt")
    t0 = time.perf_counter()
    res = train(path, out, data=DataConfig(), loss=LossConfig(name=loss),
                config=TrainConfig(batch_size=1000, epochs=epochs, val_fraction=0.02, patience=0, seed=0))
    total = time.perf_counter() - t0
    out.unlink(missing_ok=True)
    epoch_s = [h["seconds"] for h in res.history]
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    kb = {k: int(status[k].split()[0]) / 1024 for k in ("VmHWM", "RssAnon", "RssFile") if k in status}
    return {"loss": loss, "epoch_s": min(epoch_s), "pairs_per_s": max(h["pairs_per_s"] for h in res.history),
            "train_pairs": res.n_train_pairs, "total_s": total,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "anon_mb": kb.get("RssAnon"), "file_mb": kb.get("RssFile")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=50_000)
    ap.add_argument("--losses", default="vmnet,bce,cosface,infonce")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per loss (the fastest is reported)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default=os.environ.get("VMTOOL_BENCH_CACHE", "/tmp/vmtool-bench"))
    args = ap.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    n = int(round(args.pairs / 0.98))  # 2% validation
    path = cache / f"train-clip-{n}.h5"
    if not path.exists():
        t = time.perf_counter()
        make_file(path, n, 1218, 3150)
        print(f"# wrote {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s", flush=True)
    prepared_mb = n * (1218 + 3150) * 4 / 1e6
    print(f"# {n} items, prepared inputs {prepared_mb:.0f} MB; load average {os.getloadavg()[0]:.1f}", flush=True)
    print("loss | epoch (s) | pairs/s | peak RSS (MB) | anon / file-backed RSS at end (MB) | train pairs", flush=True)
    ctx = mp.get_context("spawn")
    rows = []
    for loss in args.losses.split(","):
        with ctx.Pool(1) as pool:
            r = pool.apply(_run, ((str(path), loss, args.epochs, args.threads),))
        r["load"] = os.getloadavg()[0]
        rows.append(r)
        print(f"{loss} | {r['epoch_s']:.1f} | {r['pairs_per_s']:.0f} | {r['peak_rss_mb']:.0f} | "
              f"{r['anon_mb']:.0f} / {r['file_mb']:.0f} | {r['train_pairs']}"
              f"  (load {r['load']:.1f})", flush=True)
    print(json.dumps(rows), file=sys.stderr)


if __name__ == "__main__":
    main()
