"""Speed of ``vmtool merge`` against a plain HDF5 copy of the same data, in one process.

K shard files of N items each, with frame-level features of the default audio and
video widths (handcrafted 406-d, color 26-d, 1 Hz, 30 to 240 s per item) and a
segmentation with a `present` flag. The reference is what any merge must at least do:
read every shard's feature rows and write them, concatenated, into one gzip-compressed
chunked dataset with h5py. The figure that matters is the ratio merge / reference
(the machine is shared: absolute times vary, the ratio much less).

    python benchmarks/bench_merge.py [--shards 8] [--items 250]
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def make_shard(path: Path, k: int, n: int, rng: np.random.Generator) -> int:
    from vmtool.store import CollectionWriter, Item, RaggedArray

    rows = 0
    with CollectionWriter(path, config={"config_version": 1, "rate": 1.0, "benchmark": "bench_merge"},
                          flush_items=256) as w:
        w.declare("features", "handcrafted", dim=406, attrs={"modality": "audio", "extractor": "handcrafted"})
        w.declare("features", "color", dim=26, attrs={"modality": "video", "extractor": "color"})
        bounds = []
        for i in range(n):
            t = int(rng.integers(30, 241))
            rows += t
            sha = hashlib.sha256(f"{k}-{i}".encode()).hexdigest()
            w.add(Item(f"s{k}-{i:05d}", f"shard{k}/{i}.mp4", sha, float(t), True, True, 25.0, 44100),
                  {("features", "handcrafted"): RaggedArray(rng.normal(size=(t, 406)).astype(np.float16)
                                                            .astype(np.float32), 1.0),
                   ("features", "color"): RaggedArray(rng.random((t, 26), dtype=np.float32), 1.0)})
            bounds.append(np.sort(rng.uniform(1, t - 1, size=int(rng.integers(0, 8)))))
        w.write_element("segmentations", "olda", bounds, dim=None, dtype=np.float64, present=[True] * n,
                        attrs={"modality": "audio", "config": {"method": "olda"}})
    return rows


def reference_copy(shards: list[Path], out: Path) -> None:
    """Concatenate the feature rows of every shard into one file with plain h5py."""
    import h5py

    with h5py.File(out, "w") as fo:
        for name, dim in (("handcrafted", 406), ("color", 26)):
            ds = fo.create_dataset(name, shape=(0, dim), maxshape=(None, dim), dtype=np.float32,
                                   chunks=(max(1, (1 << 18) // (4 * dim)), dim), shuffle=True,
                                   compression="gzip", compression_opts=4)
            at = 0
            for s in shards:
                with h5py.File(s, "r") as fi:
                    src = fi[f"features/{name}/data"]
                    n = src.shape[0]
                    ds.resize((at + n, dim))
                    step = (64 << 20) // (4 * dim)
                    for a in range(0, n, step):
                        b = min(n, a + step)
                        ds[at + a:at + b] = src[a:b]
                    at += n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--items", type=int, default=250)
    args = ap.parse_args()
    from vmtool.merge import merge
    from vmtool.store import open_collection

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench-merge-") as d:
        d = Path(d)
        shards = [d / f"shard{k}.h5" for k in range(args.shards)]
        rows = sum(make_shard(p, k, args.items, rng) for k, p in enumerate(shards))
        size = sum(p.stat().st_size for p in shards)
        print(f"{args.shards} shards x {args.items} items, {rows:,} frame rows "
              f"({rows * 432 * 4 / 1e9:.2f} GB as float32), {size / 1e6:.0f} MB on disk")
        times = {"reference": [], "merge": []}
        for rep in range(2):
            t0 = time.perf_counter()
            reference_copy(shards, d / "ref.h5")
            times["reference"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            merge(shards, d / "merged.h5")
            times["merge"].append(time.perf_counter() - t0)
            (d / "ref.h5").unlink()
        with open_collection(d / "merged.h5") as col:
            assert len(col) == args.shards * args.items and col.feature("handcrafted").n_rows == rows
        ref, mer = min(times["reference"]), min(times["merge"])
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"reference h5py copy: {ref:.2f} s; vmtool merge: {mer:.2f} s; ratio {mer / ref:.2f} "
              f"(best of 2 each, interleaved); {rows / mer:,.0f} rows/s; peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
