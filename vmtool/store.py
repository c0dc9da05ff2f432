"""The vmtool HDF5 collection format: read, append, validate.

One file holds N items (media files) and, per item, ragged arrays: frame-level
feature matrices, curves (e.g. the shot-boundary likelihood at the video's native
frame rate) and event lists (segment boundaries, beats). Every ragged array is stored
columnar: all items' rows are concatenated in one chunked, compressed ``data``
dataset, with an ``offsets`` array (N + 1 entries) and a per-item ``rate`` array, so
appending items never creates groups and reading one item reads only its chunks.

The written specification is ``docs/format.md``; this module is its reference
implementation. Layout (schema 1.0)::

    /                      attrs: vmtool_kind="collection", vmtool_schema="1.0",
                                  vmtool_version, created, command, config (JSON),
                                  history (JSON list)
    /items/id              str   (N,)  unique
    /items/source          str   (N,)  path as given when the item was added
    /items/sha256          str   (N,)  hex digest of the source file
    /items/duration        f8    (N,)  seconds
    /items/has_audio       bool  (N,)
    /items/has_video       bool  (N,)
    /items/fps             f8    (N,)  video's average frame rate, NaN without video
    /items/sample_rate     i8    (N,)  audio's native sample rate, 0 without audio
    /features/<name>/      attrs: element="frames", modality, dim, extractor, columns, config
        data    f4 (rows, dim)   offsets i8 (N + 1,)   rate f8 (N,)
    /curves/<name>/        attrs: element="curve", modality, ...
        data    f4 (rows,)       offsets i8 (N + 1,)   rate f8 (N,)
    /segmentations/<name>/ attrs: element="events" (reserved for ``vmtool segment``)
        data    f8 (events,)     offsets i8 (N + 1,)
    /events/<name>/        (beats, downbeats; same layout as segmentations)
    /embeddings/<name>/    (reserved for ``vmtool embed``)
    /labels/<column>       (schema 1.1) per-item label columns, (N,) float64 or str
    /negatives/video_id, /negatives/music_id   (schema 1.1) known mismatched pairs
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vmtool import __version__
from vmtool.errors import FormatError, ParameterError, VmtoolError

__all__ = [
    "KIND_COLLECTION",
    "SCHEMA_VERSION",
    "RAGGED_GROUPS",
    "Item",
    "Ragged",
    "Collection",
    "CollectionWriter",
    "open_collection",
    "parse_item_ref",
    "read_kind",
    "canonical_json",
    "companion_names",
    "check_self_contained",
    "resolve_source",
    "damaged_file_error",
    "LABELS_GROUP",
    "NEGATIVES_GROUP",
]

KIND_COLLECTION = "collection"
SCHEMA_VERSION = "1.1"  # 1.1: the /labels, /negatives and /metadata tables (docs/format.md)
SUPPORTED_MAJOR = 1

#: top-level groups holding ragged per-item arrays, and their element kind
RAGGED_GROUPS = {
    "features": "frames",
    "curves": "curve",
    "segmentations": "events",
    "events": "events",
    "embeddings": "frames",
}

_ITEM_COLUMNS: dict[str, Any] = {
    "id": "str",
    "source": "str",
    "sha256": "str",
    "duration": np.float64,
    "has_audio": np.bool_,
    "has_video": np.bool_,
    "fps": np.float64,
    "sample_rate": np.int64,
}

#: per-item label columns (schema 1.1): one (N,) dataset per column, float64 (numeric,
#: NaN = no value) or UTF-8 string (categorical, "" = no value)
LABELS_GROUP = "labels"
#: known mismatched (video item, music item) pairs (schema 1.1)
NEGATIVES_GROUP = "negatives"

_ITEM_CHUNK = 1024
_GZIP = {"compression": "gzip", "compression_opts": 4}
_CHUNK_BYTES = 1 << 18  # ~256 KiB per data chunk


def _str_dtype():
    import h5py

    return h5py.string_dtype("utf-8")


@dataclass
class Item:
    """One media file in a collection.

    Attributes
    ----------
    id : str
        Unique name of the item within its collection.
    source : str
        The path of the media file as it was given.
    sha256 : str
        Hex SHA-256 of the file's bytes.
    duration : float
        Seconds.
    has_audio, has_video : bool
        Which modalities the file has.
    fps : float
        Average video frame rate (NaN without video).
    sample_rate : int
        Native audio sample rate (0 without audio).
    """

    id: str
    source: str
    sha256: str
    duration: float
    has_audio: bool
    has_video: bool
    fps: float = math.nan
    sample_rate: int = 0

    @property
    def modalities(self) -> str:
        """``"audio"``, ``"video"``, ``"audio+video"`` or ``"none"``."""
        parts = [m for m, ok in (("audio", self.has_audio), ("video", self.has_video)) if ok]
        return "+".join(parts) or "none"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fps"] = None if not np.isfinite(self.fps) else float(self.fps)
        d["modalities"] = self.modalities
        return d


@dataclass
class RaggedArray:
    """Rows of one item for one ragged element, ready to append.

    ``data`` has shape ``(n, dim)`` for frames, ``(n,)`` for curves and events.
    ``rate`` is in Hz (rows per second); NaN for events.
    """

    data: np.ndarray
    rate: float = math.nan


@dataclass
class ElementSpec:
    """Description of a ragged element (a feature, curve, segmentation...)."""

    group: str
    name: str
    element: str
    dim: int | None
    dtype: Any = np.float32
    attrs: dict[str, Any] = field(default_factory=dict)


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


#: the first eight bytes of every HDF5 file
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_hdf5(path: str | os.PathLike) -> bool:
    """Whether *path* is a readable file that starts with the HDF5 signature (a vmtool
    file, or another HDF5 file), without opening it with h5py."""
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == HDF5_SIGNATURE
    except OSError:
        return False


def read_kind(path: str | os.PathLike) -> tuple[str, str]:
    """Return ``(kind, schema_version)`` of a vmtool file.

    Raises
    ------
    FormatError
        If the file is not HDF5 or has no vmtool attributes.
    VmtoolError
        If the file does not exist.
    """
    import h5py

    p = Path(path)
    if not p.exists():
        raise VmtoolError("no such file", p)
    if p.is_dir():
        raise VmtoolError("is a directory, expected a vmtool file", p)
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise FormatError("not an HDF5 file (or damaged)", p) from exc
    with f:
        return _check_root(f, p, expected_kind=None)


def check_self_contained(f, path: str | os.PathLike) -> None:
    """Refuse an HDF5 file whose content lives, or may live, outside it.

    vmtool files hold only hard links and datasets stored in the file itself (see
    ``docs/format.md``). An external link, a soft link, a virtual dataset or a dataset
    with external storage would make a reader open other files, or read zeros where a
    mapped file is missing; an untrusted file is refused before anything is read.

    Raises
    ------
    FormatError
        Naming the first such link or dataset.
    """
    import h5py

    def problem(name: str, link) -> str | None:  # a non-None return stops the walk
        if isinstance(link, h5py.ExternalLink):
            return (f"'{name}' is an external link (to {link.filename}:{link.path}); vmtool files are "
                    "self-contained and external links are refused")
        if isinstance(link, h5py.SoftLink):
            return f"'{name}' is a soft link (to {link.path}); vmtool files hold no links"
        try:
            obj = f.get(name)
        except Exception as exc:  # raising inside the walk would become a SystemError
            return f"is damaged: object '{name}' cannot be read ({_first_line(exc)})"
        if isinstance(obj, h5py.Dataset):
            if obj.is_virtual:
                return (f"dataset '{name}' is a virtual dataset (mapped from other files); vmtool files are "
                        "self-contained and virtual datasets are refused")
            if obj.external:
                return (f"dataset '{name}' keeps its data in external files; vmtool files are self-contained "
                        "and external storage is refused")
        return None

    try:
        found = f.visititems_links(problem)
    except Exception as exc:  # a damaged link table or heap
        raise FormatError(f"is damaged: its groups cannot be read ({_first_line(exc)})", path) from None
    if found is not None:
        raise FormatError(found, path)


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, SystemError) and (exc.__cause__ or exc.__context__):  # raised inside an h5py callback
        exc = exc.__cause__ or exc.__context__
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def damaged_file_error(exc: BaseException) -> FormatError | None:
    """The :class:`FormatError` for *exc* when h5py raised it reading a damaged file, else None.

    A flipped byte in a chunk or in HDF5's own metadata surfaces wherever the data is
    read (a failed decompression filter, an undecodable string, a bad object header):
    as OSError, RuntimeError, KeyError, ValueError or UnicodeError from inside h5py.
    The file and dataset are taken from the h5py object being read when the error
    was raised.
    """
    if not isinstance(exc, (OSError, RuntimeError, SystemError, KeyError, ValueError, TypeError, UnicodeError,
                            IndexError)):
        return None
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    if not any(f"{os.sep}h5py{os.sep}" in fr.f_code.co_filename for fr in frames):
        return None
    path, dataset = None, None
    for fr in reversed(frames):  # innermost first
        for v in list(fr.f_locals.values()):
            obj = getattr(v, "_dset", v)
            if dataset is None and type(obj).__module__.startswith("h5py"):
                try:
                    dataset = obj.name
                    path = path or obj.file.filename
                except Exception:  # closed since: the file is found below
                    pass
        if path is None and f"{os.sep}vmtool{os.sep}" in fr.f_code.co_filename:
            path = _path_in(fr.f_locals)
    reason = _first_line(exc)
    what = f"reading '{dataset.lstrip('/')}'" if dataset and dataset != "/" else "reading it"
    if path is None:
        return FormatError(f"a vmtool file is damaged: {what} failed ({reason})")
    return FormatError(f"is damaged: {what} failed ({reason})", path)


def _path_in(local_vars: dict[str, Any]) -> str | None:
    """The vmtool file a library frame was reading (for :func:`damaged_file_error`)."""
    me = local_vars.get("self")
    for attr in ("_display", "path", "_path"):
        v = getattr(me, attr, None)
        if isinstance(v, (str, Path)) and Path(v).is_file():
            return str(v)
    for v in local_vars.values():
        if isinstance(v, Path) and v.is_file():
            return str(v)
    return None


def _check_root(f, path: Path, expected_kind: str | None) -> tuple[str, str]:
    if "vmtool_kind" not in f.attrs:
        raise FormatError("not a vmtool file: root attribute 'vmtool_kind' is missing", path)
    kind = str(_decode(f.attrs["vmtool_kind"]))
    if "vmtool_schema" not in f.attrs:
        raise FormatError("root attribute 'vmtool_schema' is missing", path)
    version = str(_decode(f.attrs["vmtool_schema"]))
    if expected_kind is not None and kind != expected_kind:
        raise FormatError(
            f"is a vmtool {kind!r} file, expected a {expected_kind!r} file (attribute 'vmtool_kind')", path
        )
    try:
        major = int(version.split(".")[0])
    except ValueError as exc:
        raise FormatError(f"attribute 'vmtool_schema' has an invalid value {version!r}", path) from exc
    if major > SUPPORTED_MAJOR or major < 1:
        raise FormatError(
            f"schema version {version} (attribute 'vmtool_schema') is not readable by vmtool "
            f"{__version__}, which reads {SUPPORTED_MAJOR}.x",
            path,
        )
    check_self_contained(f, path)
    return kind, version


class Ragged:
    """Read access to one ragged element (``features/<name>`` and the like).

    Reading one item's rows touches only the chunks that hold them.
    """

    def __init__(self, group, path: Path, n_items: int):
        self._group = group
        self._path = path
        self.name = group.name.split("/")[-1]
        key = group.name.lstrip("/")
        for ds in ("data", "offsets"):
            if ds not in group:
                raise FormatError(f"dataset '{key}/{ds}' is missing", path)
        self.offsets = np.asarray(group["offsets"][()], dtype=np.int64)
        if self.offsets.shape != (n_items + 1,):
            raise FormatError(
                f"dataset '{key}/offsets' has {self.offsets.shape[0]} entries for {n_items} items "
                f"(expected {n_items + 1})",
                path,
            )
        if self.offsets[0] != 0 or np.any(np.diff(self.offsets) < 0) or self.offsets[-1] != group["data"].shape[0]:
            raise FormatError(f"dataset '{key}/offsets' is inconsistent with '{key}/data'", path)
        if "rate" in group:
            self.rates = np.asarray(group["rate"][()], dtype=np.float64)
            if self.rates.shape != (n_items,):
                raise FormatError(f"dataset '{key}/rate' has the wrong length", path)
        else:
            self.rates = np.full(n_items, np.nan)
        if "present" in group and group["present"].shape != (n_items,):
            raise FormatError(f"dataset '{key}/present' has {group['present'].shape[0]} entries for {n_items} items",
                              path)
        for comp in companion_names(group):
            ds = f"{comp}_offsets"
            if group[ds].shape != (n_items + 1,):
                raise FormatError(f"dataset '{key}/{ds}' has {group[ds].shape[0]} entries for {n_items} items "
                                  f"(expected {n_items + 1})", path)
        self.attrs = {k: _decode(v) for k, v in group.attrs.items()}
        for k in ("columns", "config"):
            if isinstance(self.attrs.get(k), str):
                try:
                    self.attrs[k] = json.loads(self.attrs[k])
                except json.JSONDecodeError as exc:
                    raise FormatError(f"attribute '{key}' {k!r} is not valid JSON", path) from exc

    @property
    def element(self) -> str:
        return str(self.attrs.get("element", ""))

    @property
    def modality(self) -> str | None:
        return self.attrs.get("modality")

    @property
    def dim(self) -> int | None:
        shape = self._group["data"].shape
        return int(shape[1]) if len(shape) == 2 else None

    @property
    def n_rows(self) -> int:
        return int(self.offsets[-1])

    def rate_summary(self) -> float | None | str:
        """The common rate in Hz, ``"per-item"`` when it varies, None when undefined."""
        present = self.rates[(np.diff(self.offsets) > 0) & np.isfinite(self.rates)]
        if present.size == 0:
            return None
        if np.allclose(present, present[0]):
            return float(present[0])
        return "per-item"

    def rows(self, index: int) -> np.ndarray:
        """The rows of item *index* (an empty array when the item lacks this element)."""
        lo, hi = int(self.offsets[index]), int(self.offsets[index + 1])
        return self._group["data"][lo:hi]

    def rate(self, index: int) -> float:
        return float(self.rates[index])

    def present(self, index: int) -> bool:
        """Whether item *index* has this element (zero rows may be a valid result)."""
        if "present" in self._group:
            return bool(self._group["present"][index])
        return bool(self.offsets[index + 1] > self.offsets[index])

    def companion(self, key: str, index: int) -> np.ndarray | None:
        """Item *index*'s rows of the companion dataset *key* (e.g. ``labels``), or None."""
        if key not in self._group or f"{key}_offsets" not in self._group:
            return None
        off = self._group[f"{key}_offsets"]
        lo, hi = int(off[index]), int(off[index + 1])
        return self._group[key][lo:hi]

    def __len__(self) -> int:
        return len(self.offsets) - 1


class Collection:
    """A vmtool collection file opened for reading.

    Use as a context manager::

        with vmtool.store.open_collection("catalog.h5") as col:
            X = col.feature("handcrafted").rows(col.index("song"))
    """

    def __init__(self, path: str | os.PathLike, _file=None):
        import h5py

        self.path = Path(path)
        if _file is None:
            read_kind(self.path)  # existence, HDF5, vmtool attributes
            _file = h5py.File(self.path, "r")
        self._f = _file
        try:
            _check_root(self._f, self.path, KIND_COLLECTION)
            self._load_items()
        except Exception:
            self._f.close()
            raise

    # -- items ---------------------------------------------------------------------------
    def _load_items(self) -> None:
        if "items" not in self._f:
            raise FormatError("group 'items' is missing", self.path)
        g = self._f["items"]
        cols: dict[str, np.ndarray] = {}
        n = None
        for name in _ITEM_COLUMNS:
            if name not in g:
                raise FormatError(f"dataset 'items/{name}' is missing", self.path)
            ds = g[name]
            if ds.dtype.kind in "OS":
                # asstr() decodes to str objects already: no per-item pass (a million ids: 0.2 s each column)
                arr = np.asarray(ds.asstr()[()], dtype=object) if len(ds) else np.array([], dtype=object)
            else:
                arr = ds[()]
            if n is None:
                n = len(arr)
            elif len(arr) != n:
                raise FormatError(f"dataset 'items/{name}' has {len(arr)} entries, expected {n}", self.path)
            cols[name] = arr
        self._items = cols
        self._n = int(n or 0)
        self._index = {str(i): k for k, i in enumerate(cols["id"])}
        if len(self._index) != self._n:
            raise FormatError("dataset 'items/id' holds duplicate ids", self.path)

    def __len__(self) -> int:
        return self._n

    @property
    def ids(self) -> list[str]:
        return [str(x) for x in self._items["id"]]

    @property
    def sha256s(self) -> list[str]:
        return [str(x) for x in self._items["sha256"]]

    def column(self, name: str) -> np.ndarray:
        """One item column (``id``, ``source``, ``sha256``, ``duration``...)."""
        if name not in self._items:
            raise ParameterError(f"no item column {name!r}; columns: {', '.join(self._items)}")
        return self._items[name]

    def item(self, index: int) -> Item:
        c = self._items
        return Item(
            id=str(c["id"][index]),
            source=str(c["source"][index]),
            sha256=str(c["sha256"][index]),
            duration=float(c["duration"][index]),
            has_audio=bool(c["has_audio"][index]),
            has_video=bool(c["has_video"][index]),
            fps=float(c["fps"][index]),
            sample_rate=int(c["sample_rate"][index]),
        )

    def items(self) -> list[Item]:
        return [self.item(i) for i in range(self._n)]

    def metadata(self):
        """The per-item track metadata (``/metadata``), see :mod:`vmtool.metadata`."""
        from vmtool.metadata import read_metadata

        cache = self.__dict__
        if "_metadata" not in cache:
            cache["_metadata"] = read_metadata(self._f, self._n, self.path)
        return cache["_metadata"]

    def index(self, item_id: str) -> int:
        try:
            return self._index[item_id]
        except KeyError:
            raise ParameterError(f"no item {item_id!r} in the collection", self.path) from None

    # -- attributes ----------------------------------------------------------------------
    @property
    def attrs(self) -> dict[str, Any]:
        out = {k: _decode(v) for k, v in self._f.attrs.items()}
        for k in ("config", "history"):
            if isinstance(out.get(k), str):
                try:
                    out[k] = json.loads(out[k])
                except json.JSONDecodeError as exc:
                    raise FormatError(f"root attribute {k!r} is not valid JSON", self.path) from exc
        return out

    @property
    def schema_version(self) -> str:
        return str(_decode(self._f.attrs["vmtool_schema"]))

    @property
    def config(self) -> dict[str, Any]:
        """The extraction configuration the items were processed with."""
        return self.attrs.get("config") or {}

    # -- labels ----------------------------------------------------------------------------
    def label_names(self) -> list[str]:
        """Names of the per-item label columns (``/labels``), sorted; empty before schema 1.1."""
        return sorted(self._f[LABELS_GROUP].keys()) if LABELS_GROUP in self._f else []

    def label_kind(self, name: str) -> str:
        """``numeric`` or ``categorical``."""
        return "numeric" if self._label_ds(name).dtype.kind == "f" else "categorical"

    def _label_ds(self, name: str):
        if name not in self.label_names():
            have = ", ".join(self.label_names()) or "none"
            raise ParameterError(f"no label column {name!r} (label columns: {have}; add them with "
                                 f"'vmtool label FILE.h5 --labels FILE.csv')", self.path)
        ds = self._f[LABELS_GROUP][name]
        if ds.shape != (self._n,):
            raise FormatError(f"dataset '{LABELS_GROUP}/{name}' has {ds.shape[0] if ds.shape else 0} entries "
                              f"for {self._n} items", self.path)
        return ds

    def label(self, name: str) -> np.ndarray:
        """Label column *name*, one entry per item: float64 (NaN: no value) or str objects ("": no value).

        Raises
        ------
        ParameterError
            The file has no such column (the message names the file and the column).
        """
        ds = self._label_ds(name)
        if ds.dtype.kind == "f":
            return np.asarray(ds[()], dtype=np.float64)
        return np.array([str(v) for v in ds.asstr()[()]], dtype=object) if self._n else np.array([], dtype=object)

    def negatives(self) -> list[tuple[str, str]]:
        """Known mismatched pairs ``(video item id, music item id)`` (``/negatives``)."""
        if NEGATIVES_GROUP not in self._f:
            return []
        g = self._f[NEGATIVES_GROUP]
        for key in ("video_id", "music_id"):
            if key not in g:
                raise FormatError(f"dataset '{NEGATIVES_GROUP}/{key}' is missing", self.path)
        v = [str(x) for x in g["video_id"].asstr()[()]] if len(g["video_id"]) else []
        m = [str(x) for x in g["music_id"].asstr()[()]] if len(g["music_id"]) else []
        if len(v) != len(m):
            raise FormatError(f"datasets '{NEGATIVES_GROUP}/video_id' and 'music_id' differ in length", self.path)
        return list(zip(v, m))

    # -- ragged elements ------------------------------------------------------------------
    def names(self, group: str) -> list[str]:
        """Names of the elements stored under *group* (``features``, ``curves``...)."""
        if group not in RAGGED_GROUPS:
            raise ParameterError(f"unknown group {group!r}; groups: {', '.join(RAGGED_GROUPS)}")
        return sorted(self._f[group].keys()) if group in self._f else []

    def ragged(self, group: str, name: str) -> Ragged:
        """Read access to ``group/name`` (built once per open collection: it reads the offsets)."""
        cache = self.__dict__.setdefault("_ragged_cache", {})
        key = (group, name)
        if key not in cache:
            if name not in self.names(group):
                have = ", ".join(self.names(group)) or "none"
                raise ParameterError(f"no {group[:-1] if group.endswith('s') else group} {name!r} (have: {have})",
                                     self.path)
            cache[key] = Ragged(self._f[group][name], self.path, self._n)
        return cache[key]

    def feature(self, name: str) -> Ragged:
        """The frame-level feature matrix *name*."""
        return self.ragged("features", name)

    def curve(self, name: str) -> Ragged:
        return self.ragged("curves", name)

    def validate(self) -> None:
        """Check every ragged element's consistency (raises FormatError)."""
        for group in RAGGED_GROUPS:
            for name in self.names(group):
                self.ragged(group, name)

    # -- context manager -------------------------------------------------------------------
    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_collection(path: str | os.PathLike) -> Collection:
    """Open a vmtool collection file for reading, checking its kind and version."""
    return Collection(path)


def parse_item_ref(text: str | os.PathLike) -> tuple[Path, str] | None:
    """``(file, item id)`` for ``file.h5#item-id``, or None when *text* names a plain file.

    A path that exists as a file is never split, even if it contains ``#``.
    """
    s = os.fspath(text)
    if "#" not in s or Path(s).is_file():
        return None
    path, _, item = s.rpartition("#")
    if not path or not item:
        return None
    return Path(path), item


class CollectionWriter:
    """Append items to a collection file opened for writing.

    Normally used on the temporary path given by :func:`vmtool.atomic.atomic_output`;
    the writer itself does no renaming. Items are buffered and flushed in batches.

    Parameters
    ----------
    path : path
        File to write. If it exists it must be a collection and is appended to.
    config : dict, optional
        The extraction configuration (stored as JSON in the root attribute ``config``).
        When appending, it must equal the stored one.
    command : str, optional
        The command line, recorded in ``command`` (new file) and ``history``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        config: Mapping[str, Any] | None = None,
        command: str = "",
        flush_items: int = 64,
        display_path: str | os.PathLike | None = None,
    ):
        import h5py

        self.path = Path(path)
        self._display = Path(display_path) if display_path is not None else self.path
        self._flush_items = max(1, int(flush_items))
        exists = self.path.exists() and self.path.stat().st_size > 0
        try:
            self._f = h5py.File(self.path, "r+" if exists else "w")
        except OSError as exc:
            if not exists:
                raise  # creating a file failed (a full disk...): not a format error
            raise FormatError("cannot open as HDF5 for writing", self._display) from exc
        self._pending: list[tuple[Item, dict[tuple[str, str], RaggedArray]]] = []
        self._pending_meta: list[Mapping[str, Any] | None] = []  # track metadata, one per pending item
        self._specs: dict[tuple[str, str], ElementSpec] = {}
        try:
            if exists:
                _check_root(self._f, self._display, KIND_COLLECTION)
                stored = json.loads(_decode(self._f.attrs.get("config", "{}")) or "{}")
                if config is not None and stored and canonical_json(stored) != canonical_json(config):
                    raise ParameterError(
                        "was written with a different extraction configuration; "
                        "use a new output file or the same options",
                        self._display,
                    )
                history = json.loads(_decode(self._f.attrs.get("history", "[]")) or "[]")
                history.append({"time": _now(), "command": command, "vmtool_version": __version__})
                self._f.attrs["history"] = json.dumps(history)
                self._ids = set(Collection(self._display, _file=_NoClose(self._f)).ids)
            else:
                self._init_file(config or {}, command)
                self._ids = set()
        except BaseException:
            self._f.close()
            raise

    def _init_file(self, config: Mapping[str, Any], command: str) -> None:
        f = self._f
        f.attrs["vmtool_kind"] = KIND_COLLECTION
        f.attrs["vmtool_schema"] = SCHEMA_VERSION
        f.attrs["vmtool_version"] = __version__
        f.attrs["created"] = _now()
        f.attrs["command"] = command
        f.attrs["config"] = json.dumps(config, sort_keys=True)
        f.attrs["history"] = json.dumps([{"time": _now(), "command": command, "vmtool_version": __version__}])
        g = f.create_group("items")
        for name, dtype in _ITEM_COLUMNS.items():
            dt = _str_dtype() if dtype == "str" else dtype
            g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dt, chunks=(_ITEM_CHUNK,), **_GZIP)

    @property
    def n_items(self) -> int:
        return int(self._f["items/id"].shape[0]) + len(self._pending)

    def has_id(self, item_id: str) -> bool:
        return item_id in self._ids

    def sha256s(self) -> set[str]:
        ds = self._f["items/sha256"]
        stored = set(ds.asstr()[()]) if len(ds) else set()
        return stored | {it.sha256 for it, _ in self._pending}

    def declare(
        self,
        group: str,
        name: str,
        *,
        dim: int | None,
        dtype: Any = np.float32,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        """Declare a ragged element before adding rows to it.

        *dim* is the row width for ``frames`` elements, None for 1-d curves/events.
        Declaring an element that exists checks that its width matches.
        """
        if group not in RAGGED_GROUPS:
            raise ParameterError(f"unknown group {group!r}")
        element = RAGGED_GROUPS[group]
        spec = ElementSpec(group, name, element, dim, dtype, dict(attrs or {}))
        key = (group, name)
        if group in self._f and name in self._f[group]:
            g = self._f[group][name]
            have = g["data"].shape[1] if g["data"].ndim == 2 else None
            if have != dim:
                raise FormatError(f"'{group}/{name}' has width {have}, new rows have {dim}", self._display)
        else:
            self._create_element(spec)
        self._specs[key] = spec

    def _create_element(self, spec: ElementSpec) -> None:
        g = self._f.require_group(spec.group).create_group(spec.name)
        n = int(self._f["items/id"].shape[0])
        if spec.dim is None:
            shape, maxshape = (0,), (None,)
            chunks = (max(1024, _CHUNK_BYTES // np.dtype(spec.dtype).itemsize),)
        else:
            shape, maxshape = (0, spec.dim), (None, spec.dim)
            chunks = (max(1, min(4096, _CHUNK_BYTES // (np.dtype(spec.dtype).itemsize * max(spec.dim, 1)))), spec.dim)
        g.create_dataset("data", shape=shape, maxshape=maxshape, dtype=spec.dtype, chunks=chunks, shuffle=True, **_GZIP)
        # existing items have no rows of a new element
        g.create_dataset("offsets", data=np.zeros(n + 1, dtype=np.int64), maxshape=(None,), chunks=(_ITEM_CHUNK,), **_GZIP)
        g.create_dataset("rate", data=np.full(n, np.nan), maxshape=(None,), chunks=(_ITEM_CHUNK,), **_GZIP)
        g.attrs["element"] = spec.element
        for k, v in spec.attrs.items():
            g.attrs[k] = json.dumps(v) if isinstance(v, (dict, list, tuple)) else ("" if v is None else v)

    def add(self, item: Item, arrays: Mapping[tuple[str, str], RaggedArray],
            metadata: Mapping[str, Any] | None = None) -> None:
        """Queue *item* with its ragged arrays keyed by ``(group, name)``.

        Elements not given get zero rows for this item. *metadata* holds its track
        metadata fields (tags and ``measured_*`` values, see :mod:`vmtool.metadata`).
        """
        if item.id in self._ids:
            raise ParameterError(f"an item with id {item.id!r} is already in the collection", self._display)
        for key, arr in arrays.items():
            if key not in self._specs:
                raise ParameterError(f"element {key[0]}/{key[1]} was not declared")
            spec = self._specs[key]
            a = np.asarray(arr.data)
            want_ndim = 1 if spec.dim is None else 2
            if a.ndim != want_ndim or (spec.dim is not None and a.shape[1] != spec.dim):
                raise ParameterError(
                    f"rows for {key[0]}/{key[1]} have shape {a.shape}, expected (n, {spec.dim})"
                    if spec.dim is not None
                    else f"rows for {key[0]}/{key[1]} have shape {a.shape}, expected (n,)"
                )
        self._ids.add(item.id)
        self._pending.append((item, dict(arrays)))
        self._pending_meta.append(dict(metadata) if metadata else None)
        if len(self._pending) >= self._flush_items:
            self.flush()

    def flush(self) -> None:
        """Write the queued items."""
        if not self._pending:
            return
        f = self._f
        g = f["items"]
        n0 = int(g["id"].shape[0])
        k = len(self._pending)
        items = [it for it, _ in self._pending]
        for name in _ITEM_COLUMNS:
            ds = g[name]
            ds.resize((n0 + k,))
            vals = [getattr(it, name) for it in items]
            ds[n0:] = np.asarray(vals, dtype=object if _ITEM_COLUMNS[name] == "str" else _ITEM_COLUMNS[name])
        if LABELS_GROUP in f:  # label columns grow too: the new items have no value
            for ds in f[LABELS_GROUP].values():
                ds.resize((n0 + k,))
                ds[n0:] = np.full(k, np.nan) if ds.dtype.kind == "f" else np.asarray([""] * k, dtype=object)
        # every existing ragged element grows by k items, with or without rows
        for group in RAGGED_GROUPS:
            if group not in f:
                continue
            for name in f[group]:
                eg = f[group][name]
                chunks = [arrs.get((group, name)) for _, arrs in self._pending]
                counts = [0 if c is None else len(c.data) for c in chunks]
                rates = [np.nan if c is None else c.rate for c in chunks]
                off = eg["offsets"]
                start = int(off[n0])
                new_off = start + np.cumsum(counts, dtype=np.int64)
                off.resize((n0 + k + 1,))
                off[n0 + 1:] = new_off
                rate = eg["rate"]
                rate.resize((n0 + k,))
                rate[n0:] = np.asarray(rates, dtype=np.float64)
                if "present" in eg:  # computed or not, per item: the new items have rows or not
                    pres = eg["present"]
                    pres.resize((n0 + k,))
                    pres[n0:] = np.asarray(counts, dtype=np.int64) > 0
                for comp in companion_names(eg):  # labels, spans...: no rows for the new items
                    coff = eg[f"{comp}_offsets"]
                    last = int(coff[coff.shape[0] - 1]) if coff.shape[0] else 0
                    coff.resize((n0 + k + 1,))
                    coff[n0 + 1:] = last
                total = int(new_off[-1]) if k else start
                if total > start:
                    data = eg["data"]
                    rows = np.concatenate([c.data for c in chunks if c is not None and len(c.data)], axis=0)
                    data.resize((total,) + data.shape[1:])
                    data[start:total] = rows.astype(data.dtype, copy=False)
        from vmtool.metadata import append_rows

        append_rows(f, n0, self._pending_meta)
        self._pending.clear()
        self._pending_meta.clear()
        f.flush()

    def write_element(
        self,
        group: str,
        name: str,
        rows: Sequence[np.ndarray | None],
        *,
        rates: Sequence[float] | None = None,
        dim: int | None = None,
        dtype: Any = np.float32,
        attrs: Mapping[str, Any] | None = None,
        replace: bool = False,
        present: Sequence[bool] | None = None,
        companions: Mapping[str, Sequence[np.ndarray | None]] | None = None,
    ) -> None:
        """Write a whole ragged element for the items already in the file.

        *present* (one bool per item) is stored as the dataset ``present`` when zero rows
        is a valid result (a segmentation without boundaries), to tell it from "not
        computed". Each *companions* entry ``key -> rows per item`` is stored as datasets
        ``key`` and ``key_offsets`` in the same group (e.g. segment labels).

        Used by commands that add per-item results to an existing collection (for
        example ``vmtool segment``). *rows* has one entry per stored item (None: no rows).

        Raises
        ------
        ParameterError
            Wrong number of entries, or the element exists and *replace* is False.
        """
        self.flush()
        n = int(self._f["items/id"].shape[0])
        if len(rows) != n:
            raise ParameterError(f"{group}/{name}: {len(rows)} row sets for {n} items")
        if group not in RAGGED_GROUPS:
            raise ParameterError(f"unknown group {group!r}")
        if group in self._f and name in self._f[group]:
            if not replace:
                raise ParameterError(f"'{group}/{name}' already exists", self._display)
            del self._f[group][name]
        self._specs.pop((group, name), None)
        spec = ElementSpec(group, name, RAGGED_GROUPS[group], dim, dtype, dict(attrs or {}))
        self._create_element(spec)  # sized for the n stored items, without rows
        eg = self._f[group][name]
        counts = np.array([0 if r is None else len(r) for r in rows], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        eg["offsets"][:] = offsets
        eg["rate"][:] = np.asarray(rates if rates is not None else [np.nan] * n, dtype=np.float64)
        if offsets[-1]:
            data = np.concatenate([np.asarray(r) for r in rows if r is not None and len(r)], axis=0)
            want = (int(offsets[-1]),) if dim is None else (int(offsets[-1]), dim)
            if data.shape != want:
                raise ParameterError(f"{group}/{name}: rows have shape {data.shape[1:]}, expected {want[1:]}")
            eg["data"].resize(want)
            eg["data"][:] = data.astype(eg["data"].dtype, copy=False)
        if present is not None:
            if len(present) != n:
                raise ParameterError(f"{group}/{name}: {len(present)} 'present' flags for {n} items")
            eg.create_dataset("present", data=np.asarray(present, dtype=bool), maxshape=(None,),
                              chunks=(_ITEM_CHUNK,), **_GZIP)
        for key, crow in (companions or {}).items():
            if len(crow) != n:
                raise ParameterError(f"{group}/{name}/{key}: {len(crow)} row sets for {n} items")
            ccounts = np.array([0 if r is None else len(r) for r in crow], dtype=np.int64)
            parts = [np.asarray(r) for r in crow if r is not None and len(r)]
            cdata = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            eg.create_dataset(key, data=cdata, maxshape=(None,) + cdata.shape[1:],
                              chunks=(max(1024, len(cdata)),) + cdata.shape[1:], **_GZIP)
            eg.create_dataset(f"{key}_offsets", data=np.concatenate([[0], np.cumsum(ccounts)]).astype(np.int64),
                              maxshape=(None,), chunks=(_ITEM_CHUNK,), **_GZIP)
        self._specs[(group, name)] = spec

    def write_labels(self, columns: Mapping[str, np.ndarray], *, attrs: Mapping[str, Any] | None = None) -> None:
        """Write (or replace) per-item label columns for the items already in the file.

        Each value of *columns* has one entry per stored item: a float array (NaN: no
        value) makes a numeric column, anything else a categorical (string) column
        ("": no value). Columns not named are kept.
        """
        self.flush()
        n = int(self._f["items/id"].shape[0])
        self._f.attrs["vmtool_schema"] = SCHEMA_VERSION  # labels are a 1.1 element
        g = self._f.require_group(LABELS_GROUP)
        g.attrs["element"] = "table"
        for name, values in columns.items():
            if not name or "/" in name:
                raise ParameterError(f"label column name {name!r} is not usable (non-empty, without '/')")
            arr = np.asarray(values)
            if arr.shape != (n,):
                raise ParameterError(f"label column {name!r}: {arr.shape[0] if arr.ndim else 0} values for {n} items")
            if name in g:
                del g[name]
            if arr.dtype.kind == "f":
                ds = g.create_dataset(name, data=arr.astype(np.float64), maxshape=(None,), chunks=(_ITEM_CHUNK,), **_GZIP)
                ds.attrs["kind"] = "numeric"
            else:
                ds = g.create_dataset(name, data=np.asarray([str(v) for v in arr], dtype=object), dtype=_str_dtype(),
                                      maxshape=(None,), chunks=(_ITEM_CHUNK,), **_GZIP)
                ds.attrs["kind"] = "categorical"
            for k, v in (attrs or {}).items():
                ds.attrs[k] = v

    def write_negatives(self, pairs: Sequence[tuple[str, str]], *, attrs: Mapping[str, Any] | None = None) -> None:
        """Write (replace) the known mismatched ``(video item id, music item id)`` pairs."""
        self.flush()
        if NEGATIVES_GROUP in self._f:
            del self._f[NEGATIVES_GROUP]
        self._f.attrs["vmtool_schema"] = SCHEMA_VERSION
        g = self._f.create_group(NEGATIVES_GROUP)
        g.attrs["element"] = "pairs"
        for k, v in (attrs or {}).items():
            g.attrs[k] = v
        for j, key in enumerate(("video_id", "music_id")):
            g.create_dataset(key, data=np.asarray([p[j] for p in pairs], dtype=object), dtype=_str_dtype(),
                             maxshape=(None,), chunks=(_ITEM_CHUNK,), **_GZIP)

    def set_attr(self, key: str, value: Any) -> None:
        self._f.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value

    def close(self) -> None:
        if self._f.id.valid:
            try:
                self.flush()
                # everything written before the close: HDF5 cannot recover from a close that
                # fails (a full disk), and crashes the process when it exits
                self._f.flush()
            except BaseException as exc:
                self.abort(exc)
                raise
            self._f.close()

    def abort(self, exc: BaseException | None = None) -> None:
        """Close without flushing pending items (the caller discards the file).

        Nothing more is written (see :func:`discard_h5`): after a failed write (a full
        disk; h5py raises OSError or RuntimeError) HDF5's own close would write again.
        *exc* is the exception that ended the writing, if any (for the record only).
        """
        self._pending.clear()
        self._pending_meta.clear()
        if self._f.id.valid:
            discard_h5(self._f)

    def __enter__(self) -> CollectionWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort(exc)


def discard_h5(f) -> None:
    """Close h5py file *f*, which is being discarded, without writing to it again.

    When a write fails for lack of space, HDF5's own close writes again, fails, and
    leaves the library in a state that crashes the process at exit (a segmentation
    fault, exit code 139). The file's descriptor is pointed at ``/dev/null`` first, so
    the close writes nowhere and succeeds; the (temporary) file is then deleted by the
    caller.
    """
    with contextlib.suppress(Exception):
        fd = f.id.get_vfd_handle()
        nul = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(nul, fd)
        finally:
            os.close(nul)
    with contextlib.suppress(Exception):
        f.close()


@contextlib.contextmanager
def update_h5(path: str | os.PathLike) -> Iterator[Any]:
    """Open a temporary HDF5 file for update (``r+``); on any exception its handle is
    discarded without writing (see :func:`discard_h5`) and the caller deletes the file."""
    import h5py

    f = h5py.File(path, "r+")
    try:
        yield f
        f.flush()
    except BaseException:
        discard_h5(f)  # the caller discards the (temporary) file
        raise
    f.close()


class _NoClose:
    """Wrap an open h5py File so that a Collection built on it does not close it."""

    def __init__(self, f):
        self._f = f

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __contains__(self, key):
        return key in self._f

    def __getitem__(self, key):
        return self._f[key]

    def close(self):
        pass


def canonical_json(value: Any) -> str:
    """*value* as JSON with sorted keys: equal strings mean equal configurations."""
    return json.dumps(value, sort_keys=True, default=str)


def companion_names(group) -> list[str]:
    """The companion datasets of a ragged element (``key`` with ``key_offsets``), by name."""
    return sorted(k[: -len("_offsets")] for k in group if k.endswith("_offsets") and k[: -len("_offsets")] in group)


def resolve_source(source: str, collection: str | os.PathLike) -> Path:
    """The media file of an item's *source* path, as stored in *collection*.

    An absolute path is taken as it is. A relative one was given relative to the
    directory the collection was made from, which is usually the collection's own
    directory (``extract *.mp4 -o catalog.h5``): it is looked up there first, then in
    the current directory; when neither exists, the collection-relative path is
    returned (for the error message).
    """
    p = Path(source)
    if p.is_absolute():
        return p
    beside = Path(collection).parent / p
    if beside.exists() or not p.exists():
        return beside
    return p


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def sha256_file(path: str | os.PathLike, *, block: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def unique_ids(stems: Sequence[str], shas: Sequence[str], taken: Iterable[str] = ()) -> list[str]:
    """Item ids from file stems: the stem, or ``stem-<sha8>`` when the stem is taken."""
    used = set(taken)
    out = []
    for stem, sha in zip(stems, shas):
        cand = stem
        if cand in used:
            cand = f"{stem}-{sha[:8]}"
        k = 2
        base = cand
        while cand in used:
            cand = f"{base}-{k}"
            k += 1
        used.add(cand)
        out.append(cand)
    return out
