"""Build a vmtool features collection from precomputed features (``vmtool import``).

:func:`import_arrays` reads audio and/or video features from NPY/NPZ/HDF5/CSV arrays,
joins the two modalities on their ids (or by position) and writes a collection;
:func:`import_yt8m` does the same for YouTube-8M TFRecord shards. Both read and check
everything before the output is moved into place: on any error nothing is written and
an existing output is left untouched.

Layout of the output (see ``docs/import.md``): one item per id; ``/features/<name>``
per modality with attributes ``modality``, ``extractor = "import"``, ``level``
(``clip``: one row per item, rate NaN; ``frame``: rows at ``rate`` Hz) and ``config``.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vmtool.atomic import DEFAULT_WAIT, atomic_output, check_output_path, locks_output
from vmtool.errors import FormatError, ParameterError
from vmtool.importers.arrays import ModalityData, read_modality
from vmtool.importers.tfrecord import ProtoError, read_tfrecord
from vmtool.importers.yt8m import FRAME_LEVEL, FRAME_RATE, MAX_QUANTIZED, MIN_QUANTIZED, VIDEO_LEVEL, \
    decode_record, expand_shards
from vmtool.progress import Progress
from vmtool.store import CollectionWriter, Item, RaggedArray, update_h5

__all__ = [
    "ArraySource",
    "ImportReport",
    "import_arrays",
    "import_yt8m",
    "DEFAULT_NAMES",
    "YT8M_NAMES",
    "item_sha256",
]

MODALITIES = ("audio", "video")
DEFAULT_NAMES = {"audio": "imported_audio", "video": "imported_video"}
YT8M_NAMES = {"audio": "yt8m_audio", "video": "yt8m_rgb"}
CONFIG_VERSION = 1
EXTRACTOR = "import"
VERSION = "1"
FLUSH_ITEMS = 4096  # items buffered before a write, unless their rows reach FLUSH_BYTES first
FLUSH_BYTES = 64 << 20
DEQUANTIZE = {"min": MIN_QUANTIZED, "max": MAX_QUANTIZED, "dtype": "float32",
              "formula": "q * (max - min) / 255 + (max - min) / 512 + min"}


@dataclass
class ArraySource:
    """Where one modality's features are read from.

    Attributes
    ----------
    spec : str
        ``PATH`` or ``PATH:KEY`` (NPY, NPZ, HDF5 or CSV; see :mod:`vmtool.importers.arrays`).
    offsets : str, optional
        ``PATH[:KEY]`` of offsets ``(N + 1,)``: the array holds frames.
    ids : str, optional
        Text file, one id per line (overrides ids stored with the array).
    rate : float, optional
        Frame rate in Hz of frame-level features (overrides the common rate).
    name : str, optional
        Feature name in the output (default ``imported_<modality>``).
    """

    spec: str | os.PathLike
    offsets: str | os.PathLike | None = None
    ids: str | os.PathLike | None = None
    rate: float | None = None
    name: str | None = None


@dataclass
class ImportReport:
    """What an import wrote.

    ``n_pairs`` items have both modalities (audio-visual pairs), ``n_audio_only`` and
    ``n_video_only`` one, ``n_without`` none (empty frame lists). ``join`` is ``id``,
    ``position`` (no ids on both sides), ``single`` (one modality) or ``record``
    (YouTube-8M: both modalities in each record).
    """

    output: str
    n_items: int = 0
    n_pairs: int = 0
    n_audio_only: int = 0
    n_video_only: int = 0
    n_without: int = 0
    join: str = ""
    features: list[dict[str, Any]] = field(default_factory=list)
    n_shards: int = 0
    labels: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def item_sha256(audio: np.ndarray | None, video: np.ndarray | None) -> str:
    """Hex SHA-256 of an item's stored rows: the float32 little-endian bytes of audio, then video."""
    h = hashlib.sha256()
    for rows in (audio, video):
        if rows is not None and len(rows):
            h.update(np.ascontiguousarray(rows, dtype="<f4").tobytes())
    return h.hexdigest()


class _Builder:
    """Adds items to a CollectionWriter and counts them."""

    def __init__(self, writer: CollectionWriter, names: Mapping[str, str], report: ImportReport):
        self.w = writer
        self.names = names
        self.report = report
        self.dims: dict[str, int] = {}
        self.level: dict[str, str] = {}
        self.rate: dict[str, float] = {}
        self.rows = {m: 0 for m in MODALITIES}
        self.items = {m: 0 for m in MODALITIES}
        self.pending_bytes = 0

    def declare(self, modality: str, dim: int, *, level: str, rate: float, attrs: dict[str, Any]) -> None:
        self.w.declare("features", self.names[modality], dim=dim, attrs={
            "modality": modality, "extractor": EXTRACTOR, "version": VERSION, "level": level, **attrs})
        self.dims[modality], self.level[modality], self.rate[modality] = dim, level, rate

    def add(self, item_id: str, source: str, parts: Mapping[str, np.ndarray | None]) -> None:
        arrays, durations, has = {}, [], {}
        rows: dict[str, np.ndarray | None] = {}
        for m in MODALITIES:
            p = parts.get(m)
            rows[m] = None if p is None or len(p) == 0 else np.ascontiguousarray(p, dtype=np.float32)
        for m in MODALITIES:
            r = rows[m]
            has[m] = r is not None
            if r is None:
                continue
            rate = self.rate[m]
            arrays[("features", self.names[m])] = RaggedArray(r, rate)
            if math.isfinite(rate):
                durations.append(len(r) / rate)
            self.rows[m] += len(r)
            self.items[m] += 1
            self.pending_bytes += r.nbytes
        self.w.add(Item(id=item_id, source=source, sha256=item_sha256(rows["audio"], rows["video"]),
                        duration=max(durations) if durations else math.nan, has_audio=has["audio"],
                        has_video=has["video"], fps=math.nan, sample_rate=0), arrays)
        if self.pending_bytes >= FLUSH_BYTES:
            self.w.flush()
            self.pending_bytes = 0
        rep = self.report
        rep.n_items += 1
        if has["audio"] and has["video"]:
            rep.n_pairs += 1
        elif has["audio"]:
            rep.n_audio_only += 1
        elif has["video"]:
            rep.n_video_only += 1
        else:
            rep.n_without += 1

    def summarise(self) -> None:
        for m in MODALITIES:
            if m in self.dims:
                rate = self.rate[m]
                self.report.features.append({
                    "name": self.names[m], "modality": m, "level": self.level[m], "dim": self.dims[m],
                    "rate": rate if math.isfinite(rate) else None, "rows": self.rows[m], "items": self.items[m]})


def _check_name(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise ParameterError(f"feature name {name!r} is not usable (non-empty, without '/')")
    return name


def _names(given: Mapping[str, str | None], default: Mapping[str, str]) -> dict[str, str]:
    names = {m: _check_name(given.get(m) or default[m]) for m in MODALITIES}
    if names["audio"] == names["video"]:
        raise ParameterError(f"the audio and video features cannot both be named {names['audio']!r}")
    return names


def _check_rate(rate: float | None, option: str) -> None:
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise ParameterError(f"{option} must be a positive number of frames per second, got {rate}")


def _join(data: Mapping[str, ModalityData]) -> tuple[list[tuple[str, dict[str, int]]], str]:
    """Items as ``(id, {modality: index})``: on ids when both modalities have them, else by position."""
    if len(data) == 1:
        (m, d), = data.items()
        ids = d.ids if d.ids is not None else [str(i) for i in range(len(d))]
        return [(x, {m: i}) for i, x in enumerate(ids)], "single"
    a, v = data["audio"], data["video"]
    if a.ids is not None and v.ids is not None:
        amap = {x: i for i, x in enumerate(a.ids)}
        vmap = {x: i for i, x in enumerate(v.ids)}
        order = list(a.ids) + [x for x in v.ids if x not in amap]
        return [(x, {m: mp[x] for m, mp in (("audio", amap), ("video", vmap)) if x in mp}) for x in order], "id"
    if len(a) != len(v):
        raise ParameterError(
            f"{a.path} has {len(a)} audio items and {v.path} has {len(v)} video items; without ids on both "
            "sides the two are paired by position, so the counts must match (or give ids: --audio-ids, "
            "--video-ids, or ids stored with the arrays)")
    ids = a.ids if a.ids is not None else v.ids if v.ids is not None else [str(i) for i in range(len(a))]
    return [(x, {"audio": i, "video": i}) for i, x in enumerate(ids)], "position"


@locks_output()
def import_arrays(
    output: str | os.PathLike,
    *,
    audio: ArraySource | None = None,
    video: ArraySource | None = None,
    ids: str | os.PathLike | None = None,
    rate: float | None = None,
    wait: float = DEFAULT_WAIT,
    command: str = "",
    labels: str | os.PathLike | None = None,
    negatives: str | os.PathLike | None = None,
) -> ImportReport:
    """Write a features collection from precomputed audio and/or video feature arrays.

    Parameters
    ----------
    output : path
        The collection to write (atomically; an existing file is replaced on success).
    audio, video : ArraySource, optional
        The inputs; at least one.
    ids : path, optional
        Text file of ids (one per line) for every input that has no ``ids`` of its own.
    rate : float, optional
        Frame rate in Hz of the frame-level inputs without a ``rate`` of their own.
    command : str
        The command line, stored in the output.
    wait : float
        Seconds to wait for another run writing *output* (see :func:`vmtool.atomic.output_lock`).
    labels, negatives : path, optional
        Label and negatives CSVs (see :mod:`vmtool.labels`), joined on the item ids and
        written into the output; a bad file means no output.

    Returns
    -------
    ImportReport

    Raises
    ------
    ParameterError
        No input; a frame-level input without a rate, or a rate for clip-level input;
        lengths that do not fit; NaN/inf values; unknown keys; duplicate ids.
    FormatError
        An input file that cannot be read as its type.
    """
    sources = {m: s for m, s in (("audio", audio), ("video", video)) if s is not None}
    given = [x for s in sources.values() for x in (s.spec, s.offsets, s.ids) if x] + ([ids] if ids else [])
    # an input may be given as PATH:KEY; both readings are checked
    out = check_output_path(output, inputs=[p for x in given for p in {str(x), str(x).rsplit(":", 1)[0]}])
    if not sources:
        raise ParameterError("nothing to import: give audio and/or video features (--audio, --video), "
                             "or YouTube-8M shards")
    _check_rate(rate, "--rate")
    for m, s in sources.items():
        _check_rate(s.rate, f"--{m}-rate")
    names = _names({m: s.name for m, s in sources.items()}, DEFAULT_NAMES)
    data = {m: read_modality(s.spec, m, offsets=s.offsets, ids=s.ids if s.ids is not None else ids)
            for m, s in sources.items()}
    rates: dict[str, float] = {}
    for m, d in data.items():
        own = sources[m].rate
        if d.level == "clip":
            if own is not None:
                raise ParameterError(f"is clip-level (one row per item), so --{m}-rate does not apply; frame-level "
                                     "input is an array with offsets, one 2-D array per item, or a 3-D array", d.path)
            rates[m] = math.nan
        else:
            r = own if own is not None else rate
            if r is None:
                raise ParameterError(f"holds frame-level {m} features ({d.offsets_from or d.layout}), which need a "
                                     f"frame rate: give --rate HZ (or --{m}-rate HZ)", d.path)
            rates[m] = float(r)
    if rate is not None and all(d.level == "clip" for d in data.values()):
        raise ParameterError("--rate was given, but every input is clip-level (one row per item); frame-level "
                             "input is an array with offsets, one 2-D array per item, or a 3-D array")
    items, join = _join(data)
    imported: dict[str, Any] = {"format": "arrays", "join": join}
    feat_cfg = {}
    for m, d in data.items():
        cfg = {**d.config(), "rate": None if math.isnan(rates[m]) else rates[m]}
        feat_cfg[m] = cfg
        imported[m] = {"feature": names[m], **cfg}
    root = {"config_version": CONFIG_VERSION, "imported": imported}
    report = ImportReport(output=str(out), join=join)
    with atomic_output(out) as tmp:
        with CollectionWriter(tmp, config=root, command=command, display_path=out, flush_items=FLUSH_ITEMS) as w:
            b = _Builder(w, names, report)
            for m, d in data.items():
                attrs: dict[str, Any] = {"config": feat_cfg[m], "summary": f"{d.level}-level {m} features "
                                         f"imported from {d.path}" + (f":{d.key}" if d.key else "")}
                if d.columns:
                    attrs["columns"] = d.columns
                b.declare(m, d.dim, level=d.level, rate=rates[m], attrs=attrs)
            for item_id, idx in items:
                source = ";".join(data[m].sources[i] for m, i in idx.items())
                b.add(item_id, source, {m: data[m].rows[i] for m, i in idx.items()})
        b.summarise()
        if labels is not None or negatives is not None:
            from vmtool.labels import label_file

            report.labels = label_file(tmp, labels=labels, negatives=negatives, command=command,
                                       display_path=out).to_dict()
    return report


@locks_output()
def import_yt8m(
    output: str | os.PathLike,
    shards: Sequence[str | os.PathLike],
    *,
    audio_name: str | None = None,
    video_name: str | None = None,
    wait: float = DEFAULT_WAIT,
    command: str = "",
    progress: Progress | None = None,
) -> ImportReport:
    """Write a features collection from YouTube-8M TFRecord shards (video- or frame-level).

    Each record (video) is one item with both modalities: ``yt8m_rgb`` (video, 1024-d)
    and ``yt8m_audio`` (audio, 128-d); clip level for video-level records, frame level
    at 1 Hz (dequantised) for frame-level ones. Labels are stored in each feature group
    as the companion ``labels`` / ``labels_offsets``.

    Parameters
    ----------
    output : path
        The collection to write (atomically).
    shards : sequence of str
        Shard paths or glob patterns (matches sorted).
    audio_name, video_name : str, optional
        Feature names (default ``yt8m_audio``, ``yt8m_rgb``).
    wait : float
        Seconds to wait for another run writing *output* (see :func:`vmtool.atomic.output_lock`).

    Raises
    ------
    FormatError
        A damaged shard (CRC, truncation) or a record that is not a YouTube-8M video;
        shards mixing video-level and frame-level records.
    ParameterError
        Duplicate ids; no records; NaN/inf values.
    """
    paths = expand_shards(shards)
    out = check_output_path(output, inputs=paths)
    names = _names({"audio": audio_name, "video": video_name}, YT8M_NAMES)
    progress = progress or Progress()
    report = ImportReport(output=str(out), join="record", n_shards=len(paths))
    labels: list[np.ndarray] = []
    seen: dict[str, str] = {}
    level: str | None = None
    first = ""
    with atomic_output(out) as tmp:
        with CollectionWriter(tmp, config={"config_version": CONFIG_VERSION}, command=command,
                              display_path=out, flush_items=FLUSH_ITEMS) as w:
            b = _Builder(w, names, report)
            progress.batch_start(len(paths))
            for p in paths:
                size = float(max(p.stat().st_size, 1))
                progress.file_start(str(p), size)
                done = 0
                for idx, data in enumerate(read_tfrecord(p)):
                    done += len(data) + 16
                    try:
                        rec = decode_record(data)
                    except ProtoError as exc:
                        raise FormatError(f"record {idx}: {exc}", p) from None
                    src = f"{p}#{idx}"
                    if level is None:
                        level, first = rec.level, src
                    elif rec.level != level:
                        raise FormatError(f"record {idx} is a {rec.level}-level record, but {first} is "
                                          f"{level}-level; import one kind at a time", p)
                    if rec.id in seen:
                        raise ParameterError(f"record {idx}: id {rec.id!r} appears twice (also {seen[rec.id]})", p)
                    seen[rec.id] = src
                    keys = VIDEO_LEVEL if level == "video" else FRAME_LEVEL
                    parts = {}
                    for m in MODALITIES:
                        rows = rec.audio if m == "audio" else rec.video
                        if rows is None:
                            continue
                        if m not in b.dims:
                            b.declare(m, rows.shape[1], **_yt8m_attrs(m, level, keys[m]))
                        elif rows.shape[1] != b.dims[m]:
                            raise FormatError(f"record {idx} ({rec.id!r}): '{keys[m]}' has {rows.shape[1]} values "
                                              f"per row, earlier records {b.dims[m]}", p)
                        bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
                        if bad.size:
                            raise ParameterError(f"record {idx} ({rec.id!r}): '{keys[m]}' holds NaN or "
                                                 "infinite values", p)
                        parts[m] = rows
                    b.add(rec.id, src, parts)
                    labels.append(rec.labels)
                    progress.file_advance(str(p), min(done, size))
                progress.file_done(str(p), True)
            if not seen:
                raise ParameterError(f"the shard(s) hold no records ({', '.join(map(str, paths[:3]))}"
                                     f"{', ...' if len(paths) > 3 else ''})")
            w.set_attr("config", {"config_version": CONFIG_VERSION, "imported": {
                "format": "yt8m", "level": f"{level}-level", "shards": [str(p) for p in paths],
                "records": len(seen), "features": {m: names[m] for m in MODALITIES if m in b.dims},
                "labels": "companion 'labels' / 'labels_offsets' of each feature",
                "dequantize": DEQUANTIZE if level == "frame" else None,
                "rate": FRAME_RATE if level == "frame" else None}})
        _write_labels(tmp, [names[m] for m in MODALITIES if m in b.dims], labels)
        b.summarise()
    return report


def _yt8m_attrs(modality: str, level: str, key: str) -> dict[str, Any]:
    frame = level == "frame"
    cfg = {"source": "YouTube-8M", "format": "yt8m", "feature": key, "level": f"{level}-level",
           "dequantize": DEQUANTIZE if frame else None, "rate": FRAME_RATE if frame else None,
           "labels": "companion 'labels' / 'labels_offsets'"}
    what = f"frame-level '{key}' (1 Hz, dequantised)" if frame else f"video-level '{key}'"
    return {"level": "frame" if frame else "clip", "rate": FRAME_RATE if frame else math.nan,
            "attrs": {"config": cfg, "summary": f"YouTube-8M {what}"}}


def _write_labels(path: Path, groups: Sequence[str], labels: Sequence[np.ndarray]) -> None:
    """Store per-item labels as the companion ``labels`` / ``labels_offsets`` of each group."""
    counts = np.array([len(x) for x in labels], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    data = np.concatenate([np.asarray(x, dtype=np.int64) for x in labels]) if len(labels) else np.zeros(0, np.int64)
    gz = {"compression": "gzip", "compression_opts": 4}
    with update_h5(path) as f:
        for name in groups:
            g = f["features"][name]
            g.create_dataset("labels", data=data, maxshape=(None,), chunks=(max(1, min(len(data), 1 << 16)),), **gz)
            g.create_dataset("labels_offsets", data=offsets, maxshape=(None,),
                             chunks=(max(1, min(len(offsets), 1024)),), **gz)
