"""The whole pipeline on generated data: what ``vmtool demo`` runs.

:func:`make_demo_corpus` writes a corpus of synthetic music videos (music with known
tempo and sections; visuals that follow the music, see :func:`vmtool.synth.make_corpus`)
and the split into training and held-out clips. :func:`run_demo` then runs the same
library calls as the subcommands — extract, segment, train, embed, evaluate, rank, align —
and leaves every intermediate file in the demo directory, where the other subcommands
can read it. The showcase query is the first held-out video (a rule, not a chosen
query), ranked with :attr:`DemoConfig.method` and ``vmtool rank``'s default correction.
The files:

========================  ==========================================================
``media/clip_*.mp4``      the corpus (``media/truth.json``: the generator's truth)
``train-ids.txt``         clips the model is trained on (one id per line)
``test-ids.txt``          clips held out from training (evaluation and the query)
``features.h5``           ``vmtool extract`` output (collection)
``segments.h5``           ``vmtool segment`` output: the features plus the segmentation
``model.pt``              ``vmtool train`` output
``catalog.h5``            ``vmtool embed`` output: every clip, with the model
``catalog.h5.csls``       the tracks' CSLS terms, as ``vmtool rank`` keeps them
``plots/``                evaluation histogram, alignment of the query with its best track
``results.json``          what the demo printed, as data
========================  ==========================================================
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vmtool.errors import ParameterError
from vmtool.progress import Progress

__all__ = ["DemoConfig", "DemoCorpus", "DemoResult", "make_demo_corpus", "run_demo"]

#: Methods the demo evaluates: the clip-level baseline, the centroids and best traces as
#: Seg-VM-Net defines them and as vmtool normalises them, and the two alignments.
EVAL_METHODS = "clip,centroid,centroid-unit,btrace,btrace-mean,nw-dtw,sw-dtw"
#: the demo shows every method with and without the CSLS hubness correction
DEMO_HUBNESS = ("none", "csls")


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and settings of the demo.

    Attributes
    ----------
    clips : int
        Clips in the corpus (>= 4).
    held_out : int
        The last *held_out* clips are not trained on (>= 2, < clips - 1).
    duration : float
        Seconds per clip; OLDA finds sections of 10 s or more, so >= 20 s gives several
        segments per clip.
    seed : int
        Corpus and training seed: the same seed gives the same files and model.
    size : (int, int)
        Frame width and height of the generated videos.
    audio_features, video_features : tuple of str
        Extractors (fast ones by default: TransNetV2 runs at ~40 frames/s on a CPU).
    segments : str
        Segmentation method the model is trained on (music structure: ``olda``).
    epochs : int
        Training epochs at most (early stopping on the validation split).
    max_time : float
        Training stops after the epoch that passes this many seconds.
    method : str
        Ranking method of the showcase query: the best of the whole-catalog figures over
        three demo seeds (docs/performance.md, "Hubness correction (CSLS)").
    hubness : str
        Its hubness correction: ``auto`` is ``vmtool rank``'s default for the method.
    top : int
        Results shown for the query.
    workers : int
        Processes for generation, extraction and segmentation.
    """

    clips: int = 120
    held_out: int = 20
    duration: float = 24.0
    seed: int = 0
    size: tuple[int, int] = (64, 36)
    audio_features: tuple[str, ...] = ("handcrafted",)
    video_features: tuple[str, ...] = ("color",)
    segments: str = "olda"
    epochs: int = 40
    max_time: float = 60.0
    method: str = "nw-dtw"
    hubness: str = "auto"
    top: int = 5
    workers: int = 2

    def validate(self) -> None:
        if self.clips < 4:
            raise ParameterError(f"--clips must be at least 4, got {self.clips}")
        if not 2 <= self.held_out <= self.clips - 2:
            raise ParameterError(f"--held-out must be between 2 and clips - 2 ({self.clips - 2}), "
                                 f"got {self.held_out}")
        if not 2.0 <= self.duration <= 600.0:
            raise ParameterError(f"--duration must be between 2 and 600 seconds, got {self.duration:g}")
        if self.epochs < 1:
            raise ParameterError(f"--epochs must be at least 1, got {self.epochs}")
        if not self.max_time > 0:
            raise ParameterError(f"--max-time must be positive, got {self.max_time!r}")
        if self.top < 1:
            raise ParameterError(f"--top must be at least 1, got {self.top}")
        if self.workers < 1:
            raise ParameterError(f"--workers must be at least 1, got {self.workers}")


@dataclass
class DemoCorpus:
    """The generated corpus: media files, and which ids are trained on or held out."""

    directory: Path
    media: list[Path]
    train_ids: list[str]
    test_ids: list[str]
    train_list: Path
    test_list: Path


@dataclass
class DemoResult:
    """Everything the demo produced (paths, results, timings per stage in seconds)."""

    corpus: DemoCorpus
    files: dict[str, Path]
    training: Any  # vmtool.training.TrainResult
    evaluation: Any  # vmtool.ranking.Evaluation
    query: Path
    query_id: str
    ranking: Any  # vmtool.ranking.Ranking (the top results, with the configured method and correction)
    truth_rank: int  # where the query's own music came out, in that ranking
    candidates: int
    alignment: Any  # vmtool.ranking.Alignment of the query with its best track
    query_set: Any = field(repr=False, default=None)
    target_set: Any = field(repr=False, default=None)
    timings: dict[str, float] = field(default_factory=dict)
    evaluation_all: Any = None  # held-out videos ranked among every track of the catalog
    truth_rank_csls: int = 0  # the query's own music with the CSLS hubness correction
    truth_rank_none: int = 0  # ... and without any correction

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": {k: str(v) for k, v in self.files.items()},
            "train_items": len(self.corpus.train_ids),
            "held_out_items": len(self.corpus.test_ids),
            "training": {k: v for k, v in self.training.to_dict().items() if k != "history"},
            "evaluation": self.evaluation.to_dict(),
            "evaluation_whole_catalog": None if self.evaluation_all is None else self.evaluation_all.to_dict(),
            "query": {"path": str(self.query), "id": self.query_id, "chosen_by": "the first held-out video",
                      "own_track_rank": self.truth_rank, "own_track_rank_none": self.truth_rank_none,
                      "own_track_rank_csls": self.truth_rank_csls,
                      "candidates": self.candidates, "ranking": self.ranking.to_dict()},
            "alignment": {"target": self.ranking.results[0].id, **self.alignment.to_dict(matrices=False)},
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


def _write_ids(path: Path, ids: list[str]) -> None:
    from vmtool.atomic import atomic_output

    with atomic_output(path) as tmp:
        Path(tmp).write_text("".join(f"{i}\n" for i in ids))


def make_demo_corpus(directory: str | os.PathLike, config: DemoConfig | None = None, *,
                     progress: Progress | None = None) -> DemoCorpus:
    """Write the demo corpus into ``directory/media`` and the id lists next to it.

    The last ``config.held_out`` clips are held out (``test-ids.txt``); the others are
    for training (``train-ids.txt``). Clip ids are the file stems (``clip_0000``, ...).
    """
    from vmtool.synth import make_corpus

    cfg = config or DemoConfig()
    cfg.validate()
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    truths = make_corpus(d / "media", cfg.clips, duration=cfg.duration, seed=cfg.seed, size=cfg.size,
                         workers=cfg.workers, progress=progress)
    media = [Path(t.path) for t in truths]
    ids = [p.stem for p in media]
    n_train = cfg.clips - cfg.held_out
    corpus = DemoCorpus(d, media, ids[:n_train], ids[n_train:], d / "train-ids.txt", d / "test-ids.txt")
    _write_ids(corpus.train_list, corpus.train_ids)
    _write_ids(corpus.test_list, corpus.test_ids)
    return corpus


def run_demo(
    directory: str | os.PathLike,
    config: DemoConfig | None = None,
    *,
    device: str = "cpu",
    progress: Progress | None = None,
    reporter: Any = None,
    log: Callable[[str], None] | None = None,
    command: str = "vmtool demo",
) -> DemoResult:
    """Generate the corpus and run the whole pipeline on it (see the module docstring).

    Parameters
    ----------
    directory : path
        Where every file goes (created if missing; existing demo files are replaced).
    config : DemoConfig
    device : str
        A resolved torch device.
    progress : Progress, optional
        Passed to each stage (one batch per stage).
    reporter : TrainReporter, optional
        Told about training epochs.
    log : callable, optional
        Called with one line when each stage starts and ends.
    """
    from vmtool.embed import embed
    from vmtool.extract import ExtractConfig, extract
    from vmtool.models.losses import LossConfig
    from vmtool.query import load_query
    from vmtool.ranking import align, load_catalog, parse_method, rank
    from vmtool.ranking.evaluate import evaluate
    from vmtool.ranking.hubness import DEFAULT_K, catalog_target_terms, resolve_hubness
    from vmtool.ranking.plot import plot_alignment, plot_evaluation
    from vmtool.segment import SegmentConfig, segment
    from vmtool.training import DataConfig, TrainConfig, train

    cfg = config or DemoConfig()
    cfg.validate()
    say = log or (lambda message: None)
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    plots = d / "plots"
    plots.mkdir(exist_ok=True)
    files = {"media": d / "media", "train_ids": d / "train-ids.txt", "test_ids": d / "test-ids.txt",
             "features": d / "features.h5", "segments": d / "segments.h5", "model": d / "model.pt",
             "catalog": d / "catalog.h5", "evaluation_plot": plots / "evaluation.png",
             "alignment_plot": plots / "alignment.png", "results": d / "results.json",
             "csls_terms": d / "catalog.h5.csls"}
    timings: dict[str, float] = {}

    def stage(name: str, what: str):
        say(f"[{len(timings) + 1}/8] {what}")
        timings[name] = time.perf_counter()

    def done(name: str, message: str) -> None:
        timings[name] = time.perf_counter() - timings[name]
        say(f"      {message} ({timings[name]:.1f} s)")

    stage("generate", f"generating {cfg.clips} music videos of {cfg.duration:g} s in {files['media']}")
    corpus = make_demo_corpus(d, cfg, progress=progress)
    done("generate", f"{len(corpus.train_ids)} for training, {len(corpus.test_ids)} held out")

    stage("extract", f"extracting {', '.join(cfg.audio_features + cfg.video_features)} -> {files['features']}")
    xcfg = ExtractConfig(audio_features=list(cfg.audio_features), video_features=list(cfg.video_features))
    extract(corpus.media, files["features"], xcfg, device=device, workers=cfg.workers, progress=progress,
            command=f"{command}  # extract")
    done("extract", f"{len(corpus.media)} clips")

    stage("segment", f"segmenting the music ({cfg.segments}) -> {files['segments']}")
    rep = segment([files["features"]], files["segments"], SegmentConfig(methods=[cfg.segments]), device=device,
                  workers=cfg.workers, progress=progress, command=f"{command}  # segment")
    counts = [row["n_segments"] for row in rep.to_dict().get("items", []) if "n_segments" in row]
    mean_k = sum(counts) / len(counts) if counts else float("nan")
    done("segment", f"{mean_k:.1f} segments per clip on average")

    stage("train", f"training a segment-level model on {len(corpus.train_ids)} clips -> {files['model']}")
    tres = train(files["segments"], files["model"],
                 data=DataConfig(audio_features=list(cfg.audio_features), video_features=list(cfg.video_features),
                                 level="segment", segments=cfg.segments),
                 loss=LossConfig(), config=TrainConfig(epochs=cfg.epochs, max_time=cfg.max_time, seed=cfg.seed),
                 device=device, reporter=reporter, command=f"{command}  # train", ids=corpus.train_ids)
    done("train", f"{tres.epochs} epochs, best {tres.best_epoch}")

    stage("embed", f"embedding every clip -> {files['catalog']}")
    embed(files["segments"], files["model"], files["catalog"], device=device, progress=progress,
          command=f"{command}  # embed")
    done("embed", f"{len(corpus.media)} clips")

    stage("evaluate", f"evaluating on the {len(corpus.test_ids)} held-out clips ({EVAL_METHODS})")
    ev = evaluate(str(files["catalog"]), EVAL_METHODS, scenarios=("vanilla", "crop-query"), device=device,
                  ids=corpus.test_ids, progress=progress, hubness=DEMO_HUBNESS)
    # what a user searching the catalog sees: the same videos ranked among all its tracks
    ev_all = evaluate(str(files["catalog"]), EVAL_METHODS, device=device, ids=corpus.test_ids, against="all",
                      progress=progress, hubness=DEMO_HUBNESS)
    plot_evaluation(ev, files["evaluation_plot"])
    done("evaluate", f"plot in {files['evaluation_plot']}")

    query = corpus.media[len(corpus.train_ids)]  # the showcase: the first held-out video, whatever it gives
    stage("rank", f"ranking the catalog's tracks for the first held-out video, {query.name}")
    q = load_query(query, "video", catalog=files["catalog"], device=device, progress=progress)
    targets = load_catalog(files["catalog"], "audio", segments=True, clip=False)
    method = parse_method(cfg.method)
    hub = resolve_hubness(cfg.hubness, method)
    csls_k = hub.k if hub.active else DEFAULT_K
    terms, _ = catalog_target_terms(files["catalog"], targets, method, csls_k, device=device,
                                    load_reference=lambda: load_catalog(files["catalog"], "video", segments=True,
                                                                        clip=False))

    def own_rank(h) -> tuple[Any, int]:
        full = rank(q, targets, method, k=len(targets), device=device, hubness=h, terms=terms)
        return full, next((r.rank for r in full.results if r.id == query.stem), 0)

    full, truth_rank = own_rank(hub.label)
    truth_rank_none = own_rank("none")[1]
    truth_rank_csls = own_rank(f"csls:{csls_k}")[1]
    top = replace(full, results=full.results[:min(cfg.top, len(targets))])
    done("rank", f"{method.label}" + (f" with {hub.label}" if hub.active else "") + f": its own music is number "
         f"{truth_rank} of {len(targets)} ({truth_rank_none} without correction, {truth_rank_csls} with CSLS)")

    best = top.results[0]
    stage("align", f"aligning {query.stem} with its best track {best.id}")
    t = targets.subset([best.index])
    al = align(q.segments(0), t.segments(0), "nw-dtw", query_spans=q.spans_of(0), target_spans=t.spans_of(0))
    plot_alignment(al, files["alignment_plot"], title=f"{query.stem} vs {best.id}: {al.method.label}, "
                   f"distance {al.distance:.4g}", query_label=f"video ({query.stem})", target_label=f"audio ({best.id})")
    done("align", f"plot in {files['alignment_plot']}")

    result = DemoResult(corpus=corpus, files=files, training=tres, evaluation=ev, query=query, query_id=query.stem,
                        ranking=top, truth_rank=truth_rank, candidates=len(targets), alignment=al, query_set=q,
                        target_set=t, timings=timings, evaluation_all=ev_all, truth_rank_csls=truth_rank_csls,
                        truth_rank_none=truth_rank_none)
    from vmtool.atomic import atomic_output

    with atomic_output(files["results"]) as tmp:
        Path(tmp).write_text(json.dumps(result.to_dict(), indent=1, default=_json_default) + "\n")
    return result


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
