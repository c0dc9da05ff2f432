"""Segmentation of many items: music structure, shots, beats, bars, fixed windows.

:func:`segment` is what ``vmtool segment`` runs. Its input is either one vmtool
collection (the segmentations are added to a copy written to the output) or media files
(a new collection holding the items and their segmentations). Each method's boundaries
are stored under ``/segmentations/<method>`` (see ``docs/format.md``); several methods
live side by side, and running a method again replaces its previous result.

The methods, their parameters and the runner of each are declared in
:mod:`vmtool.segmentation.registry`; this module runs them over many items. Audio is
decoded once per item, as ``librosa.load`` decodes it (the signal msaf's own pipeline
analyses), and shared by all audio methods; MSAF's features are computed once per item
and shared by foote, sf and olda.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vmtool.atomic import DEFAULT_WAIT, atomic_output, check_output_path, locks_output
from vmtool.batch import Checkpoint, Failure, check_batch, in_input_order
from vmtool.errors import BatchFailed, FormatError, MediaError, ParameterError, VmtoolError
from vmtool.progress import Progress
from vmtool.segmentation import registry
from vmtool.segmentation.base import Segmentation
from vmtool.segmentation.registry import AUDIO_RESAMPLER, AUDIO_SR, LABEL_METHODS
from vmtool.store import (Collection, CollectionWriter, Item, canonical_json, is_hdf5, read_kind, resolve_source, sha256_file,
                          unique_ids)

__all__ = [
    "SegmentConfig",
    "SegmentReport",
    "segment",
    "segment_item",
]

VERSION = "1"


def __getattr__(name: str):
    # the method lists of earlier releases, read live from the registry
    lists = {"METHODS": lambda: registry.names(), "MUSIC_METHODS": lambda: registry.names(family="music"),
             "AUDIO_METHODS": lambda: registry.names(modality="audio"), "LABEL_METHODS": lambda: LABEL_METHODS}
    if name in lists:
        return lists[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class SegmentConfig:
    """Which methods to run and their parameters.

    The methods and their parameters are declared in :mod:`vmtool.segmentation.registry`.

    Attributes
    ----------
    methods : sequence of str
        Registered method names (:func:`vmtool.segmentation.registry.names`).
    threshold : float
        Shot-likelihood threshold of ``transnet``.
    beats_per_bar : int or None
        Beats per bar for ``bars`` (None: estimated per item).
    window : float or None
        Window length in seconds for ``fixed`` (required by it).
    labels : str or None
        MSAF labelling algorithm for the music methods.
    min_duration : float or None
        Shortest segment in seconds; None: each method's default (1 s, 0 for ``beats``
        and ``bars``).
    boundary_times : {"msaf", "frame-start"}
        Where the music methods place a boundary found at a beat-synchronous feature
        frame: ``"msaf"``, at the frame's end as msaf reports it; ``"frame-start"``, one
        beat earlier (see :data:`vmtool.segmentation.registry.BOUNDARY_TIMES`).
    downbeats : {"librosa", "madmom"}
        Downbeat tracker of ``bars``: vmtool's estimator on librosa's beats, or madmom's
        RNN downbeat tracker (:mod:`vmtool.segmentation.downbeats`, an optional extra).
    options : dict
        Values of parameters declared by registered methods that have no attribute here.
    """

    methods: Sequence[str]
    threshold: float = registry.param("threshold").default
    beats_per_bar: int | None = None
    window: float | None = None
    labels: str | None = None
    min_duration: float | None = None
    boundary_times: str = registry.param("boundary_times").default
    downbeats: str = registry.param("downbeats").default
    options: dict[str, Any] = field(default_factory=dict)

    def value(self, name: str) -> Any:
        """The value of the parameter *name* in this configuration."""
        p = registry.param(name)
        if p.fixed:
            return p.default
        if name in self.__dataclass_fields__:
            return getattr(self, name)
        return self.options.get(name, p.default)

    def validate(self) -> None:
        known = registry.names()
        if not self.methods:
            raise ParameterError(f"no method given; methods: {', '.join(known)}")
        for m in self.methods:
            registry.get(m)
        if len(set(self.methods)) != len(self.methods):
            raise ParameterError("a method is given twice")
        for k in self.options:
            if k in self.__dataclass_fields__ or k not in {p.name for p in registry.params() if not p.fixed}:
                raise ParameterError(f"unknown segmentation option {k!r}")
        for p in registry.params():
            if p.check is not None:
                chosen = tuple(m for m in self.methods if p.name in registry.get(m).params)
                msg = p.check(self.value(p.name), chosen)
                if msg:
                    raise ParameterError(msg)

    def min_duration_for(self, method: str) -> float:
        if self.min_duration is not None:
            return float(self.min_duration)
        return registry.get(method).min_duration

    def params(self, method: str) -> dict[str, Any]:
        """The parameters recorded with *method*'s results."""
        p: dict[str, Any] = {"method": method, "version": VERSION, "min_duration": self.min_duration_for(method)}
        p.update((name, self.value(name)) for name in registry.get(method).params)
        return p

    @classmethod
    def from_params(cls, method: str, recorded: dict[str, Any] | None) -> SegmentConfig:
        """The configuration that runs *method* as its *recorded* parameters say (the
        inverse of :meth:`params`; a parameter not recorded takes its default)."""
        recorded = recorded or {}
        fields: dict[str, Any] = {}
        options: dict[str, Any] = {}
        for name in registry.get(method).params:
            if registry.param(name).fixed or name not in recorded:
                continue
            (fields if name in cls.__dataclass_fields__ else options)[name] = recorded[name]
        if "min_duration" in recorded:
            fields["min_duration"] = recorded["min_duration"]
        return cls(methods=[method], options=options, **fields)


@dataclass
class ItemTask:
    """What a worker needs to segment one item (picklable)."""

    label: str  # for messages: the source path
    item_id: str
    source: str
    duration: float
    has_audio: bool
    has_video: bool
    curves: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict)  # stored curves: (values, rate)
    source_problem: str = ""  # why the source media cannot be decoded again, if it cannot
    methods: tuple[str, ...] | None = None  # the methods to run (None: all configured ones)
    # the audio at AUDIO_SR (decoded as below) and its harmonic and percussive parts
    # (vmtool.dsp.hpss), computed by the process that hands the task over (a media query's,
    # vmtool.pipeline): used instead of decoding and separating them again
    audio: np.ndarray | None = None
    hpss: tuple[np.ndarray, np.ndarray] | None = None

    def add_curve(self, name: str, values, rate: float) -> None:
        """Hand a method the curve it reads instead of the media (``transnet``: the shot
        likelihood extraction computed), as float32 rows; an empty curve is not handed."""
        values = np.asarray(values, dtype=np.float32)
        if values.size:
            self.curves[name] = (values, float(rate))

    def reads_media(self) -> bool:
        """Whether one of its methods decodes the source media."""
        return any(registry.get(m).reads_media(self.curves) for m in self.methods or ())


def segment_item(task: ItemTask, config: SegmentConfig, device: str = "cpu", *,
                 on_advance=None) -> dict[str, Segmentation | Failure]:
    """Run every configured method on one item.

    Each method's runner (:mod:`vmtool.segmentation.registry`) gets the item's audio,
    decoded once for all methods of modality ``audio``. A method that fails on this item
    gives a :class:`~vmtool.batch.Failure` in its slot (the caller decides whether that
    stops the batch); the other methods still run.
    """
    out: dict[str, Segmentation | Failure] = {}
    src = Path(task.source)
    y = None
    decode_s = 0.0
    methods = list(task.methods if task.methods is not None else config.methods)
    audio_methods = [m for m in methods if registry.get(m).modality == "audio"]
    audio_error: VmtoolError | None = None
    if audio_methods and task.audio is not None:
        y = task.audio
    elif audio_methods:
        try:
            if not task.has_audio:
                raise MediaError(f"has no audio stream, needed by {', '.join(audio_methods)}", src)
            if task.source_problem:
                raise VmtoolError(task.source_problem, src)
            if not src.exists():
                raise VmtoolError("source media not found (audio methods decode it again)", src)
            from vmtool import media

            t0 = time.perf_counter()
            y = media.load_audio(src, AUDIO_SR, resampler=AUDIO_RESAMPLER)
            decode_s = time.perf_counter() - t0
        except VmtoolError as exc:
            audio_error = exc
    shared: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        for step, method in enumerate(methods):
            try:
                if method in audio_methods and audio_error is not None:
                    raise audio_error
                run = registry.Run(method, task, y if method in audio_methods else None, config.params(method),
                                   device, shared, stack)
                seg = registry.get(method).runner(run)
                if method in audio_methods and method == audio_methods[0]:
                    seg.timings["decode"] = decode_s  # charged once, to the first audio method
                out[method] = seg
            except VmtoolError as exc:
                msg = str(exc)
                if method not in msg:
                    msg = f"{msg} (method {method})"
                out[method] = Failure(task.label, msg)
            except Exception as exc:  # noqa: BLE001 - an algorithm's own failure, reported per item and method
                out[method] = Failure(task.label, f"{task.label}: method {method} failed: {type(exc).__name__}: {exc}")
            if on_advance is not None:
                on_advance(float(step + 1))
    return out


_WORKER: dict[str, Any] = {}


def _worker_init(config: SegmentConfig, device: str, declared: tuple = ()) -> None:
    # worker processes start afresh (spawn, Dask): methods registered at run time come along
    for method, params in declared:
        registry.register(method, *params, replace=True)
    _WORKER["config"] = config
    _WORKER["device"] = device


def _worker_run(task: ItemTask) -> dict[str, Segmentation | Failure]:
    return segment_item(task, _WORKER["config"], _WORKER["device"])


def _declared(config: SegmentConfig) -> tuple:
    """The configured methods with their parameters, for workers that do not know them yet."""
    return tuple((registry.get(m), tuple(registry.param(p) for p in registry.get(m).params))
                 for m in config.methods)


def _task_media(args: tuple) -> str | None:
    """The media file a task decodes, if it decodes one (for a run on a Dask cluster)."""
    (task,) = args
    return task.source if task.reads_media() and not task.source_problem else None


def _task_relocate(args: tuple, path: str) -> tuple:
    import dataclasses

    return (dataclasses.replace(args[0], source=path),)


@dataclass
class SegmentReport:
    """What :func:`segment` did: per item and method, the segment count and hit rates."""

    output: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    means: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> mean hit rates
    timings: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> stage -> seconds
    reused: dict[str, int] = field(default_factory=dict)  # method -> items kept from the output (resume)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {"output": self.output, "items": self.rows, "mean": self.means,
                "failures": [{"source": s, "error": m} for s, m in self.failures], "timings": self.timings,
                "reused": self.reused}



@locks_output()
def segment(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    config: SegmentConfig,
    *,
    device: str = "cpu",
    workers: int = 1,
    keep_going: bool = False,
    resume: bool = False,
    reference: str | os.PathLike | None = None,
    plot_dir: str | os.PathLike | None = None,
    wait: float = DEFAULT_WAIT,
    command: str = "",
    progress: Progress | None = None,
    scheduler: str | None = None,
    send_media: bool = False,
) -> SegmentReport:
    """Segment items with every configured method and write the output collection.

    Parameters
    ----------
    inputs : sequence of path
        One vmtool collection file, or media files.
    output : path
        The collection to write (atomically). May equal the input collection.
    resume : bool
        When *output* exists, keep its results for every method whose stored parameters
        equal this run's, for the items it holds with the same id and SHA-256; only the
        other items are segmented. Without it every item is segmented again. Also reuse
        the items a stopped run recorded in *output*'s checkpoint (:class:`vmtool.batch.Checkpoint`).
    reference : path, optional
        An annotation file (one item) or a directory searched for ``<id>.jams``,
        ``<id>.txt`` or ``<id>.lab``; hit rates are reported per item and method.
    plot_dir : path, optional
        Directory for one PNG per item and method (curve and boundaries).
    wait : float
        Seconds to wait for another run writing *output* (see :func:`vmtool.atomic.output_lock`).
    scheduler : str, optional
        Run the items as tasks on a Dask cluster (see :mod:`vmtool.cluster`):
        ``local:N`` or a scheduler address. *workers* is then unused.
    send_media : bool
        With *scheduler*: send each item's media bytes to the worker (no shared storage).

    Raises
    ------
    VmtoolError
        Bad inputs, or the first failure when not *keep_going*.
    FormatError
        A vmtool file of another kind, or damaged.
    """
    config.validate()
    progress = progress or Progress()
    out = check_output_path(output, inputs=inputs, update_kind="collection")
    check_batch(inputs, workers, plot_dir)
    report = SegmentReport(output=str(out))
    from vmtool.cluster import runner_for

    checkpoint = Checkpoint(out, resume=resume, progress=progress)  # a stopped run's items, for --resume
    runner = runner_for(scheduler, send_media=send_media, progress=progress, media=_task_media,
                        relocate=_task_relocate, checkpoint=checkpoint)
    paths = [Path(p) for p in inputs]
    vm_inputs = [p for p in paths if p.exists() and is_hdf5(p)]
    seed: Path | None = None
    items: list[Item]
    tasks: list[ItemTask]
    if vm_inputs:
        if len(paths) != 1:
            raise ParameterError("give either one vmtool file or media files, not several files with a vmtool file")
        seed = paths[0]
        kind, _ = read_kind(seed)
        if kind != "collection":
            raise FormatError(f"is a vmtool {kind!r} file, expected a 'collection' file (attribute 'vmtool_kind')", seed)
        with Collection(seed) as col:
            col.validate()  # offsets, presence flags, companions: a damaged file is refused, not copied
            items = col.items()
            for it in items:
                it.source = str(resolve_source(it.source, seed))
            # curves a method reads instead of the media (transnet: the stored shot likelihood)
            stored = set(col.names("curves"))
            curves = {c: col.curve(c) for c in (registry.get(m).stored_curve for m in config.methods)
                      if c is not None and c in stored}
            tasks = []
            for i, it in enumerate(items):
                t = ItemTask(it.source, it.id, it.source, it.duration, it.has_audio, it.has_video)
                for c, curve in curves.items():
                    t.add_curve(c, curve.rows(i), curve.rate(i))
                tasks.append(t)
    else:
        from vmtool import media
        from vmtool.extract import check_inputs

        todo, failures, _ = check_inputs(paths, keep_going=keep_going)
        report.failures.extend(failures)
        ids = unique_ids([Path(s).stem for s, _ in todo], [h for _, h in todo])
        items, tasks = [], []
        for (src, sha), item_id in zip(todo, ids):
            try:
                info = media.probe(src)
            except VmtoolError as exc:
                if not keep_going:
                    raise
                report.failures.append((src, str(exc)))
                continue
            items.append(Item(item_id, src, sha, float(info.duration), info.has_audio, info.has_video,
                              float(info.fps), int(info.sample_rate)))
            tasks.append(ItemTask(src, item_id, src, float(info.duration), info.has_audio, info.has_video))
        if not items:
            raise BatchFailed("no input could be segmented; nothing written", out,
                              in_input_order(report.failures, paths))

    results: list[dict[str, Segmentation | Failure]] = [{} for _ in tasks]
    previous = resume and out.exists()
    kept = _previous_results(out, items, config) if previous else [{} for _ in tasks]
    for t, res, k in zip(tasks, results, kept):
        res.update(k)
        t.methods = tuple(m for m in config.methods if m not in k)
    if previous:
        report.reused = {m: sum(m in k for k in kept) for m in config.methods}
    todo = [i for i, t in enumerate(tasks) if t.methods]
    if seed is not None:
        # audio methods (and transnet without a stored likelihood) decode the sources
        # again: check that those still to be decoded are unchanged
        for i in todo:
            t, it = tasks[i], items[i]
            if t.reads_media():
                p = Path(it.source)
                if p.exists() and sha256_file(p) != it.sha256:
                    t.source_problem = "source media changed since it was added (sha256 differs)"
                    if not keep_going:
                        raise VmtoolError(t.source_problem, p)
    if (workers > 1 or (scheduler or "").startswith("local:")) and len(todo) > 1 and any(registry.get(m).modality == "audio" for i in todo for m in tasks[i].methods):
        from vmtool._librosa import import_librosa_beat

        import_librosa_beat()  # fills numba's cache once, before the workers load it
    progress.batch_start(len(todo))
    batch = [(tasks[i].label, (tasks[i],)) for i in todo]
    n_of = {tasks[i].label: float(len(tasks[i].methods)) for i in todo}
    for j, res in runner(batch, _worker_run, workers=workers, keep_going=True, progress=progress,
                            work=lambda label: n_of.get(label, 1.0), initializer=_worker_init,
                            initargs=(config, device, _declared(config)),
                            in_process=lambda t, on_advance=None: segment_item(t, config, device, on_advance=on_advance)):
        t = tasks[todo[j]]
        if isinstance(res, Failure):  # the worker itself died: every method failed
            res = {m: res for m in t.methods}
        for m, r in res.items():
            if isinstance(r, Failure):
                if not keep_going:
                    raise VmtoolError(r.message)
                report.failures.append((r.label, r.message))
        results[todo[j]].update(res)
    report.failures[:] = in_input_order(report.failures, [t.label for t in tasks] if seed is not None else paths)

    _report_rows(report, items, results, config, reference)
    if plot_dir is not None:
        _plots(Path(plot_dir), items, results, config, reference)

    with atomic_output(out, seed=seed) as tmp:
        with CollectionWriter(tmp, config=None, command=command, display_path=out) as w:
            if seed is None:
                for it in items:
                    w.add(it, {})
                w.flush()
            for m in config.methods:
                segs = [r.get(m) for r in results]
                ok = [isinstance(s, Segmentation) for s in segs]
                companions = {c.name: [c.write(s) if isinstance(s, Segmentation) else None for s in segs]
                              for c in _companions(m, config)}
                w.write_element(
                    "segmentations", m,
                    [s.boundaries if isinstance(s, Segmentation) else None for s in segs],
                    dtype=np.float64, replace=True, present=ok, companions=companions,
                    attrs={"modality": registry.get(m).modality, "extractor": m, "version": VERSION,
                           "config": config.params(m)},
                )
    checkpoint.finish()
    return report


def _companions(method: str, config: SegmentConfig) -> list[registry.Companion]:
    """The arrays stored with *method*'s boundaries under *config* (labels only when asked for)."""
    cs = [registry.companion(c) for c in registry.get(method).companions]
    return [c for c in cs if c.only_with is None or config.value(c.only_with)]


def _previous_results(path: Path, items: Sequence[Item], config: SegmentConfig) -> list[dict[str, Segmentation]]:
    """Per item, the segmentations *path* already holds with this run's parameters.

    An item is matched by id and SHA-256; a method only when its stored ``config`` equals
    ``config.params(method)``. Labels, tempo, beats per bar and beat times come along.
    """
    kind, _ = read_kind(path)
    if kind != "collection":
        raise FormatError(f"is a vmtool {kind!r} file, expected a 'collection' file to resume", path)
    kept: list[dict[str, Segmentation]] = [{} for _ in items]
    with Collection(path) as col:
        where = {(i, h): k for k, (i, h) in enumerate(zip(col.ids, col.sha256s))}
        idx = [where.get((it.id, it.sha256)) for it in items]
        stored = set(col.names("segmentations"))
        for m in config.methods:
            if m not in stored:
                continue
            rg = col.ragged("segmentations", m)
            if canonical_json(rg.attrs.get("config")) != canonical_json(config.params(m)):
                continue
            for it, k, res in zip(items, idx, kept):
                if k is None or not rg.present(k):
                    continue
                seg = Segmentation(np.asarray(rg.rows(k), dtype=np.float64), it.duration)
                for c in _companions(m, config):
                    v = rg.companion(c.name, k)
                    if v is not None:
                        c.read(seg, v)
                res[m] = seg
    return kept


def _report_rows(report: SegmentReport, items, results, config: SegmentConfig, reference) -> None:
    from vmtool.segmentation import reference as refmod

    ref_path = Path(reference) if reference is not None else None
    if ref_path is not None and not ref_path.exists():
        raise VmtoolError("reference file or directory not found", ref_path)
    per_method: dict[str, list[dict[str, float]]] = {m: [] for m in config.methods}
    for it, res in zip(items, results):
        ref = None
        if ref_path is not None:
            f = ref_path if ref_path.is_file() else refmod.find_reference(ref_path, it.id)
            if f is not None:
                ref = refmod.read_reference(f)[0]
        for m in config.methods:
            s = res.get(m)
            if not isinstance(s, Segmentation):
                continue
            row: dict[str, Any] = {"item": it.id, "method": m, "n_segments": s.n_segments,
                                   "boundaries": [round(float(b), 3) for b in s.boundaries]}
            if ref is not None:
                hr = refmod.hit_rates(s.boundaries, ref, it.duration)
                row.update(hr)
                per_method[m].append(hr)
            report.rows.append(row)
            tm = report.timings.setdefault(m, {})
            for k, v in s.timings.items():
                tm[k] = tm.get(k, 0.0) + float(v)
    for m, lst in per_method.items():
        if lst:
            report.means[m] = refmod.mean_hit_rates(lst)
            report.means[m]["n_items"] = len(lst)


def _plots(directory: Path, items, results, config: SegmentConfig, reference) -> None:
    from vmtool.segmentation import reference as refmod
    from vmtool.segmentation.plot import plot_segmentation

    ref_path = Path(reference) if reference is not None else None
    for it, res in zip(items, results):
        ref = None
        if ref_path is not None:
            f = ref_path if ref_path.is_file() else refmod.find_reference(ref_path, it.id)
            ref = refmod.read_reference(f)[0] if f is not None else None
        for m in config.methods:
            s = res.get(m)
            if isinstance(s, Segmentation):
                name = "".join(c if c.isalnum() or c in "-_." else "_" for c in it.id)
                plot_segmentation(directory / f"{name}.{m}.png", s, title=f"{it.id} — {m}", reference=ref)
