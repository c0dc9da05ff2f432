"""A raw media file processed exactly as a catalog's items were, in memory.

A catalog written by ``vmtool embed`` records how its items were made: the extractors
with their parameters and frame rate (and the digests of the weights they ran with),
the segmentation with its parameters, and the model itself (``/model``). A
:class:`Recipe` reads that record; :func:`process_media` applies it to one media file:
extract -> segment -> embed, with the per-item functions that ``vmtool extract``,
``vmtool segment`` and ``vmtool embed`` run on every item of a file
(:func:`vmtool.extract.extract_item`, :func:`vmtool.segment.segment_item`,
:class:`vmtool.embed.Embedder`). The features and the segmentation stay in memory (no
temporary file): :class:`MemoryItem` offers them through the read interface of a
collection, so the embedder reads a query the way it reads a catalog's items.

Example::

    from vmtool.pipeline import Recipe, process_media

    recipe = Recipe.from_catalog("catalog.h5")  # read once, reused for every query
    for clip in ("a.mp4", "b.mp4"):
        q = process_media(clip, recipe, device="cpu")
        q.segments["video"]  # (k, D) segment embeddings; q.spans: their (k, 2) seconds

The model and the extractors (TransNetV2's and VGGish's networks) are built on first
use and kept by the recipe, per device; on the CPU the model runs in numpy, without
importing torch (:mod:`vmtool.models.inference`). This module sits above :mod:`vmtool.ranking`,
which never reaches into models or extractors; ``vmtool rank``, ``vmtool align`` and
the demo reach it through :mod:`vmtool.query`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vmtool.errors import FormatError, ParameterError, VmtoolError
from vmtool.progress import Progress

__all__ = ["Recipe", "QueryEmbedding", "MemoryItem", "process_media", "start_segmenter", "close_segmenter"]


@dataclass
class QueryEmbedding:
    """Embeddings of one query: per modality, the clip vector and the segment matrix.

    Attributes
    ----------
    clip : dict of str -> np.ndarray [shape=(D,), dtype=float32]
        Per modality it has (``audio``, ``video``), the clip embedding.
    segments : dict of str -> np.ndarray [shape=(k, D), dtype=float32]
        Per modality, one embedding per segment (empty without a segmentation).
    spans : np.ndarray [shape=(k, 2), dtype=float64]
        Start and end of each segment in seconds (the whole clip without a segmentation).
    duration : float
        Seconds.
    source : str
        The media file.
    sha256 : str
        The file's SHA-256 (hashed once, when it was read).
    """

    clip: dict[str, np.ndarray]
    segments: dict[str, np.ndarray]
    spans: np.ndarray
    duration: float
    source: str
    sha256: str = ""


@dataclass
class Recipe:
    """How a catalog's items were processed, read from the catalog.

    Attributes
    ----------
    catalog : Path
        The catalog (it holds the model).
    extract : vmtool.extract.ExtractConfig
        The extractors the model reads, with their parameters and frame rate, as its
        training data was extracted (a catalog extracted with one modality only, e.g.
        music with ``-v none``, still processes video queries).
    extractors : dict of str -> dict
        Per extractor, the configuration it recorded (version, parameters...).
    segmentation : str or None
        The segmentation method of the segment embeddings (None: clip embeddings only).
    segmentation_config : dict
        Its parameters as ``vmtool segment`` recorded them.
    model_sha256 : str
        The digest of the model file the catalog was embedded with.
    """

    catalog: Path
    extract: Any  # vmtool.extract.ExtractConfig (imported lazily)
    extractors: dict[str, dict[str, Any]]
    segmentation: str | None
    segmentation_config: dict[str, Any]
    model_sha256: str
    _built: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_catalog(cls, catalog: str | os.PathLike) -> Recipe:
        """Read the recipe of a catalog written by ``vmtool embed`` (the model is loaded on first use).

        Raises
        ------
        FormatError
            Not a vmtool collection, or no model stored in it (not written by ``vmtool embed``).
        """
        import h5py

        from vmtool.extract import ExtractConfig
        from vmtool.store import open_collection

        p = Path(catalog)
        with open_collection(p) as cat:
            if "model" not in cat._f or not isinstance(cat._f["model"], h5py.Dataset):
                raise FormatError("holds no model (dataset '/model'); it is not a catalog written by vmtool embed", p)
            attr = cat.attrs.get("model")
            fcfg = cat.config or {}
        try:
            attr = json.loads(attr) if isinstance(attr, str) else dict(attr or {})
            if not isinstance(attr, dict):  # JSON, but not the object vmtool embed writes
                raise TypeError(type(attr).__name__)
        except (TypeError, ValueError) as exc:
            raise FormatError("root attribute 'model' is not the JSON vmtool embed writes", p) from exc
        # the extractors the model reads, with the settings of its training data (vmtool
        # embed stores them from the model file in the attribute 'model')
        recipe = attr.get("features") or fcfg
        names = attr.get("feature_names") or {}
        params = {**(fcfg.get("params") or {}), **(recipe.get("params") or {})}
        ecfg = ExtractConfig(
            audio_features=tuple(names.get("audio") or (recipe.get("audio") or {}).keys()),
            video_features=tuple(names.get("video") or (recipe.get("video") or {}).keys()),
            rate=float(recipe.get("rate", fcfg.get("rate", 1.0))),
            params={k: dict(v) for k, v in params.items()},
        )
        recorded = {name: dict(c) for mod in ("audio", "video") for name, c in (recipe.get(mod) or {}).items()
                    if name in (*ecfg.audio_features, *ecfg.video_features)}
        seg = attr.get("segmentation") or {}
        return cls(catalog=p, extract=ecfg, extractors=recorded, segmentation=seg.get("method"), segmentation_config=dict(seg.get("config") or {}),
                   model_sha256=str(attr.get("sha256", "")))

    @property
    def weights(self) -> dict[str, dict[str, str]]:
        """Per extractor that ran with weight files, the SHA-256 digests it recorded
        (``weights_sha256``...), read from :attr:`extractors`. A query whose extractors
        record other settings or weights than the catalog's is refused before it is
        embedded (the features would not be those the model learnt from)."""
        digests = {name: {k: str(v) for k, v in c.items() if k.endswith("_sha256")}
                   for name, c in self.extractors.items()}
        return {name: d for name, d in digests.items() if d}

    def model(self, device: str = "cpu"):
        """The catalog's model on *device*, loaded once: on the CPU a
        :class:`vmtool.models.inference.NumpyModel` (no torch) when it computes the network,
        else a :class:`vmtool.models.checkpoint.LoadedModel` (see
        :func:`vmtool.embed.load_catalog_model`)."""
        key = ("model", device)
        if key not in self._built:
            from vmtool.embed import load_catalog_model

            self._built[key] = load_catalog_model(self.catalog, device)
        return self._built[key]

    def build_extractors(self, device: str = "cpu") -> list:
        """The recipe's extractors on *device*, built once (their networks load once per run)."""
        key = ("extractors", device)
        if key not in self._built:
            from vmtool.extract import build_extractors

            self.extract.validate()
            self._built[key] = build_extractors(self.extract, device)
        return self._built[key]

    def segment_config(self, method: str | None = None):
        """The :class:`vmtool.segment.SegmentConfig` that runs *method* (default: the catalog's
        segmentation) with the catalog's parameters; another method gets its defaults.
        *method* may set parameters as ``METHOD:KEY=VALUE,...`` (``fixed:window=5``), over
        those. None when there is no method."""
        from vmtool.segment import SegmentConfig
        from vmtool.segmentation.registry import parse_spec

        if (method or self.segmentation) is None:
            return None
        name, given = parse_spec(method or self.segmentation)
        stored = self.segmentation_config if name == self.segmentation else {}
        return SegmentConfig.from_params(name, {**(stored or {}), **given})


class _Rows:
    """One element of a :class:`MemoryItem` (the read interface of :class:`vmtool.store.Ragged`)."""

    def __init__(self, name: str, data: np.ndarray, rate: float, attrs: dict[str, Any], dim: int | None,
                 present: bool | None = None):
        self.name = name
        self._data = data
        self.offsets = np.array([0, len(data)], dtype=np.int64)
        self.rates = np.array([rate], dtype=np.float64)
        self.attrs = attrs
        self.dim = dim
        self._present = len(data) > 0 if present is None else present

    @property
    def modality(self) -> str | None:
        return self.attrs.get("modality")

    def rows(self, index: int) -> np.ndarray:
        return self._data

    def rate(self, index: int) -> float:
        return float(self.rates[index])

    def present(self, index: int) -> bool:
        return self._present

    def __len__(self) -> int:
        return 1


class MemoryItem:
    """One extracted (and segmented) item held in memory, read like a one-item collection.

    It offers the part of :class:`vmtool.store.Collection`'s read interface that
    :class:`vmtool.embed.Embedder` and :class:`vmtool.training.data.InputBuilder` use
    (``ids``, ``path``, ``config``, ``names``, ``ragged``, ``feature``, ``column``), with
    the rows as a collection file would return them: features as float32, boundaries as
    float64, every configured extractor listed (without rows when the item lacks its
    modality).

    Parameters
    ----------
    result : vmtool.extract.ItemResult
        What :func:`vmtool.extract.extract_item` gave for the file.
    extractors : sequence
        The extractors that ran.
    config : dict
        The extraction configuration as a collection records it
        (:func:`vmtool.extract.stored_config`).
    segmentations : dict of str -> Segmentation, optional
        Per method, what :func:`vmtool.segment.segment_item` gave.
    path : path, optional
        Named in error messages (default: the item's source).
    """

    def __init__(self, result, extractors, config: dict[str, Any], segmentations=None, path=None):
        from vmtool.extract import feature_attrs

        self.item = result.item
        self.path = Path(path if path is not None else result.item.source)
        self.ids = [result.item.id]
        self.config = config
        arrays = result.arrays()
        self._groups: dict[str, dict[str, _Rows]] = {"features": {}, "segmentations": {}}
        for e in extractors:
            arr = arrays.get(("features", e.name))
            width = (0, e.dim) if e.dim is not None else (0,)
            data = np.zeros(width, np.float32) if arr is None else np.asarray(arr.data).astype(np.float32, copy=False)
            rate = np.nan if arr is None else float(arr.rate)
            self._groups["features"][e.name] = _Rows(e.name, data, rate, feature_attrs(e), e.dim)
        for method, seg in (segmentations or {}).items():
            self._groups["segmentations"][method] = _Rows(
                method, np.asarray(seg.boundaries, dtype=np.float64), np.nan, {"method": method}, None, present=True)

    def __len__(self) -> int:
        return 1

    def names(self, group: str) -> list[str]:
        return sorted(self._groups.get(group, {}))

    def ragged(self, group: str, name: str) -> _Rows:
        if name not in self.names(group):
            have = ", ".join(self.names(group)) or "none"
            raise ParameterError(f"no {group[:-1] if group.endswith('s') else group} {name!r} (have: {have})",
                                 self.path)
        return self._groups[group][name]

    def feature(self, name: str) -> _Rows:
        return self.ragged("features", name)

    def column(self, name: str) -> np.ndarray:
        return np.array([getattr(self.item, name)])


def process_media(
    path: str | os.PathLike,
    recipe: Recipe,
    *,
    device: str = "auto",
    segments: str | None = None,
    progress: Progress | None = None,
) -> QueryEmbedding:
    """Embed a raw media file exactly as the catalog's items were embedded, in memory.

    Extracts the recipe's features (same extractors, parameters and rate), runs its
    segmentation (or *segments*) and applies its model; nothing is written to disk.

    Parameters
    ----------
    path : path
        An audio or video file.
    recipe : Recipe
        From :meth:`Recipe.from_catalog`; reuse it for several files.
    device : str
        ``auto|cpu|cuda[:N]|mps`` for the model and the extractors' networks.
    segments : str, optional
        A segmentation method instead of the catalog's (e.g. ``transnet`` for a video
        without sound, when the catalog was segmented with a music method), with its
        parameters as ``METHOD:KEY=VALUE,...`` (``fixed:window=5``).
    progress : vmtool.progress.Progress, optional

    Notes
    -----
    With a segmentation that decodes the media itself (msaf's methods, beats, bars), on
    Linux, on the CPU, with two or more cores not all busy and torch not loaded, the
    segmentation runs in a child process forked as soon as the file is probed (or before,
    by :func:`start_segmenter`), while this one reads the model and extracts: the same
    calls and results, and a one-file query costs the longer of the two branches
    instead of their sum. The child is kept for the next media queries of this process
    (their segmentation then pays no fork and no imports; :func:`close_segmenter` stops
    it). It ignores Ctrl-C, is stopped when this call ends early, and dies with this
    process.

    Raises
    ------
    VmtoolError
        The media cannot be read, lacks what the recipe needs (e.g. a music
        segmentation for a video without sound: pass ``segments="transnet"``), or the
        catalog has no model.
    """
    from vmtool.device import resolve_device
    from vmtool.embed import Embedder
    from vmtool.extract import stored_config

    dev = resolve_device(device)
    progress = progress or Progress()
    config = recipe.segment_config(segments)
    method = None if config is None else config.methods[0]
    overlap = method is not None and _overlap(method, dev)  # before the extractors: the child needs none
    src, item_id, sha = _identify(path)
    from vmtool import media

    # the errors in the same order either way: the file's (checked, hashed, probed), the
    # model's, the extraction's, then the segmentation's
    info = media.probe(src)
    child = None
    done = False
    try:
        if overlap:
            child = _segment_beside(path, src, item_id, info, config)
        extractors = recipe.build_extractors(dev)
        model = recipe.model(dev)
        result = _extract(src, item_id, sha, recipe.extract, extractors, progress)
        if child is not None:
            segs = {method: child.result()}
        else:
            segs = {} if method is None else {method: _segment(path, _task_of(result, method), config, dev,
                                                                progress)}
        done = True
    finally:
        if overlap and not done:  # stopped mid-task (an error, Ctrl-C): not reused
            close_segmenter()
    item = MemoryItem(result, extractors, stored_config(recipe.extract, extractors), segs, path=path)
    clip, seg_emb, spans = Embedder(item, model, method).item(0)
    if not clip:
        raise ParameterError("the query has neither audio nor video features", path)
    dur = float(item.column("duration")[0])
    return QueryEmbedding(clip, seg_emb, spans if spans is not None else np.array([[0.0, dur]]), dur, str(path),
                          result.item.sha256)


def _identify(path: str | os.PathLike) -> tuple[str, str, str]:
    """The file checked and hashed as ``vmtool extract`` does: (source, item id, SHA-256)."""
    from vmtool.extract import check_inputs
    from vmtool.store import unique_ids

    (src, sha), = check_inputs([os.fspath(path)])[0]
    (item_id,) = unique_ids([Path(src).stem], [sha])
    return src, item_id, sha


def _extract(src: str, item_id: str, sha: str, config, extractors: list, progress: Progress):
    """:func:`vmtool.extract.extract_item` on one file, reported as ``vmtool extract`` does."""
    from vmtool.batch import run_batch
    from vmtool.extract import extract_item, work_of

    def here(src: str, item_id: str, sha: str, on_advance=None):
        return extract_item(src, extractors, config, item_id=item_id, sha256=sha, on_advance=on_advance)

    progress.batch_start(1)
    ((_, result),) = run_batch([(src, (src, item_id, sha))], here, progress=progress,
                               work=lambda s: work_of(s, extractors), in_process=here)
    return result


def _task_of(result, method: str):
    """The segmentation task of an extracted item (TransNetV2's shot likelihood from
    extraction is handed to the method that reads it)."""
    from vmtool.segment import ItemTask
    from vmtool.segmentation import registry

    it = result.item
    task = ItemTask(it.source, it.id, it.source, it.duration, it.has_audio, it.has_video, methods=(method,))
    stored = registry.get(method).stored_curve
    curve = result.arrays().get(("curves", stored)) if stored else None
    if curve is not None:
        task.add_curve(stored, curve.data, curve.rate)
    return task


def _segment(path: str | os.PathLike, task, config, device: str, progress: Progress | None = None):
    """:func:`vmtool.segment.segment_item` on one item, as ``vmtool segment`` runs it on a collection."""
    from vmtool.batch import Failure, run_batch
    from vmtool.segment import segment_item

    progress = progress or Progress()
    (method,) = config.methods
    try:
        config.validate()

        def here(t, on_advance=None):
            return segment_item(t, config, device, on_advance=on_advance)

        progress.batch_start(1)
        ((_, out),) = run_batch([(task.label, (task,))], here, keep_going=True, progress=progress,
                                work=lambda label: 1.0, in_process=here)
        if isinstance(out, Failure):  # the item's run itself failed: every method failed
            out = {method: out}
        if isinstance(out[method], Failure):
            raise VmtoolError(out[method].message)
    except VmtoolError as exc:
        reason = exc.reason
        if reason.startswith(f"{os.fspath(path)}: "):  # a batch failure names the file already
            reason = reason[len(os.fspath(path)) + 2:]
        raise type(exc)(f"{reason} (segmenting the query with {method!r}; "
                        f"a video without sound needs --query-segments transnet)", path) from exc
    return out[method]


# --- extraction beside the segmentation ------------------------------------------------------


#: the process segmenting media queries beside this one (forked on first use, then kept: it
#: holds the segmentation's libraries, imported once for every later query), or None
_SEGMENTER: list = [None]


def start_segmenter(recipe: Recipe, *, device: str = "auto", segments: str | None = None) -> bool:
    """Start the process that segments media queries beside this one, ahead of the first query.

    :func:`process_media` forks it on its first call when it would segment beside this
    process (see its Notes); started here instead, before this process does something
    else (``vmtool rank`` loads the catalog), the segmentation's imports (msaf,
    librosa, scikit-learn: about 1.5 s on an idle 2-core machine, the longest part of a
    one-file query) run meanwhile: the process imports what the method will need as soon
    as it is forked (:attr:`vmtool.segmentation.registry.SegmentationMethod.prepare`).
    The results are the same either way.

    Parameters are those of :func:`process_media`. Returns whether that process will
    segment the queries (started now or before). A *segments* that does not parse, or a
    method that runs in this process, starts nothing and raises nothing: the query
    reports what is wrong in its turn.

    Raises
    ------
    OSError
        The fork failed.
    """
    from vmtool.device import resolve_device

    try:
        dev = resolve_device(device)
        config = recipe.segment_config(segments)
    except VmtoolError:
        return False
    if config is None or not _overlap(config.methods[0], dev):
        return False
    if _SEGMENTER[0] is None or not _SEGMENTER[0].alive:
        _fork_segmenter(config)
    return True


def _prepare(method: str, params: dict) -> None:
    """(In the forked process) the method's imports, ahead of its first item."""
    from vmtool.segmentation import registry

    registry.get(method).prepare(params)


def close_segmenter() -> None:
    """Stop the process that segments media queries beside this one, if there is one
    (a later query forks a new one)."""
    worker, _SEGMENTER[0] = _SEGMENTER[0], None
    if worker is not None:
        worker.close()


def _overlap(method: str, device: str) -> bool:
    """Whether the segmentation runs in a forked process while this one extracts.

    The music methods (msaf's) decode the media themselves and read nothing the
    extraction computes, and their libraries (librosa, scipy.signal, msaf: about 1.5 s to
    import on an idle 2-core machine) are ones the extraction does not need: on two
    cores, a one-file query then costs the longer of the two branches instead of their
    sum (docs/performance.md, "Start-up"). Serial where forking is not safe or gains
    nothing: a method that reads the extraction's output, a model or extractor on a GPU
    or torch already loaded (a forked CUDA or torch thread pool is unusable), not Linux
    (macOS frameworks are not fork-safe), a single available core, or a machine whose
    load average (1 min) is already at its number of cores: with no idle core the child
    only adds its overhead (median 4.66 -> 4.97 s at load 2.8 on 2 cores, when the child
    extracted). The results are the same either way.
    """
    import sys

    from vmtool.segmentation import registry

    m = registry.get(method)
    if m.stored_curve is not None or not m.reads_media(()):
        return False
    if device != "cpu" or not sys.platform.startswith("linux"):
        return False
    worker = _SEGMENTER[0]
    if worker is not None and worker.alive:  # forked already: nothing more to pay
        # unless the method was registered (or replaced) here after the fork: the child has
        # the registry of then, so this process runs it itself
        return worker.methods.get(method) is m
    if "torch" in sys.modules:
        return False
    cores = len(os.sched_getaffinity(0))
    return cores >= 2 and os.getloadavg()[0] < cores


#: the longest query (seconds) whose audio and HPSS a freshly forked segmentation process gets
#: from this process (:func:`_segment_beside`): on 2 cores, decoding and separating 60 s
#: takes this process about 0.5 s, well within the child's imports (about 1.4 s), and
#: its extraction after that (about 1.5 s) ends with the child's work; longer queries
#: would make this process's branch the longer one (docs/performance.md, "Start-up")
HAND_OVER_SECONDS = 60.0


def _segment_beside(path, src: str, item_id: str, info, seg_config) -> _Forked:
    """:func:`_segment` sent to the process that segments beside this one (forked on the
    first call, as soon as the file is probed, unless :func:`start_segmenter` forked it
    already), while this process reads the model and extracts: the same calls on the
    same input, so the same results. The segmentation's imports (librosa,
    ``scipy.signal``, msaf, scikit-learn; about 1.5 s) and work run beside this
    process's; the process is kept, so a later query pays neither the fork nor the imports.

    A process that has had no task yet imports for a while: for a method that starts from
    the audio's HPSS and a query of at most :data:`HAND_OVER_SECONDS`, this process
    decodes the audio and separates it first (:func:`_hand_over_audio`), on the core the
    child leaves, and sends them with the task. A later query's child has its imports: it
    decodes and separates the audio itself, beside this process's extraction.
    """
    from vmtool.segment import ItemTask
    from vmtool.segmentation import registry

    (method,) = seg_config.methods
    task = ItemTask(src, item_id, src, float(info.duration), info.has_audio, info.has_video, methods=(method,))
    worker = _SEGMENTER[0]
    if worker is None or not worker.alive:
        worker = _fork_segmenter(seg_config)
    if worker.tasks == 0 and registry.get(method).hpss and info.has_audio and info.duration <= HAND_OVER_SECONDS:
        _hand_over_audio(task)
    worker.submit(_segment, path, task, seg_config, "cpu", path=path)
    return worker


def _hand_over_audio(task) -> None:
    """Decode *task*'s audio as :func:`vmtool.segment.segment_item` would and separate it
    (:func:`vmtool.dsp.hpss`, as msaf's features do), into the task: the same arrays the
    child would compute from the same file. Whatever fails here is left to the child,
    which decodes again and reports it."""
    from vmtool import media
    from vmtool.dsp import default_threads, hpss
    from vmtool.segmentation.registry import AUDIO_RESAMPLER, AUDIO_SR

    try:
        y = media.load_audio(task.source, AUDIO_SR, resampler=AUDIO_RESAMPLER)
        parts = None  # msaf analyses nothing shorter than its 4096-sample window, nor non-finite audio
        if y.size >= 4096 and np.isfinite(y).all():
            parts = hpss(y, threads=max(1, default_threads() - 1))  # one core is the child's
    except Exception:  # noqa: BLE001 - the child decodes again and reports it, in its turn
        return
    task.audio, task.hpss = y, parts


def _fork_segmenter(config) -> _Forked:
    """Fork the process that segments beside this one (kept in :data:`_SEGMENTER`); it starts
    with the imports (``prepare``) of the method of the segmentation *config*."""
    from vmtool.segmentation import registry

    # vmtool.dsp's median filters (HPSS on both sides) loaded from numba's cache, or
    # compiled into it, by this process before the fork, not by two at the same moment
    from vmtool.dsp import median_filter

    for axis in (0, 1):
        median_filter(np.zeros((3, 3), dtype=np.float32), 3, axis)
    worker = _SEGMENTER[0] = _Forked("segmentation")
    worker.methods = {name: registry.get(name) for name in registry.names()}  # what the child knows
    method = config.methods[0]
    if registry.get(method).prepare is not None:
        worker.submit(_prepare, method, config.params(method), reply=False)
    return worker


#: bytes of a message written to the child's connection at once (a socket pair, whose buffer
#: holds a few hundred KiB on Linux): a larger one is written by a thread (:meth:`_Forked.submit`)
_PIPE_QUICK = 32 * 1024


class _Forked:
    """A forked child process that runs the calls sent to it, one at a time.

    The child inherits this process's memory as it is when forked (loaded modules), keeps
    what it imports for the next call, ignores Ctrl-C and dies with this process
    (:func:`vmtool.batch.die_with_parent`). :meth:`submit` sends ``func(*args)`` (pickled:
    *func* a module-level function); :meth:`result` waits for its value, or raises its
    :class:`VmtoolError` (pickled back with its class, file and reason). :meth:`close`
    terminates the child, e.g. after an error or Ctrl-C here while it works.
    """

    def __init__(self, name: str):
        import multiprocessing as mp

        self._path = None  # named in the error of a child that ends without a value
        self.tasks = 0  # calls sent that answer (the work ahead of them not counted)
        self._sender = None  # the thread writing a large message, if one is
        self.methods: dict = {}  # segmentation methods as registered when forked (set by the caller)
        ctx = mp.get_context("fork")
        self._conn, child_end = ctx.Pipe()
        self._proc = ctx.Process(target=_forked_main, args=(os.getpid(), child_end), daemon=True, name=name)
        self._proc.start()  # multiprocessing flushes stdout and stderr first: nothing is written twice
        child_end.close()

    @property
    def alive(self) -> bool:
        return self._proc.is_alive()

    def submit(self, func, *args, path: str | os.PathLike | None = None, reply: bool = True) -> None:
        """Send ``func(*args)``; with ``reply=False`` the child sends nothing back (and
        ignores any failure: for work ahead of a call, such as its imports).

        Does not wait for the child to read it: a message larger than the connection's
        buffer (a query's audio) is written by a thread, and the child reads it when it is
        done with what it is doing (its imports). Calls are received in the order sent: a
        call waits for the thread writing the one before it.
        """
        import threading

        from multiprocessing.reduction import ForkingPickler

        if reply:
            self._path = path
            self.tasks += 1
        data = ForkingPickler.dumps((func, args, reply))  # pickled here: its errors raised here
        self._wait_sent()
        if len(data) <= _PIPE_QUICK:
            self._send(data)
        else:
            self._sender = threading.Thread(target=self._send, args=(data,), daemon=True, name="segmentation-send")
            self._sender.start()

    def _send(self, data) -> None:
        try:
            self._conn.send_bytes(data)
        except Exception:  # noqa: BLE001 - the child is gone (or closed): result() says so
            pass

    def _wait_sent(self) -> None:
        if self._sender is not None:
            self._sender.join()
            self._sender = None

    def result(self):
        try:
            ok, value = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(5)
            raise VmtoolError(f"the {self._proc.name} process ended without a result "
                              f"(exit code {self._proc.exitcode})", self._path) from None
        if ok:
            return value
        raise value

    def close(self) -> None:
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()
        self._wait_sent()  # a message still being written fails at once: the child is gone
        self._conn.close()


def _forked_main(parent_pid: int, conn) -> None:
    import signal

    from vmtool.batch import die_with_parent

    die_with_parent(parent_pid)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the command's handler: terminate() ends the child
    while True:
        try:
            func, args, reply = conn.recv()
        except (EOFError, OSError):  # the parent closed its end, or is gone
            break
        if not reply:
            try:
                func(*args)
            except Exception:  # noqa: BLE001 - work ahead of a call: the call itself reports the failure
                pass
            continue
        try:
            msg = (True, func(*args))
        except VmtoolError as exc:
            msg = (False, exc)
        except Exception as exc:  # noqa: BLE001 - reported in the parent, as run_batch reports it
            msg = (False, VmtoolError(f"{type(exc).__name__}: {exc}"))
        try:
            conn.send(msg)
        except Exception as exc:  # noqa: BLE001 - a value that does not pickle
            conn.send((False, VmtoolError(f"the result could not be sent back ({type(exc).__name__}: {exc})")))
    conn.close()
