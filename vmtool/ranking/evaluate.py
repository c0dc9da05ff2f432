"""The papers' evaluation protocol: every item's video queries every item's music.

For each direction (``v2m``: videos query tracks; ``m2v``: the reverse), scenario and
method, the full N x N distance matrix is computed; the ground truth of query ``i``
is target ``i``. Reported: R@1, R@10 and R@25 (% of queries whose ground truth is
within the first 1, 10, 25), the mean rank with its 95 % confidence interval, the
median rank, and the time the method took.

With labels (``vmtool label``), label-match@K is reported too: the share (%) of a
query's first K targets whose label equals the query's (the emotion by default: the
measure affective video-music retrieval reports), over the queries that have a label,
with its chance level (the share a random ranking would give).

Scenarios (Seg-VM-Net): ``vanilla``; ``crop-query``: the query loses its first two
segments (when it has more than two); ``stretch-targets``: every target segment is
repeated twice (a slower version of each target); ``crop-stretch``: both. Clip
embeddings describe whole items, so ``clip`` is the same in every scenario.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vmtool.errors import ParameterError
from vmtool.progress import Progress
from vmtool.ranking.catalog import DIRECTIONS, load_catalog
from vmtool.ranking.batched import DEFAULT_BLOCK_MB, distance_matrices
from vmtool.ranking.hubness import Hubness, csls, parse_hubness
from vmtool.ranking.methods import Method, parse_methods
from vmtool.ranking.segments import SCENARIOS, SegmentSet, crop_queries, stretch_targets

__all__ = ["Score", "Evaluation", "ground_truth_ranks", "rank_metrics", "apply_scenario", "evaluate_sets",
           "evaluate", "parse_scenarios", "parse_directions", "EVALUATION_VERSION", "label_match",
           "catalog_labels"]

EVALUATION_VERSION = 1

#: recall levels reported
RECALL_AT = (1, 10, 25)


def ground_truth_ranks(d: np.ndarray) -> np.ndarray:
    """Rank of target ``i`` for query ``i`` in each row of a square distance matrix.

    ``1 + (number of targets strictly closer than the ground truth)``, as in the
    training's validation; NaN distances rank last, and a NaN ground truth ranks last.

    Returns
    -------
    np.ndarray [shape=(N,), dtype=int64]
    """
    d = np.asarray(d, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ParameterError(f"ground-truth ranks need a square distance matrix, got shape {d.shape}")
    n = d.shape[0]
    x = np.where(np.isnan(d), np.inf, d)
    gt = np.diagonal(x)[:, None]
    ranks = 1 + (x < gt).sum(axis=1)
    ranks[~np.isfinite(gt[:, 0])] = n
    return ranks.astype(np.int64)


def rank_metrics(ranks: np.ndarray) -> dict[str, float]:
    """R@1, R@10, R@25 (%), mean rank, its 95 % confidence half-width, median rank.

    The interval is the normal approximation ``1.96 * std / sqrt(n)`` (sample std).
    """
    r = np.asarray(ranks, dtype=np.float64)
    n = len(r)
    if n == 0:
        raise ParameterError("no queries to evaluate")
    out = {f"r{k}": float(100.0 * np.mean(r <= k)) for k in RECALL_AT}
    out["mean_rank"] = float(r.mean())
    out["ci95"] = float(1.96 * r.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    out["median_rank"] = float(np.median(r))
    return out


def label_match(d: np.ndarray, query_labels: np.ndarray, target_labels: np.ndarray,
                ks: Sequence[int] = RECALL_AT) -> dict[str, float]:
    """Label-match@K (%): the share of each query's K nearest targets whose label equals the query's.

    Parameters
    ----------
    d : np.ndarray [shape=(Nq, Nt)]
        Distances (NaN ranks last).
    query_labels, target_labels : np.ndarray [shape=(Nq,), (Nt,)]
        Labels as strings, "" for no label. Queries without a label are left out; a
        target without one never matches.

    Returns
    -------
    dict
        ``label_match{K}`` per K (mean over labelled queries, NaN when none) and
        ``label_chance``: the expected share for targets drawn at random.
    """
    x = np.where(np.isnan(d), np.inf, np.asarray(d, dtype=np.float64))
    ql, tl = np.asarray(query_labels, dtype=object), np.asarray(target_labels, dtype=object)
    has = ql != ""
    out: dict[str, float] = {}
    if not has.any():
        return {**{f"label_match{k}": float("nan") for k in ks}, "label_chance": float("nan")}
    order = np.argsort(x[has], axis=1, kind="stable")
    same = tl[order] == ql[has][:, None]
    for k in ks:
        kk = min(k, x.shape[1])
        out[f"label_match{k}"] = float(100.0 * same[:, :kk].mean())
    out["label_chance"] = float(100.0 * np.mean([np.mean(tl == q) for q in ql[has]]))
    return out


def parse_scenarios(values: str | Iterable[str] | None) -> list[str]:
    """Scenario names from repeated or comma-separated values; ``all`` expands."""
    if values is None:
        return ["vanilla"]
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for v in values:
        for s in (x.strip().lower() for x in str(v).split(",") if x.strip()):
            names = list(SCENARIOS) if s == "all" else [s]
            for name in names:
                if name not in SCENARIOS:
                    raise ParameterError(f"unknown scenario {name!r}; scenarios: {', '.join(SCENARIOS)}, all")
                if name not in out:
                    out.append(name)
    return out or ["vanilla"]


def parse_directions(value: str | Iterable[str]) -> list[str]:
    """``v2m``, ``m2v`` or ``both``."""
    vals = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for v in vals:
        names = list(DIRECTIONS) if v == "both" else [v]
        for name in names:
            if name not in DIRECTIONS:
                raise ParameterError(f"unknown direction {name!r}; use v2m, m2v or both")
            if name not in out:
                out.append(name)
    return out


def apply_scenario(queries: SegmentSet, targets: SegmentSet, scenario: str) -> tuple[SegmentSet, SegmentSet]:
    """The queries and targets of a scenario."""
    if scenario not in SCENARIOS:
        raise ParameterError(f"unknown scenario {scenario!r}; scenarios: {', '.join(SCENARIOS)}")
    if scenario in ("crop-query", "crop-stretch"):
        queries = crop_queries(queries, 2)
    if scenario in ("stretch-targets", "crop-stretch"):
        targets = stretch_targets(targets, 2)
    return queries, targets


@dataclass
class Score:
    """One method's results in one direction and scenario."""

    method: str
    direction: str
    scenario: str
    n_queries: int
    metrics: dict[str, float]
    seconds: float
    ranks: np.ndarray = field(repr=False)
    gt_distances: np.ndarray = field(repr=False)
    other_distances: np.ndarray = field(repr=False)
    hubness: str = "none"  # "none" or "csls:K" (vmtool.ranking.hubness)
    n_candidates: int | None = None  # targets each query is ranked among (None: n_queries)

    def to_dict(self, *, ranks: bool = False) -> dict[str, Any]:
        d = {"method": self.method, "hubness": self.hubness, "direction": self.direction, "scenario": self.scenario,
             "queries": self.n_queries, "candidates": self.n_candidates or self.n_queries, **{k: round(v, 6) for k, v in self.metrics.items()},
             "seconds": round(self.seconds, 6)}
        if ranks:
            d["ranks"] = self.ranks.tolist()
        return d


@dataclass
class Evaluation:
    """The results of :func:`evaluate`."""

    scores: list[Score]
    n_items: int
    methods: list[Method]
    scenarios: list[str]
    directions: list[str]
    path: str | None = None
    ids: list[str] | None = None
    label: dict[str, str] | None = None
    hubness: list[str] = field(default_factory=lambda: ["none"])
    n_candidates: int | None = None  # targets per query when larger than the queries (against="all")

    def score(self, method: str, direction: str = "v2m", scenario: str = "vanilla", hubness: str = "none") -> Score:
        for s in self.scores:
            if (s.method, s.direction, s.scenario, s.hubness) == (method, direction, scenario, hubness):
                return s
        raise KeyError((method, direction, scenario, hubness))

    def to_dict(self, *, ranks: bool = False) -> dict[str, Any]:
        return {
            "evaluation_version": EVALUATION_VERSION,
            "catalog": self.path,
            "items": self.n_items,
            "methods": [m.label for m in self.methods],
            "indel": {m.label: m.indel for m in self.methods if m.indel is not None},
            "scenarios": self.scenarios,
            "directions": self.directions,
            "hubness": self.hubness,
            "candidates": self.n_candidates or self.n_items,
            "protocol": "query i's ground truth is target i; rank = 1 + targets strictly closer; "
                        "ci95 = 1.96 * std / sqrt(n); seconds = the method alone, shared products included",
            "ids": self.ids if ranks else None,
            "label": self.label,
            "results": [s.to_dict(ranks=ranks) for s in self.scores],
        }


def _paired(videos: SegmentSet, audios: SegmentSet, methods: Sequence[Method]) -> np.ndarray:
    """Items that both sides have, for every method asked."""
    ok = np.ones(len(videos), dtype=bool)
    if any(m.level == "segment" for m in methods):
        ok &= (videos.lengths > 0) & (audios.lengths > 0)
    if any(m.level == "clip" for m in methods):
        for s in (videos, audios):
            if s.clip is None:
                raise ParameterError("method 'clip' needs clip embeddings, and the catalog has none")
            ok &= np.isfinite(s.clip.astype(np.float32)).all(axis=1)
    return np.flatnonzero(ok)


def evaluate_sets(
    videos: SegmentSet,
    audios: SegmentSet,
    methods: str | Iterable[str | Method] = "all",
    *,
    scenarios: Iterable[str] = ("vanilla",),
    directions: Iterable[str] = ("v2m",),
    device: str = "cpu",
    block_mb: float = DEFAULT_BLOCK_MB,
    sample: int = 20000,
    seed: int = 0,
    progress: Progress | None = None,
    pair_scorer=None,
    labels: tuple[np.ndarray, np.ndarray] | None = None,
    hubness: Iterable[str | Hubness] = ("none",),
    query_rows: Sequence[int] | np.ndarray | None = None,
) -> Evaluation:
    """Evaluate on two aligned sets: item ``i`` of *videos* goes with item ``i`` of *audios*.

    Items missing a side (or a clip embedding, when ``clip`` is evaluated) are left
    out of both. *sample* non-matching distances per result are kept for plots.
    *pair_scorer*: the BCE model's pair classifier, for method ``head``.
    *labels* (the videos' and the musics' label per item, strings, "" for none) adds
    label-match@K (:func:`label_match`) to every result.

    *hubness* lists the corrections to evaluate (``none``, ``csls:K``), each a row of
    its own; CSLS takes its neighbourhoods from the whole matrix (every item as query
    and as target). *query_rows* makes only those items queries, ranked among all items'
    targets (a held-out set searched in the whole catalog); by default every item queries.
    """
    progress = progress or Progress()
    ms = parse_methods(methods)
    scens = parse_scenarios(list(scenarios))
    dirs = parse_directions(list(directions))
    if len(videos) != len(audios):
        raise ParameterError(f"{len(videos)} video items but {len(audios)} audio items")
    hubs = [parse_hubness(h, allow_auto=False) for h in hubness] or [Hubness()]
    keep = _paired(videos, audios, ms)
    if len(keep) < 2:
        raise ParameterError(f"only {len(keep)} item(s) have both modalities; evaluation needs at least 2")
    if labels is not None:
        labels = (np.asarray(labels[0], dtype=object)[keep], np.asarray(labels[1], dtype=object)[keep])
    if len(keep) < len(videos):
        videos, audios = videos.subset(keep), audios.subset(keep)
    n = len(keep)
    if query_rows is None:
        qrows = np.arange(n)
    else:
        pos = {int(k): i for i, k in enumerate(keep)}
        qrows = np.array(sorted(pos[int(r)] for r in query_rows if int(r) in pos), dtype=np.int64)
        if len(qrows) < 1:
            raise ParameterError("none of the query items has both modalities")
    rng = np.random.default_rng(seed)
    off = ~np.eye(n, dtype=bool)[qrows]
    scores: list[Score] = []
    steps = [(d, s) for d in dirs for s in scens]
    progress.batch_start(len(steps))
    clip_cache: dict[str, tuple[np.ndarray, float]] = {}
    for direction, scenario in steps:
        name = f"{direction} {scenario}"
        progress.file_start(name, 1.0)
        q, t = (videos, audios) if direction == "v2m" else (audios, videos)
        q, t = apply_scenario(q, t, scenario)
        todo = [m for m in ms if not (m.name == "clip" and direction in clip_cache)]
        timings: dict[str, float] = {}
        dists = distance_matrices(q, t, todo, device=device, block_mb=block_mb, timings=timings,
                                  pair_scorer=pair_scorer) if todo else {}
        for m in ms:
            if m.name == "clip":
                if direction not in clip_cache:
                    clip_cache[direction] = (dists[m.label], timings[m.label])
                d, secs = clip_cache[direction]
            else:
                d, secs = dists[m.label], timings[m.label]
            for h in hubs:
                dh = csls(d, h.k) if h.active else d
                ranks = ground_truth_ranks(dh)[qrows]
                sub = dh[qrows]
                others = sub[off]
                if len(others) > sample:
                    others = others[rng.choice(len(others), sample, replace=False)]
                metrics = rank_metrics(ranks)
                if labels is not None:
                    ql, tl = labels if direction == "v2m" else labels[::-1]
                    metrics.update(label_match(sub, ql[qrows], tl))
                scores.append(Score(m.label, direction, scenario, len(qrows), metrics, secs, ranks,
                                    np.diagonal(dh)[qrows].copy(), others, hubness=h.label, n_candidates=n))
        progress.file_done(name, True)
    ids = [videos.ids[i] for i in qrows] if videos.ids else None
    return Evaluation(scores, len(qrows), ms, scens, dirs, ids=ids, hubness=[h.label for h in hubs],
                      n_candidates=n if len(qrows) < n else None)


def evaluate(
    catalog: str,
    methods: str | Iterable[str | Method] = "all",
    *,
    scenarios: Iterable[str] = ("vanilla",),
    directions: Iterable[str] = ("v2m",),
    device: str = "cpu",
    block_mb: float = DEFAULT_BLOCK_MB,
    progress: Progress | None = None,
    ids: Sequence[str] | None = None,
    pair_scorer=None,
    label: str | None = None,
    hubness: Iterable[str | Hubness] = ("none",),
    against: str = "ids",
) -> Evaluation:
    """Evaluate a catalog file (see :func:`evaluate_sets`).

    *ids* restricts the queries to these items (e.g. the ones held out from training).
    With *against* ``ids`` they are also the only candidates (the papers' protocol on a
    test split); with ``all`` each is ranked among every item of the catalog, as a user
    searching the whole catalog would see it. *pair_scorer*: see :func:`evaluate_sets`
    (the CLI takes it from the catalog's model). *label* names the label column of
    label-match@K (:func:`catalog_labels`); by default the emotion, when the catalog has
    emotion labels.

    Raises
    ------
    FormatError
        The file is not a catalog (no embeddings).
    ParameterError
        Unknown method, scenario or direction; fewer than two complete items; an id
        of *ids* that the catalog does not hold; a *label* column it does not hold.
    """
    ms = parse_methods(methods)
    need_segments = any(m.level == "segment" for m in ms)
    need_clip = any(m.level == "clip" for m in ms)
    videos = load_catalog(catalog, "video", segments=need_segments, clip=need_clip)
    audios = load_catalog(catalog, "audio", segments=need_segments, clip=need_clip)
    if videos.ids != audios.ids:  # items with damaged embeddings (named in a warning) left out of one side
        both = set(videos.ids) & set(audios.ids)
        videos = videos.subset([i for i, x in enumerate(videos.ids) if x in both])
        audios = audios.subset([i for i, x in enumerate(audios.ids) if x in both])
    labels = catalog_labels(catalog, label, ids=videos.ids)  # damaged items may have been left out
    if ids is not None:
        pos = {item: i for i, item in enumerate(videos.ids)}
        missing = [item for item in ids if item not in pos]
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise ParameterError(f"{len(missing)} id(s) not in the catalog: {', '.join(missing[:5])}{more}",
                                 catalog)
        keep = np.array(sorted({pos[item] for item in ids}), dtype=np.int64)
    if against not in ("ids", "all"):
        raise ParameterError(f"unknown candidate set {against!r}; use ids or all")
    query_rows = None
    if ids is not None and against == "all":
        query_rows = keep
    elif ids is not None:
        videos, audios = videos.subset(keep), audios.subset(keep)
        if labels is not None:
            labels = (labels[0][keep], labels[1][keep], labels[2])
    ev = evaluate_sets(videos, audios, ms, scenarios=scenarios, directions=directions, device=device,
                       block_mb=block_mb, progress=progress, pair_scorer=pair_scorer,
                       labels=None if labels is None else labels[:2], hubness=hubness, query_rows=query_rows)
    ev.path = str(catalog)
    ev.label = None if labels is None else labels[2]
    return ev


def catalog_labels(catalog: str, label: str | None = None, *,
                   ids: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, str]] | None:
    """The labels label-match@K compares, per item: ``(video side, music side, columns)``.

    Per stored item in file order, or per item of *ids* (e.g. the items a catalog load kept).

    ``emotion`` (the default) means the columns ``video_emotion`` and ``music_emotion``
    when the catalog has them, else the column ``emotion`` for both sides; any other
    name is one column for both. Numbers are compared as text (``1`` = ``1.0``).
    Without *label*, a catalog without emotion labels gives None.

    Raises
    ------
    ParameterError
        *label* was given and the catalog has no such column (naming file and column).
    """
    from vmtool.labels import labels_as_text
    from vmtool.store import open_collection

    with open_collection(catalog) as col:
        names = col.label_names()
        want = label or "emotion"
        if want == "emotion" and "video_emotion" in names and "music_emotion" in names:
            cols = {"video": "video_emotion", "music": "music_emotion"}
        elif want in names:
            cols = {"video": want, "music": want}
        elif label is None:
            return None
        else:
            col.label(label)  # raises: no such column, naming the file and the column
        rows = None if ids is None else np.array([col.index(x) for x in ids], dtype=np.int64)
        sides = []
        for side in ("video", "music"):
            values = labels_as_text(col.label(cols[side]))
            sides.append(values if rows is None else values[rows])
    return sides[0], sides[1], cols
