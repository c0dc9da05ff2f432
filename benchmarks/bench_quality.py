"""Does ``vmtool train`` learn the music-video association? Held-out retrieval vs CCA.

Corpus: clips from the synthetic generator (``vmtool.synth.make_corpus``: tempo drives
motion and cut rhythm, key/timbre the palette, energy the brightness, plus per-clip
randomness), default 1,200 clips of 10 s at 64x36, features ``handcrafted`` (audio) and
``color`` (video) at 1 Hz, extracted by ``vmtool extract``. The first 1,000 clips train
(10 % of them validate for early stopping), the last 200 are held out.

On the 200 held-out clips: V2M and M2V R@1, R@10 (%) and mean rank, for

- chance (R@k = k / 200, mean rank 100.5),
- a linear CCA baseline (scikit-learn) fitted on the same training inputs (the
  standardised mean/var/max statistics the model sees), in the same run,
- the trained model(s) (``vmtool train`` defaults unless told otherwise).

    python benchmarks/bench_quality.py [--features FEATS.h5] [--losses vmnet,infonce]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _record import corpus_features  # benchmarks run as scripts: this folder is on sys.path


def metrics(q: np.ndarray, t: np.ndarray) -> dict[str, float]:
    from vmtool.training.loop import retrieval_metrics

    return retrieval_metrics(q, t)


def cca_baseline(feats: Path, train_ids: list[str], test_ids: list[str], k: int) -> tuple[dict, dict, float]:
    from sklearn.cross_decomposition import CCA

    from vmtool.store import open_collection
    from vmtool.training.data import DataConfig, InputBuilder

    t0 = time.perf_counter()
    with open_collection(feats) as c:
        b = InputBuilder(c, DataConfig())

        def inputs(ids, mod):
            return np.concatenate([b.inputs(c.index(i), mod, np.array([[0.0, b.duration(c.index(i))]]))
                                   for i in ids])

        xa, xv = inputs(train_ids, "audio"), inputs(train_ids, "video")
        ta, tv = inputs(test_ids, "audio"), inputs(test_ids, "video")
    mu_a, sd_a = xa.mean(0), xa.std(0) + 1e-6
    mu_v, sd_v = xv.mean(0), xv.std(0) + 1e-6
    k = min(k, xv.shape[1], xa.shape[1])
    cca = CCA(n_components=k, max_iter=1000)
    cca.fit((xa - mu_a) / sd_a, (xv - mu_v) / sd_v)
    pa, pv = cca.transform((ta - mu_a) / sd_a, (tv - mu_v) / sd_v)
    pa /= np.linalg.norm(pa, axis=1, keepdims=True)
    pv /= np.linalg.norm(pv, axis=1, keepdims=True)
    return metrics(pv, pa), metrics(pa, pv), time.perf_counter() - t0


def model_scores(feats: Path, train_ids: list[str], test_ids: list[str], loss: str, out: Path,
                 extra: list[str]) -> tuple[dict, dict, float, str]:
    from vmtool.embed import embed
    from vmtool.store import open_collection

    ids_file = out.with_suffix(".ids")
    ids_file.write_text("\n".join(train_ids) + "\n")
    model = out.with_suffix(".pt")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vmtool", "train", str(feats), "-o", str(model), "--ids", str(ids_file),
                    "--loss", loss, "-q", *extra], check=True)
    secs = time.perf_counter() - t0
    cat = out.with_suffix(".h5")
    embed(feats, model, cat)
    with open_collection(cat) as c:
        idx = [c.index(i) for i in test_ids]
        ea = np.stack([c.ragged("embeddings", "audio").rows(i)[0] for i in idx])
        ev = np.stack([c.ragged("embeddings", "video").rows(i)[0] for i in idx])
    import torch

    info = torch.load(model, weights_only=True)["training"]
    note = f"{info['epochs']} epochs, best {info['best_epoch']} ({info['stopped']})"
    return metrics(ev, ea), metrics(ea, ev), secs, note


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=Path, help="features file (default: build the synthetic corpus)")
    ap.add_argument("--clips", type=int, default=1200)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--losses", default="vmnet")
    ap.add_argument("--cca", type=int, default=32, help="CCA components")
    ap.add_argument("--train-args", default="", help="extra vmtool train options, e.g. '--epochs 300'")
    ap.add_argument("--cache", default=os.environ.get("VMTOOL_BENCH_CACHE", "/tmp/vmtool-bench"))
    args = ap.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    feats = args.features or corpus_features(cache, f"quality-{args.clips}", args.clips, args.duration)
    from vmtool.store import open_collection

    with open_collection(feats) as c:
        ids = [i for k, i in enumerate(c.ids) if c.item(k).has_audio and c.item(k).has_video]
    train_ids, test_ids = ids[:-args.test], ids[-args.test:]
    n = len(test_ids)
    print(f"# {feats}: {len(train_ids)} training clips, {n} held out; load {os.getloadavg()[0]:.1f}", flush=True)
    print("method | V2M R@1 | V2M R@10 | V2M mean rank | M2V R@1 | M2V R@10 | M2V mean rank | fit (s) | notes",
          flush=True)

    def row(name, v2m, m2v, secs, note=""):
        print(f"{name} | {v2m['r1']:.1f} | {v2m['r10']:.1f} | {v2m['mean_rank']:.1f} | {m2v['r1']:.1f} | "
              f"{m2v['r10']:.1f} | {m2v['mean_rank']:.1f} | {secs:.0f} | {note}", flush=True)

    chance = {"r1": 100 / n, "r10": 100 * 10 / n, "mean_rank": (n + 1) / 2}
    row("chance", chance, chance, 0)
    v2m, m2v, secs = cca_baseline(feats, train_ids, test_ids, args.cca)
    row(f"CCA ({args.cca} comp.)", v2m, m2v, secs)
    for loss in args.losses.split(","):
        v2m, m2v, secs, note = model_scores(feats, train_ids, test_ids, loss, cache / f"quality-{loss}",
                                            args.train_args.split())
        row(f"vmtool train --loss {loss}", v2m, m2v, secs, note)


if __name__ == "__main__":
    main()
