"""DPVM against its content path alone, VM-Net and InfoNCE where emotion links music and video.

Corpus: ``vmtool.synth.make_corpus(emotions=True, video_follows="emotion")``: each clip
has one of four emotions (happy, tender, sad, tense) that sets its music's mode, tempo,
timbre and loudness and its visuals' brightness and motion; the visuals follow another
track of the same emotion, so the emotion is all a video shares with its own music.
Features ``handcrafted`` (audio) and ``color`` (video) from ``vmtool extract``, labels
from the corpus's ``labels.csv`` (``vmtool label``). The last ``--test`` clips are held
out and ranked among themselves; the others train (10 % of them validate for early
stopping). Every model is trained with the same optimisation (``--batch-size``,
``--lr``, ``--epochs``, patience 10), one run per seed.

Reported on the held-out clips, V2M: R@10 (%), mean rank and label-match@10 (% of the
first 10 results with the query's emotion), mean and standard deviation over seeds,
with chance levels.

    python benchmarks/bench_dpvm.py [--clips 240] [--test 80] [--seeds 0,1,2] [--threads 1]

Torch runs with ``--threads`` threads (default 1): on a shared, loaded machine two
threads spinning on each other's barriers made a DPVM step 10-20 times slower than one
(measured at load 16-25 on 2 cores), which says nothing about the methods.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from _record import corpus_features  # benchmarks run as scripts: this folder is on sys.path

METHODS = {
    "DPVM (interactive fusion)": {"model": "dpvm", "fusion": "interactive"},
    "DPVM content path alone": {"model": "dpvm", "fusion": "content"},
    "VM-Net (triplet)": {"model": "vmnet", "loss": "vmnet"},
    "InfoNCE": {"model": "vmnet", "loss": "infonce"},
    "DPVM (splicing fusion)": {"model": "dpvm", "fusion": "splicing"},
    "DPVM emotion path alone": {"model": "dpvm", "fusion": "emotion"},
    "DPVM interactive + ppml": {"model": "dpvm", "fusion": "interactive", "metric": "ppml"},
    "DPVM splicing mu2=0": {"model": "dpvm", "fusion": "splicing", "mu2": 0.0},
    "DPVM emotion path alone mu2=-1": {"model": "dpvm", "fusion": "emotion", "mu2": -1.0},
    "DPVM interactive mu2=-1": {"model": "dpvm", "fusion": "interactive", "mu2": -1.0},
}


def run_method(feats: Path, train_ids: list[str], test_ids: list[str], spec: dict, seed: int, args,
               work: Path) -> dict[str, float]:
    from vmtool.embed import embed
    from vmtool.models.dpvm import DPVMLossConfig
    from vmtool.models.losses import LossConfig
    from vmtool.ranking.evaluate import label_match
    from vmtool.store import open_collection
    from vmtool.training import DataConfig, TrainConfig, train
    from vmtool.training.loop import retrieval_metrics

    model = work / "m.pt"
    tcfg = TrainConfig(batch_size=args.batch_size, lr=args.lr, epochs=args.epochs, patience=10, seed=seed)
    t0 = time.perf_counter()
    if spec["model"] == "dpvm":
        lcfg = DPVMLossConfig(metric=spec.get("metric", "contrastive"), mu2=spec.get("mu2", 1.0))
        res = train(feats, model, data=DataConfig(), model="dpvm", loss=lcfg,
                    model_options={"fusion": spec["fusion"]}, config=tcfg, ids=train_ids)
    else:
        res = train(feats, model, data=DataConfig(), loss=LossConfig(name=spec["loss"]), config=tcfg, ids=train_ids)
    secs = time.perf_counter() - t0
    cat = work / "c.h5"
    embed(feats, model, cat)
    with open_collection(cat) as c:
        idx = [c.index(i) for i in test_ids]
        ea = np.stack([c.ragged("embeddings", "audio").rows(i)[0] for i in idx])
        ev = np.stack([c.ragged("embeddings", "video").rows(i)[0] for i in idx])
        qv, tm = c.label("video_emotion")[idx], c.label("music_emotion")[idx]
    m = retrieval_metrics(ev, ea)
    d = 2.0 - 2.0 * ev.astype(np.float64) @ ea.astype(np.float64).T
    lm = label_match(d, qv, tm, ks=(10,))
    return {"r10": m["r10"], "mean_rank": m["mean_rank"], "lm10": lm["label_match10"],
            "chance_lm": lm["label_chance"], "seconds": secs, "epochs": res.epochs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=Path, help="labelled features file (default: build the corpus)")
    ap.add_argument("--clips", type=int, default=240)
    ap.add_argument("--test", type=int, default=80)
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--follows", default="emotion", choices=("emotion", "music"),
                    help="what the visuals follow (make_corpus video_follows)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated names of METHODS")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--cache", default=os.environ.get("VMTOOL_BENCH_CACHE", "/tmp/vmtool-bench"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    feats = args.features or corpus_features(cache, f"dpvm-{args.follows}-{args.clips}", args.clips, args.duration,
                                                labels=True, emotions=True, video_follows=args.follows)
    from vmtool.store import open_collection

    with open_collection(feats) as c:
        ids = [i for k, i in enumerate(c.ids) if c.item(k).has_audio and c.item(k).has_video]
    train_ids, test_ids = ids[:-args.test], ids[-args.test:]
    n = len(test_ids)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"# {feats}: {len(train_ids)} training clips, {n} held out; seeds {seeds}; "
          f"load {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    print("method | V2M R@10 | V2M mean rank | label-match@10 | fit (s) | runs (R@10 / mean rank / LM@10)", flush=True)
    print(f"chance | {100 * min(10, n) / n:.1f} | {(n + 1) / 2:.1f} | (see below) | 0 |", flush=True)
    work = cache / "dpvm-work"
    work.mkdir(exist_ok=True)
    chance_lm = None
    for name in args.methods.split(","):
        runs = [run_method(feats, train_ids, test_ids, METHODS[name], s, args, work) for s in seeds]
        chance_lm = runs[0]["chance_lm"]

        def ms(key, fmt=".1f"):
            x = np.array([r[key] for r in runs])
            return f"{x.mean():{fmt}} ± {x.std(ddof=1) if len(x) > 1 else 0:{fmt}}"

        each = "; ".join(f"{r['r10']:.1f}/{r['mean_rank']:.1f}/{r['lm10']:.1f}" for r in runs)
        print(f"{name} | {ms('r10')} | {ms('mean_rank')} | {ms('lm10')} | {ms('seconds', '.0f')} | {each}", flush=True)
    print(f"# label-match@10 chance: {chance_lm:.1f}; load {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
          flush=True)


if __name__ == "__main__":
    main()
