"""Feature extraction of many media files into one collection file.

:func:`extract` is what ``vmtool extract`` runs: it probes and hashes every input,
decodes each file once per modality, feeds the decoded streams to every requested
extractor, and appends the items to the output collection atomically.

The extraction configuration (:class:`ExtractConfig`) is stored in the output's root
attribute ``config``; :func:`config_from_collection` rebuilds it, so a query can be
processed exactly as a catalog was.
"""

from __future__ import annotations

import math
import os
import shlex
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmtool import features as _features
from vmtool.atomic import DEFAULT_WAIT, atomic_output, check_output_path, locks_output
from vmtool.batch import Failure, in_input_order
from vmtool.errors import BatchFailed, MediaError, ParameterError, VmtoolError
from vmtool.features.base import ExtractorOutput, n_steps_for
from vmtool.media import MEDIA_PATTERNS, check_media_file, find_media
from vmtool.progress import Progress
from vmtool.store import (
    Collection,
    CollectionWriter,
    Item,
    RaggedArray,
    _NoClose,
    canonical_json,
    sha256_file,
    unique_ids,
)

__all__ = [
    "ExtractConfig",
    "ExtractReport",
    "ItemResult",
    "extract",
    "extract_item",
    "check_inputs",
    "build_extractors",
    "config_from_collection",
    "DEFAULT_AUDIO",
    "DEFAULT_VIDEO",
]

DEFAULT_AUDIO = ("handcrafted",)
DEFAULT_VIDEO = ("transnet", "color")
CONFIG_VERSION = 1


@dataclass
class ExtractConfig:
    """What to extract.

    Attributes
    ----------
    audio_features, video_features : sequence of str
        Extractor names per modality (empty: none).
    rate : float
        Output steps per second for frame-level features (1 Hz in the papers).
    require_audio, require_video : bool
        When True, an input lacking the modality is an error; when False (the
        defaults), that modality's features are simply absent for that item.
    params : dict of str -> dict
        Extra parameters per extractor name.
    metadata : bool
        Also read each file's container tags (:mod:`vmtool.metadata`).
    measure : bool
        Also measure each file's tempo, key and loudness from its audio (decoded for
        the audio extractors anyway). Both are stored in ``/metadata`` and are not part
        of the recorded configuration (a query is processed without them).
    """

    audio_features: Sequence[str] = DEFAULT_AUDIO
    video_features: Sequence[str] = DEFAULT_VIDEO
    rate: float = 1.0
    require_audio: bool = False
    require_video: bool = False
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    metadata: bool = False
    measure: bool = False

    def validate(self) -> None:
        if not (isinstance(self.rate, (int, float)) and math.isfinite(self.rate) and 0 < self.rate <= 1000):
            raise ParameterError(f"--rate must be a positive number of Hz (at most 1000), got {self.rate!r}")
        if not self.audio_features and not self.video_features:
            raise ParameterError("no feature to extract: give --audio-features and/or --video-features")
        for mod, names in (("audio", self.audio_features), ("video", self.video_features)):
            seen = set()
            for n in names:
                if n in seen:
                    raise ParameterError(f"{mod} feature {n!r} is given twice")
                seen.add(n)
                cls = _features.extractor_class(n)
                if cls.modality != mod:
                    others = ", ".join(_features.names(mod)) or "none"
                    raise ParameterError(f"{n!r} is a {cls.modality} extractor, not a {mod} one (known {mod} extractors: {others})")


def build_extractors(config: ExtractConfig, device: str = "cpu") -> list:
    """Instantiate the configured extractors (checking they can run here)."""
    out = []
    for mod, names in (("audio", config.audio_features), ("video", config.video_features)):
        for n in names:
            out.append(_features.get_extractor(n, modality=mod, device=device, **config.params.get(n, {})))
    return out


def stored_config(config: ExtractConfig, extractors: Sequence) -> dict[str, Any]:
    """The JSON configuration recorded in a collection's root attribute ``config``."""
    return {
        "config_version": CONFIG_VERSION,
        "rate": float(config.rate),
        "audio": {e.name: e.config() for e in extractors if e.modality == "audio"},
        "video": {e.name: e.config() for e in extractors if e.modality == "video"},
        "params": {k: dict(v) for k, v in config.params.items()},
        "decoding": {
            "library": "PyAV",
            "audio": "mono float32, downmixed and resampled by FFmpeg swresample to each extractor's rate",
            "video": "every frame, scaled by FFmpeg's scale filter to each extractor's size, rgb24",
        },
    }


def feature_attrs(extractor) -> dict[str, Any]:
    """The attributes recorded with an extractor's ``features/<name>`` element."""
    e = extractor
    return {"modality": e.modality, "extractor": e.name, "version": e.version, "columns": e.columns,
            "config": e.config(), "summary": e.summary, **({"level": "clip"} if e.level == "clip" else {})}


def config_from_collection(collection: Collection) -> ExtractConfig:
    """Rebuild the :class:`ExtractConfig` a collection was extracted with."""
    cfg = collection.config
    if not cfg or "rate" not in cfg:
        raise VmtoolError("holds no extraction configuration (root attribute 'config')", collection.path)
    return ExtractConfig(
        audio_features=tuple(cfg.get("audio", {})),
        video_features=tuple(cfg.get("video", {})),
        rate=float(cfg["rate"]),
        params={k: dict(v) for k, v in cfg.get("params", {}).items()},
    )


@dataclass
class ItemResult:
    """Everything extracted from one file."""

    item: Item
    outputs: dict[str, ExtractorOutput]  # extractor name -> output
    rates: dict[str, float]  # extractor name -> frame rate of its rows
    metadata: dict[str, Any] = field(default_factory=dict)  # tags and measured_* fields

    def arrays(self) -> dict[tuple[str, str], RaggedArray]:
        out: dict[tuple[str, str], RaggedArray] = {}
        for name, o in self.outputs.items():
            out[("features", name)] = RaggedArray(o.frames, self.rates[name])
            for cname, (curve, crate) in o.curves.items():
                out[("curves", cname)] = RaggedArray(curve, crate)
        return out


def extract_item(
    path: str | os.PathLike,
    extractors: Sequence,
    config: ExtractConfig,
    *,
    item_id: str | None = None,
    sha256: str | None = None,
    on_advance: Callable[[float], None] | None = None,
    overlap: bool = False,
) -> ItemResult:
    """Extract every configured feature from one media file.

    The file is decoded once per distinct audio sample rate and once for all video
    extractors together. With *overlap* the audio passes run in a second thread while
    the video pass runs; off by default, because on 2 cores it was slower (0.93x, one
    pair of 4-minute extractions under load 5: docs/performance.md). Results do not
    depend on it.

    Raises
    ------
    MediaError
        Undecodable file, or a required modality is missing.
    """
    from vmtool import media

    p = Path(path)
    info = media.probe(p)
    sha = sha256 or sha256_file(p)
    n_steps = n_steps_for(info.duration, config.rate)
    audio_ex = [e for e in extractors if e.modality == "audio"]
    video_ex = [e for e in extractors if e.modality == "video"]
    has = {"audio": info.has_audio, "video": info.has_video}
    wanted = {"audio": audio_ex, "video": video_ex}
    explicit = [m for m, req in (("audio", config.require_audio), ("video", config.require_video)) if req and wanted[m]]
    missing = [m for m in ("audio", "video") if wanted[m] and not has[m]]
    # an item must have at least one explicitly requested modality (a mixed batch of
    # audio-only and video files with -a and -v is fine), and something to extract
    if (explicit and not any(has[m] for m in explicit)) or not any(wanted[m] and has[m] for m in has):
        m = next(m for m in (explicit or missing))
        names = ", ".join(e.name for e in wanted[m])
        raise MediaError(f"has no {m} stream, but {m} features were asked for ({names})", p)
    progress = {"audio": 0.0, "video": 0.0}
    stop = threading.Event()  # the video pass failed or was interrupted: end the audio pass

    def advance(modality: str, seconds: float) -> None:
        progress[modality] = seconds
        if on_advance is not None and (modality == "video" or not overlapping):
            on_advance(progress["audio"] + progress["video"])

    meta: dict[str, Any] = {}
    if config.metadata:
        from vmtool.metadata import read_tags

        meta.update(read_tags(p))
    measured: dict[str, Any] = {}  # tempo, key, loudness of the first decoded signal

    def audio_pass() -> dict[str, ExtractorOutput]:
        out: dict[str, ExtractorOutput] = {}
        measurer = None
        by_sr: dict[int, list] = {}
        for e in audio_ex:
            by_sr.setdefault(int(e.sample_rate), []).append(e)
        done = 0.0
        for sr, group in by_sr.items():
            accs = [e.begin(info, config.rate, n_steps) for e in group]
            if config.measure and measurer is None:  # measured on the first decoded signal
                from vmtool.metadata import Measurer

                measurer = Measurer(sr)
                accs.append(measurer)
            pos = 0
            for block in media.iter_audio(p, sr, info=info):
                if stop.is_set():
                    return out
                for acc in accs:
                    acc.push(block)
                pos += block.size
                advance("audio", done + pos / sr)
            for e, acc in zip(group, accs):
                out[e.name] = acc.finish()
            done += info.duration
        if measurer is not None:
            measured.update(measurer.finish())
        return out

    def video_pass() -> dict[str, ExtractorOutput]:
        accs = [e.begin(info, config.rate, n_steps) for e in video_ex]
        sizes = [e.frame_size for e in video_ex]
        k = 0
        for t, frames in media.iter_frames(p, sizes, info=info):
            for acc, fr in zip(accs, frames):
                acc.push(t, fr)
            k += 1
            if k % 50 == 0:
                advance("video", t)
        return {e.name: acc.finish() for e, acc in zip(video_ex, accs)}

    run_audio = bool(audio_ex and info.has_audio)
    run_video = bool(video_ex and info.has_video)
    overlapping = overlap and run_audio and run_video
    audio_out: dict[str, ExtractorOutput] = {}
    video_out: dict[str, ExtractorOutput] = {}
    if overlapping:
        with ThreadPoolExecutor(1, thread_name_prefix="vmtool-audio") as pool:
            audio_future = pool.submit(audio_pass)
            try:
                video_out = video_pass()
            except BaseException:
                stop.set()
                raise
            audio_out = audio_future.result()
    else:
        audio_out = audio_pass() if run_audio else {}
        video_out = video_pass() if run_video else {}
    outputs = {**audio_out, **video_out}
    meta.update(measured)
    item = Item(
        id=item_id or p.stem,
        source=str(path),
        sha256=sha,
        duration=float(info.duration),
        has_audio=info.has_audio,
        has_video=info.has_video,
        fps=float(info.fps),
        sample_rate=int(info.sample_rate),
    )
    return ItemResult(item=item, outputs=outputs, rates={n: float(config.rate) for n in outputs}, metadata=meta)


def work_of(path: str | os.PathLike, extractors: Sequence) -> float:
    """Seconds of media to process for *path* (for progress bars); 0 when unknown."""
    from vmtool import media

    try:
        info = media.probe(path)
    except VmtoolError:
        return 0.0
    passes = 0
    if info.has_audio:
        passes += len({int(e.sample_rate) for e in extractors if e.modality == "audio"})
    if info.has_video and any(e.modality == "video" for e in extractors):
        passes += 1
    return info.duration * passes


def check_inputs(
    inputs: Sequence[str | os.PathLike],
    *,
    keep_going: bool = False,
    known_sha256: set[str] | frozenset[str] = frozenset(),
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[str]]:
    """Check and hash every input before any work, so that every bad path is reported.

    Returns
    -------
    todo : list of (path, sha256)
        Inputs to process, without duplicates (same content given twice).
    failures : list of (path, message)
        Missing, unreadable or empty inputs (only with *keep_going*; else the first raises).
    skipped : list of str
        Inputs whose SHA-256 is in *known_sha256*, or repeat an earlier input.
    """
    todo: list[tuple[str, str]] = []
    failures: list[tuple[str, str]] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for src in inputs:
        p = Path(src)
        try:
            sha = sha256_file(check_media_file(p))
        except (VmtoolError, OSError) as exc:
            err = exc if isinstance(exc, VmtoolError) else VmtoolError(exc.strerror or str(exc), p)
            if not keep_going:
                raise err from exc
            failures.append((str(src), str(err)))
            continue
        if sha in known_sha256 or sha in seen:
            skipped.append(str(src))
            continue
        seen.add(sha)
        todo.append((str(src), sha))
    return todo, failures, skipped


@dataclass
class ExtractReport:
    """What :func:`extract` did."""

    output: str
    added: list[str] = field(default_factory=list)  # ids
    skipped: list[str] = field(default_factory=list)  # sources already present (resume)
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) left out of folders
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source, message)
    written: bool = False
    sheet_matched: int = 0  # items given values by the --metadata sheet
    sheet_unmatched: list[str] = field(default_factory=list)  # the sheet's ids/file names no item has

    @property
    def ok(self) -> bool:
        return not self.failures


# --- worker processes -------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _worker_init(config: ExtractConfig, device: str) -> None:
    _WORKER["config"] = config
    _WORKER["extractors"] = build_extractors(config, device)


def _worker_run(path: str, item_id: str, sha: str) -> ItemResult:
    return extract_item(path, _WORKER["extractors"], _WORKER["config"], item_id=item_id, sha256=sha)


@locks_output()
def extract(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    config: ExtractConfig | None = None,
    *,
    device: str = "cpu",
    workers: int = 1,
    resume: bool = False,
    keep_going: bool = False,
    wait: float = DEFAULT_WAIT,
    command: str | None = None,
    progress: Progress | None = None,
    sheet: str | os.PathLike | None = None,
    scheduler: str | None = None,
    send_media: bool = False,
    patterns: Sequence[str] | None = None,
) -> ExtractReport:
    """Extract features of *inputs* into the collection file *output*.

    Parameters
    ----------
    inputs : sequence of path
        Media files (audio, video or both) and folders: a folder stands for the
        media files below it (see :func:`vmtool.media.find_media`); what was left
        out is listed in the report's ``ignored``. A song (with or without cover
        art) gets the audio extractors only, a silent video the video ones, unless
        the config requires a modality.
    output : path
        The collection to write. Written atomically: on any failure (without
        ``keep_going``) or interruption, an existing file is left as it was.
    config : ExtractConfig
    device : str
        A resolved torch device (see :func:`vmtool.device.resolve_device`).
    workers : int
        Files processed in parallel (separate processes).
    resume : bool
        Keep the items already in *output* and skip inputs whose SHA-256 is there.
        The stored configuration must match *config*.
    keep_going : bool
        Record failed files and go on; the report lists them.
    command : str
        The command line to record (defaults to ``sys.argv``).
    wait : float
        Seconds to wait for another run writing *output* (see :func:`vmtool.atomic.output_lock`).
    sheet : path, optional
        A CSV of track metadata joined by ``id`` or file name to every item of the
        output (:func:`vmtool.metadata.read_sheet`); its values win over the tags.
    scheduler : str, optional
        Run the files as tasks on a Dask cluster (see :mod:`vmtool.cluster`):
        ``local:N`` or a scheduler address. *workers* is then unused.
    send_media : bool
        With *scheduler*: send each file's bytes to the worker (no shared storage).
    patterns : sequence of str, optional
        File-name patterns selecting the files inside folders (default: every
        media extension).

    Returns
    -------
    ExtractReport

    Raises
    ------
    VmtoolError
        The first failure when not ``keep_going``; or, with ``keep_going``, when no
        input could be extracted at all.
    """
    config = config or ExtractConfig()
    config.validate()
    progress = progress or Progress()
    out = check_output_path(output, inputs=inputs)
    if workers < 1:
        raise ParameterError(f"--workers must be at least 1, got {workers}")
    report = ExtractReport(output=str(out))
    given = list(inputs)
    inputs, report.ignored = find_media(given, patterns)
    if not inputs:
        folders = [os.fspath(x) for x in given if Path(x).is_dir()]
        raise VmtoolError(f"no media file found (patterns: {' '.join(patterns or MEDIA_PATTERNS)})",
                          folders[0] if len(folders) == 1 else None)
    sheet_data = None
    if sheet is not None:
        from vmtool.metadata import read_sheet

        sheet_data = read_sheet(sheet)  # before any work: a bad sheet costs nothing
    extractors = build_extractors(config, device)
    cfg_json = stored_config(config, extractors)
    from vmtool.cluster import first_arg, replace_first_arg, runner_for

    runner = runner_for(scheduler, send_media=send_media, progress=progress, media=first_arg,
                        relocate=replace_first_arg)
    command = command if command is not None else shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])

    existing_shas: set[str] = set()
    existing_ids: list[str] = []
    seed = None
    if resume and out.exists():
        with Collection(out) as col:
            if col.config and canonical_json(col.config) != canonical_json(cfg_json):
                raise ParameterError(
                    "was extracted with a different configuration; --resume needs the same options", out
                )
            existing_shas = set(col.sha256s)
            existing_ids = col.ids
        seed = out

    todo, failures, skipped = check_inputs(inputs, keep_going=keep_going, known_sha256=existing_shas)
    report.failures.extend(failures)
    report.skipped.extend(skipped)
    ids = unique_ids([Path(s).stem for s, _ in todo], [h for _, h in todo], existing_ids)
    if seed is not None and not todo and sheet_data is None:
        if failures:  # inputs failed: the target is not up to date, leave even its time stamp
            if not skipped:
                raise BatchFailed(f"no input could be extracted; {out.name} was left as it was", out, failures)
            return report
        # nothing new: the file is already what a rewrite would give; only its time stamp
        # moves, as after a rewrite, so Make sees the target as up to date (no copy)
        os.utime(out)
        return report

    progress.batch_start(len(todo))
    with atomic_output(out, seed=seed) as tmp:
        with CollectionWriter(tmp, config=cfg_json, command=command, display_path=out) as writer:
            for e in extractors:
                writer.declare("features", e.name, dim=e.dim, attrs=feature_attrs(e))
                for cname, desc in e.curve_names.items():
                    writer.declare("curves", cname, dim=None, attrs={
                        "modality": e.modality, "extractor": e.name, "version": e.version, "description": desc,
                    })
            tasks = [(src, (src, ids[i], sha)) for i, (src, sha) in enumerate(todo)]

            def here(src: str, item_id: str, sha: str, on_advance=None) -> ItemResult:
                return extract_item(src, extractors, config, item_id=item_id, sha256=sha, on_advance=on_advance)

            for i, res in runner(tasks, _worker_run, workers=workers, keep_going=keep_going, progress=progress,
                                    work=lambda src: work_of(src, extractors), initializer=_worker_init,
                                    initargs=(config, device), in_process=here):
                if isinstance(res, Failure):
                    report.failures.append((res.label, res.message))
                else:
                    res.item.source = todo[i][0]  # the client's path (a worker may have read a copy)
                    writer.add(res.item, res.arrays(), res.metadata)
                    report.added.append(res.item.id)
            report.failures[:] = in_input_order(report.failures, inputs)
            if not report.added and (todo or sheet_data is None):  # raising discards the temporary copy
                if existing_ids:
                    raise BatchFailed(f"no input could be extracted; {out.name} was left as it was", out,
                                      report.failures)
                raise BatchFailed("no input could be extracted; nothing written", out, report.failures)
            if config.measure:
                from vmtool.metadata import GROUP, MEASURE_CONFIG

                writer.flush()
                if GROUP in writer._f:
                    writer._f[GROUP].attrs["measure"] = canonical_json(MEASURE_CONFIG)
            if sheet_data is not None:
                from vmtool.metadata import join_sheet

                writer.flush()
                col = Collection(out, _file=_NoClose(writer._f))
                report.sheet_matched, report.sheet_unmatched = join_sheet(writer._f, sheet_data, col.ids,
                                                                           [str(x) for x in col.column("source")])
            report.written = True
    return report
