"""The music-video structure study over many clips: what ``vmtool analyze-structure`` runs.

:func:`analyze_structure` gathers the clips of its inputs (:mod:`.inputs`), analyses
each (:func:`vmtool.structure.clip.analyze_clip`, in worker processes or on a Dask
cluster if asked), groups them by music and video genre (:mod:`.genres`), draws the
plots and writes the output collection (:mod:`.io`; layout in ``docs/format.md``,
section *Structure analysis*).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmtool.atomic import DEFAULT_WAIT, check_output_path, locks_output
from vmtool.batch import Checkpoint, Failure, check_batch, in_input_order
from vmtool.errors import BatchFailed, FormatError, ParameterError
from vmtool.progress import Progress
from vmtool.store import is_hdf5, read_kind
from vmtool.structure.clip import ClipResult, ClipTask, StructureConfig, _failed, analyze_clip
from vmtool.structure.genres import GROUPINGS, GroupStats, aggregate
from vmtool.structure.inputs import _gather, _metadata_warnings
from vmtool.structure.io import _write
from vmtool.structure.metadata import read_metadata

__all__ = ["StructureReport", "analyze_structure"]



@dataclass
class StructureReport:
    """What :func:`analyze_structure` found and did."""

    output: str
    config: dict[str, Any]
    clips: list[ClipResult] = field(default_factory=list)
    groups: dict[str, list[GroupStats]] = field(default_factory=dict)  # "all", "music_genre", "video_genre"
    omitted: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source, message)
    warnings: list[str] = field(default_factory=list)
    metadata: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    def aggregates(self) -> list[GroupStats]:
        """All groups: the whole collection first, then music genres, then video genres."""
        return [g for key in ("all", *GROUPINGS) for g in self.groups.get(key, [])]

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "metadata": self.metadata,
            "config": self.config,
            "clips": [c.to_dict() for c in self.clips],
            "aggregates": {k: [g.to_dict() for g in v] for k, v in self.groups.items()},
            "omitted": {k: [{"genre": g, "n_clips": n} for g, n in v] for k, v in self.omitted.items()},
            "failures": [{"source": s, "error": m} for s, m in self.failures],
            "warnings": list(self.warnings),
        }


# ----------------------------------------------------------------------------------------
# the batch

_WORKER: dict[str, Any] = {}


def _worker_init(config: StructureConfig, device: str) -> None:
    _WORKER["config"] = config
    _WORKER["device"] = device


def _worker_run(task: ClipTask) -> ClipResult:
    return analyze_clip(task, _WORKER["config"], _WORKER["device"])


def _task_media(args: tuple) -> str | None:
    """The source a clip decodes when the input collection lacks part of what it needs (Dask runs)."""
    (task,) = args
    it = task.item
    if task.source_problem or (task.likelihood is None and not it.has_video):
        return None  # analyze_clip fails before decoding anything
    # (stored bars of another metre are also computed again: that case is left to analyze_clip)
    decodes = task.likelihood is None or (it.has_audio and (task.l_seg is None or task.bars is None))
    return it.source if decodes else None


@locks_output()
def analyze_structure(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    config: StructureConfig | None = None,
    *,
    metadata: str | os.PathLike | None = None,
    columns: Iterable[str] | Mapping[str, str] | None = None,
    device: str = "cpu",
    workers: int = 1,
    keep_going: bool = False,
    plot_dir: str | os.PathLike | None = None,
    wait: float = DEFAULT_WAIT,
    command: str = "",
    progress: Progress | None = None,
    scheduler: str | None = None,
    resume: bool = False,
) -> StructureReport:
    """Analyse how the cuts of music videos follow their music; write the output collection.

    Parameters
    ----------
    inputs : sequence of path
        Media files and/or vmtool collections (their items are clips; what they hold —
        ``curves/shot_likelihood``, ``segmentations/<segments>``, ``segmentations/bars`` —
        is used, the rest is computed from the items' sources). One collection alone is
        the *seed*: the output is a copy of it with the analysis added (it may be the
        same file). Otherwise the output is a new collection of all the clips.
    output : path
        Written atomically.
    config : StructureConfig
    metadata : path, optional
        CSV with per-clip BPM, time signature, music and video genre
        (see :mod:`vmtool.structure.metadata`).
    columns : ``FIELD=HEADER`` specs or mapping, optional
        Header of each metadata field when not the Harmonix one.
    device : str
        Torch device of TransNetV2 (``auto|cpu|cuda[:N]|mps``, resolved when a clip needs it).
    workers : int
        Clips analysed in parallel (processes).
    keep_going : bool
        Record failed clips and go on (they are kept in the output with status
        ``failed``); otherwise the first failure is raised and nothing is written.
    plot_dir : path, optional
        Existing directory for the plots (one per clip, one per grouping).
    command : str
        The command line, recorded in the output.
    wait : float
        Seconds to wait for another run writing *output* (see :func:`vmtool.atomic.output_lock`).
    scheduler : str, optional
        Analyse the clips as tasks on a Dask cluster (see :mod:`vmtool.cluster`):
        ``local:N`` or a scheduler address; the workers read the sources at the same paths.
    resume : bool
        Reuse the clips a stopped run recorded in *output*'s checkpoint
        (:class:`vmtool.batch.Checkpoint`); analyse only the others.

    Returns
    -------
    StructureReport

    Raises
    ------
    VmtoolError
        Bad inputs, a failed clip (without *keep_going*), or no clip analysed.
    ParameterError
        Bad options or metadata columns.
    FormatError
        A vmtool file of another kind, or damaged.
    """
    config = config or StructureConfig()
    config.validate()
    progress = progress or Progress()
    out = check_output_path(output, inputs=inputs, update_kind="collection")
    check_batch(inputs, workers, plot_dir)
    meta = read_metadata(metadata, columns) if metadata is not None else None
    if meta is None and columns:
        raise ParameterError("--column needs --metadata")
    tracker_note = config.resolve_downbeats()
    report = StructureReport(output=str(out), config=config.to_dict(),
                             metadata=str(metadata) if metadata is not None else None)
    report.warnings.append(
        (tracker_note + "; " if tracker_note else "")
        + f"downbeat tracker: {config.downbeat_tracker} "
        + ("(madmom's RNN, as the thesis)" if config.downbeat_tracker == "madmom" else "(vmtool's estimator)")
        + " for the downbeats computed in this run; the per-clip column downbeat_tracker says which found each l_bar")
    paths = [Path(p) for p in inputs]
    vm_paths = [p for p in paths if p.exists() and p.is_file() and is_hdf5(p)]
    for p in vm_paths:  # refuse other kinds before any work
        kind, _ = read_kind(p)
        if kind != "collection":
            raise FormatError(f"is a vmtool {kind!r} file, expected a 'collection' file (attribute 'vmtool_kind')", p)
    from vmtool.cluster import runner_for

    checkpoint = Checkpoint(out, resume=resume, progress=progress)  # a stopped run's clips, for --resume
    runner = runner_for(scheduler, progress=progress, media=_task_media, checkpoint=checkpoint)
    tasks, seed, stored_attrs = _gather(paths, config, meta, keep_going, report)
    report.failures[:] = in_input_order(report.failures, paths)
    if not tasks:
        raise BatchFailed("no input clip could be read; nothing written", out, report.failures)
    if meta is not None:
        _metadata_warnings(meta, report)
    seg_cfg = stored_attrs.get(f"segmentations/{config.segments}", {}).get("config")
    if isinstance(seg_cfg, Mapping) and seg_cfg.get("boundary_times", "frame-start") != "msaf":
        report.warnings.append(
            f"the stored segmentations/{config.segments} places each boundary at the start of its beat frame, "
            f"one beat before MSAF (and the thesis); run vmtool segment -m {config.segments} again for MSAF's times")

    if (workers > 1 or (scheduler or "").startswith("local:")) and len(tasks) > 1:
        from vmtool._librosa import import_librosa_beat

        import_librosa_beat()  # fills numba's cache once, before the workers load it
    progress.batch_start(len(tasks))
    batch = [(t.label, (t,)) for t in tasks]
    results: list[ClipResult] = []
    for i, res in runner(batch, _worker_run, workers=workers, keep_going=keep_going, progress=progress,
                            work=lambda _: 1.0, initializer=_worker_init, initargs=(config, device),
                            in_process=lambda t, on_advance=None: analyze_clip(t, config, device)):
        if isinstance(res, Failure):
            report.failures.append((res.label, res.message))
            res = _failed(tasks[i], res.message)
        results.append(res)
    report.failures[:] = in_input_order(report.failures, paths)
    report.clips = results
    for r in results:
        for note in r.notes:
            report.warnings.append(f"{r.item.source}: {note}")
    if all(r.failed for r in results):
        raise BatchFailed("no clip could be analysed; nothing written", out, report.failures)
    report.groups["all"], _ = aggregate(results)
    for by in GROUPINGS:
        report.groups[by], report.omitted[by] = aggregate(results, by, min_count=config.min_count)

    if plot_dir is not None:
        from vmtool.structure.plot import plot_clip, plot_groups

        for r in results:
            if not r.failed:
                plot_clip(Path(plot_dir) / f"{_safe(r.item.id)}.structure.png", r, config)
        for by in GROUPINGS:
            plot_groups(Path(plot_dir) / f"summary.{by}.png", report.groups["all"] + report.groups[by], by)

    _write(out, seed, results, report, config, stored_attrs, command)
    checkpoint.finish()
    return report


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
