"""Precomputed feature arrays in NPY, NPZ, HDF5 or CSV files, read into per-item rows.

An input is named ``PATH`` or ``PATH:KEY`` (KEY: an NPZ key or an HDF5 dataset/group
path). The file type is recognised from its first bytes, not its name. What is read:

* **one array** -- ``(N, dim)``: clip level, one row per item; ``(rows, dim)`` with
  offsets ``(N + 1,)``: frame level, item ``i`` is ``rows[offsets[i]:offsets[i+1]]``;
  ``(N, frames, dim)``: frame level, the same number of frames per item. Offsets come
  from an explicit file or from an NPZ key / HDF5 sibling dataset named
  ``<KEY>_offsets`` or ``offsets``; ids likewise from ``<KEY>_ids`` or ``ids``.
* **one array per item** -- an NPZ file or HDF5 group with several arrays: the id is
  the key; 1-D arrays are clip-level vectors, 2-D arrays frame-level matrices.
  An NPZ file or HDF5 group with a single array (besides ``ids``/``offsets``) is read
  as one array.
* **CSV** (comma, semicolon, tab or whitespace separated; ``#`` comments): one row per
  line, an optional header line; a header column named ``id`` gives each row's item
  id, and consecutive rows with the same id are the frames of one item.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vmtool.errors import FormatError, ParameterError, VmtoolError

__all__ = ["ModalityData", "read_modality", "split_spec", "sniff", "read_ids_file", "read_offsets"]

RESERVED = ("ids", "offsets")
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


@dataclass
class ModalityData:
    """The items of one modality, as read from one input.

    Attributes
    ----------
    modality : str
        ``"audio"`` or ``"video"``.
    path : str
        The file as given.
    fmt : str
        ``npy``, ``npz``, ``hdf5`` or ``csv``.
    key : str or None
        The array read inside an NPZ/HDF5 file (the group, for per-item arrays).
    layout : str
        ``array`` (one array for all items) or ``per-item`` (one array per item).
    level : str
        ``clip`` (one row per item) or ``frame`` (rows on a time grid).
    rows : list of np.ndarray [shape=(n_i, dim), dtype=float32]
        Item after item.
    ids : list of str or None
        One per item, when the input has ids.
    sources : list of str
        ``path#index`` or ``path#key`` per item.
    columns : list of str or None
        Column names (CSV header).
    """

    modality: str
    path: str
    fmt: str
    key: str | None
    layout: str
    level: str
    rows: list[np.ndarray]
    ids: list[str] | None
    sources: list[str]
    columns: list[str] | None = None
    ids_from: str | None = None
    offsets_from: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.rows[0].shape[1])

    def __len__(self) -> int:
        return len(self.rows)

    def config(self) -> dict[str, Any]:
        """What was read, for the ``config`` attributes."""
        return {"source": self.path, "format": self.fmt, "key": self.key, "layout": self.layout,
                "level": self.level, "ids": self.ids_from, "offsets": self.offsets_from, **self.extra}


# --- names and file types ---------------------------------------------------------------------


def split_spec(spec: str | os.PathLike) -> tuple[Path, str | None]:
    """``PATH[:KEY]`` -> ``(path, key)``; the longest existing prefix is the path.

    Raises
    ------
    VmtoolError
        No prefix of *spec* is an existing file.
    """
    s = os.fspath(spec)
    if os.path.exists(s):
        return Path(s), None
    for i, c in enumerate(s):
        if c == ":" and i and os.path.isfile(s[:i]):
            return Path(s[:i]), s[i + 1:]
    raise VmtoolError("no such file", s)


def sniff(path: Path) -> str:
    """``npy``, ``npz``, ``hdf5``, ``tfrecord`` or ``csv`` (text), from the file's first bytes.

    Raises
    ------
    FormatError
        Binary content of none of these types.
    """
    if path.is_dir():
        raise VmtoolError("is a directory, expected an array file", path)
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head[:4] in _ZIP_MAGIC:
        return "npz"
    from vmtool.store import HDF5_SIGNATURE

    if head.startswith(HDF5_SIGNATURE):
        return "hdf5"
    import h5py

    if h5py.is_hdf5(path):  # superblock after a user block
        return "hdf5"
    from vmtool.importers.tfrecord import is_tfrecord

    if is_tfrecord(path):
        return "tfrecord"
    if b"\x00" in head:
        raise FormatError("not an NPY, NPZ, HDF5 or CSV file", path)
    return "csv"


# --- small files: ids, offsets ------------------------------------------------------------------


def read_ids_file(spec: str | os.PathLike) -> list[str]:
    """Ids from a text file, one per line (surrounding whitespace and trailing blank lines dropped).

    Raises
    ------
    FormatError
        A blank line among the ids, or a file that is not UTF-8 text.
    """
    path, key = split_spec(spec)
    if key is not None:
        raise ParameterError(f"an ids file is plain text, one id per line; a key ({key!r}) does not apply", path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FormatError("not a UTF-8 text file of ids, one per line", path) from None
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    for i, line in enumerate(lines):
        if not line:
            raise FormatError(f"line {i + 1} is empty (one id per line)", path)
    return lines


def _ints(arr: np.ndarray, what: str, path: Path) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim == 2 and 1 in a.shape:
        a = a.ravel()
    if a.ndim != 1:
        raise ParameterError(f"{what} must be a 1-D array, got shape {a.shape}", path)
    if a.dtype.kind in "iu":
        return a.astype(np.int64)
    if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        return a.astype(np.int64)
    raise ParameterError(f"{what} must be integers, got dtype {a.dtype}", path)


def read_offsets(spec: str | os.PathLike) -> np.ndarray:
    """Offsets ``(N + 1,)`` from an NPY/NPZ/HDF5 array or a text/CSV file of integers."""
    path, key = split_spec(spec)
    kind = sniff(path)
    if kind == "csv":
        if key is not None:
            raise ParameterError(f"a key ({key!r}) applies to NPZ and HDF5 files only", path)
        return _ints(_read_csv(path).data, "offsets", path)
    arr = _load_plain(path, kind, key, what="offsets")
    return _ints(arr, "offsets", path)


def _load_plain(path: Path, kind: str, key: str | None, *, what: str) -> np.ndarray:
    """One array from an NPY/NPZ/HDF5 file (the only one, or *key*)."""
    if kind == "npy":
        if key is not None:
            raise ParameterError(f"a key ({key!r}) applies to NPZ and HDF5 files only", path)
        return _load_npy(path)
    if kind == "npz":
        with _open_npz(path) as z:
            names = list(z.files)
            if key is None:
                if len(names) != 1:
                    raise ParameterError(f"holds {len(names)} arrays; name the {what}: {path}:KEY "
                                         f"(have: {', '.join(names)})", path)
                key = names[0]
            if key not in names:
                raise ParameterError(f"no array {key!r} (have: {', '.join(names) or 'none'})", path)
            return _npz_get(z, key, path)
    if kind == "hdf5":
        import h5py

        with _open_h5(path) as f:
            obj = _h5_get(f, key or "/", path)
            if isinstance(obj, h5py.Group):
                ds = [n for n, o in obj.items() if isinstance(o, h5py.Dataset)]
                if len(ds) != 1:
                    raise ParameterError(f"{obj.name!r} is a group; name the {what} dataset: {path}:/path "
                                         f"(have: {', '.join(ds) or 'none'})", path)
                obj = obj[ds[0]]
            return obj[()]
    raise FormatError(f"is a {kind} file, expected an NPY, NPZ, HDF5 or CSV file", path)


# --- the formats --------------------------------------------------------------------------------


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "python objects" in str(exc).lower():
            raise FormatError("holds Python objects (a pickled object array), which are not read; "
                              "save numbers", path) from None
        raise FormatError(f"not a readable NPY file ({exc})", path) from None
    except (OSError, EOFError) as exc:
        raise FormatError(f"not a readable NPY file ({exc})", path) from None


class _open_npz:
    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        try:
            self.z = np.load(self.path, allow_pickle=False)
        except Exception as exc:  # zipfile.BadZipFile, OSError, ValueError
            raise FormatError(f"not a readable NPZ file ({exc})", self.path) from None
        return self.z

    def __exit__(self, *exc):
        self.z.close()


def _npz_get(z, key: str, path: Path) -> np.ndarray:
    try:
        return z[key]
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise FormatError(f"array {key!r} is a pickled object array, which is not read", path) from None
        raise FormatError(f"array {key!r} is not readable ({exc})", path) from None
    except Exception as exc:  # damaged member
        raise FormatError(f"array {key!r} is not readable ({exc})", path) from None


def _open_h5(path: Path):
    import h5py

    from vmtool.store import check_self_contained

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(f"not a readable HDF5 file ({exc})", path) from None
    try:
        check_self_contained(f, path)  # an input may not make vmtool read other files
    except FormatError:
        f.close()
        raise
    return f


def _h5_get(f, key: str, path: Path):
    k = "/" + key.strip("/")
    if k not in f:
        parent = k.rsplit("/", 1)[0] or "/"
        have = sorted(f[parent].keys()) if parent in f and hasattr(f[parent], "keys") else sorted(f.keys())
        where = parent if parent in f else "/"
        raise ParameterError(f"no dataset or group {k!r} (in {where!r}: {', '.join(have) or 'nothing'})", path)
    return f[k]


@dataclass
class _Csv:
    data: np.ndarray  # (rows, dim) float64
    lines: list[int]  # line number of each row
    row_ids: list[str] | None  # the 'id' column
    columns: list[str] | None  # header names of the data columns


def _read_csv(path: Path) -> _Csv:
    """Read a CSV file of numbers, with an optional header line and 'id' column.

    Raises
    ------
    FormatError
        Ragged rows, non-numeric fields, no rows.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise FormatError("not a UTF-8 text (CSV) file", path) from None
    lines = [(i + 1, line) for i, line in enumerate(text.splitlines())
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise FormatError("CSV file without rows", path)
    first = lines[0][1]
    delim = "\t" if "\t" in first else "," if "," in first else ";" if ";" in first else None
    if delim is None:
        table = [(n, line.split()) for n, line in lines]
    else:
        reader = csv.reader(io.StringIO("\n".join(line for _, line in lines)), delimiter=delim)
        table = [(n, [c.strip() for c in row]) for (n, _), row in zip(lines, reader)]

    def numeric(s: str) -> bool:
        try:
            float(s)
            return True
        except ValueError:
            return False

    header = None
    if not all(numeric(c) for c in table[0][1]):
        header = table[0][1]
        table = table[1:]
        if not table:
            raise FormatError("CSV file has a header line but no rows", path)
    width = len(header) if header is not None else len(table[0][1])
    for n, row in table:
        if len(row) != width:
            raise FormatError(f"CSV line {n} has {len(row)} fields, expected {width} (as the "
                              f"{'header' if header is not None else 'first line'})", path)
    id_col = None
    if header is not None:
        low = [h.lower() for h in header]
        if "id" in low:
            id_col = low.index("id")
    cols = [j for j in range(width) if j != id_col]
    if not cols:
        raise FormatError("CSV file has no feature columns", path)
    try:
        data = np.array([[row[j] for j in cols] for _, row in table], dtype=np.float64)
    except ValueError:
        for n, row in table:
            for j in cols:
                if not numeric(row[j]):
                    name = f" ({header[j]!r})" if header is not None else ""
                    raise FormatError(f"CSV line {n}, column {j + 1}{name}: {row[j]!r} is not a number", path) from None
        data = np.array([[float(row[j]) for j in cols] for _, row in table], dtype=np.float64)
    row_ids = [row[id_col] for _, row in table] if id_col is not None else None
    if row_ids is not None:
        for (n, _), rid in zip(table, row_ids):
            if not rid:
                raise FormatError(f"CSV line {n} has an empty id", path)
    columns = [header[j] for j in cols] if header is not None else None
    return _Csv(data=data, lines=[n for n, _ in table], row_ids=row_ids, columns=columns)


# --- reading one modality -------------------------------------------------------------------------


def _ids_array(arr: np.ndarray, what: str, path: Path) -> list[str]:
    a = np.asarray(arr)
    if a.ndim != 1:
        raise ParameterError(f"{what} must be a 1-D array, got shape {a.shape}", path)
    if a.dtype.kind in "iu":
        return [str(int(v)) for v in a]
    if a.dtype.kind in "SO":
        out = []
        for v in a:
            if isinstance(v, bytes):
                v = v.decode("utf-8")
            if not isinstance(v, str):
                raise ParameterError(f"{what} must hold strings or integers, found {type(v).__name__}", path)
            out.append(v)
        return out
    if a.dtype.kind == "U":
        return [str(v) for v in a]
    raise ParameterError(f"{what} must hold strings or integers, got dtype {a.dtype}", path)


@dataclass
class _Raw:
    """What a file holds before items are formed."""

    data: np.ndarray | None = None  # one array
    key: str | None = None
    offsets: np.ndarray | None = None
    offsets_from: str | None = None
    ids: list[str] | None = None
    ids_from: str | None = None
    row_ids: list[str] | None = None  # CSV id column
    row_lines: list[int] | None = None  # CSV line numbers
    columns: list[str] | None = None
    per_item: list[tuple[str, np.ndarray]] | None = None  # (name, array), one per item
    group: str | None = None


def _container(names: list[str], key: str | None, get: Callable[[str], np.ndarray], where: str,
               path: Path, *, item_key: Callable[[str], str]) -> _Raw:
    """NPZ file or HDF5 group: one array (named, or the only one) with its siblings, or one per item."""
    present = set(names)

    def sibling(base: str, what: str):
        for cand in (f"{base}_{what}", what):
            if cand in present and cand != base:
                return cand
        return None

    if key is None:
        companions = {n for n in names if n in RESERVED}
        companions |= {n for n in names for r in RESERVED if n.endswith("_" + r) and n[: -len(r) - 1] in present}
        candidates = [n for n in names if n not in companions]
        if not candidates:
            raise ParameterError(f"{where} holds no feature arrays (have: {', '.join(names) or 'nothing'})", path)
        if len(candidates) > 1:
            if companions:
                raise ParameterError(
                    f"{where} holds several arrays ({', '.join(candidates)}) and {', '.join(sorted(companions))}; "
                    f"name the array to read: {path}:KEY", path)
            return _Raw(per_item=[(n, np.asarray(get(n))) for n in candidates], group=where)
        key = candidates[0]
    raw = _Raw(data=get(key), key=key)
    off = sibling(key, "offsets")
    if off is not None:
        raw.offsets = _ints(get(off), f"offsets {off!r}", path)
        raw.offsets_from = f"{path}:{item_key(off)}"
    idk = sibling(key, "ids")
    if idk is not None:
        raw.ids = _ids_array(get(idk), f"ids {idk!r}", path)
        raw.ids_from = f"{path}:{item_key(idk)}"
    return raw


def _read_raw(path: Path, kind: str, key: str | None) -> _Raw:
    if kind == "tfrecord":
        raise ParameterError("is a TFRecord file: give YouTube-8M shards as arguments "
                             "(vmtool import SHARD... -o OUT.h5), not as --audio/--video", path)
    if kind in ("npy", "csv") and key is not None:
        raise ParameterError(f"a key ({key!r}) applies to NPZ and HDF5 files only", path)
    if kind == "npy":
        return _Raw(data=_load_npy(path))
    if kind == "csv":
        c = _read_csv(path)
        return _Raw(data=c.data, row_ids=c.row_ids, row_lines=c.lines, columns=c.columns)
    if kind == "npz":
        with _open_npz(path) as z:
            names = list(z.files)
            if key is not None and key not in names:
                raise ParameterError(f"no array {key!r} (have: {', '.join(names) or 'none'})", path)
            return _container(names, key, lambda n: _npz_get(z, n, path), "the NPZ file", path,
                              item_key=lambda n: n)
    import h5py

    with _open_h5(path) as f:
        obj = _h5_get(f, key or "/", path)
        if isinstance(obj, h5py.Dataset):
            parent = obj.parent
            base = obj.name.rsplit("/", 1)[1]
            names = [n for n, o in parent.items() if isinstance(o, h5py.Dataset)]
            raw = _container(names, base, lambda n: parent[n][()], repr(parent.name), path,
                             item_key=lambda n: f"{parent.name.rstrip('/')}/{n}")
            raw.key = obj.name
        else:
            names = [n for n, o in obj.items() if isinstance(o, h5py.Dataset)]
            if not names:
                subs = [n for n, o in obj.items() if isinstance(o, h5py.Group)]
                raise ParameterError(f"group {obj.name!r} holds no datasets; name one: {path}:/path "
                                     f"(groups: {', '.join(subs) or 'none'})", path)
            raw = _container(names, None, lambda n: obj[n][()], f"group {obj.name!r}", path,
                             item_key=lambda n: f"{obj.name.rstrip('/')}/{n}")
            if raw.per_item is not None:
                raw.group = obj.name
            else:
                raw.key = f"{obj.name.rstrip('/')}/{raw.key}"
        return raw


def _as_float32(a: np.ndarray, path: Path, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise FormatError(f"{what} holds non-numeric data (dtype {a.dtype})", path)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ascontiguousarray(a, dtype=np.float32)


def _check_offsets(off: np.ndarray, n_rows: int, path: Path, src: str) -> None:
    if off.size < 1:
        raise ParameterError(f"offsets ({src}) are empty; they need N + 1 entries", path)
    if off[0] != 0:
        raise ParameterError(f"offsets ({src}) start at {off[0]}, expected 0", path)
    bad = np.flatnonzero(np.diff(off) < 0)
    if bad.size:
        k = int(bad[0])
        raise ParameterError(f"offsets ({src}) decrease at entry {k + 1} ({off[k]} -> {off[k + 1]})", path)
    if off[-1] != n_rows:
        raise ParameterError(f"offsets ({src}) end at {off[-1]}, but the data has {n_rows} rows "
                             f"(offsets need N + 1 entries, the last one = number of rows)", path)


def _runs(row_ids: list[str], lines: list[int], path: Path) -> tuple[list[str], np.ndarray]:
    """Item ids and offsets from per-row ids: consecutive rows with one id are one item."""
    ids: list[str] = []
    starts: list[int] = []
    first: dict[str, int] = {}  # id -> line
    for i, rid in enumerate(row_ids):
        if ids and rid == ids[-1]:
            continue
        if rid in first:
            raise FormatError(f"id {rid!r} appears on CSV lines {first[rid]} and {lines[i]} with other ids "
                              "between them; the frames of an item must be consecutive lines", path)
        first[rid] = lines[i]
        ids.append(rid)
        starts.append(i)
    return ids, np.array(starts + [len(row_ids)], dtype=np.int64)


def read_modality(spec: str | os.PathLike, modality: str, *, offsets: str | os.PathLike | None = None,
                  ids: str | os.PathLike | None = None) -> ModalityData:
    """Read the items of one modality from ``PATH[:KEY]``.

    Parameters
    ----------
    spec : str
        ``PATH`` or ``PATH:KEY``.
    modality : str
        ``"audio"`` or ``"video"``.
    offsets : str, optional
        ``PATH[:KEY]`` of offsets ``(N + 1,)``: the array holds frames, item ``i`` is
        ``rows[offsets[i]:offsets[i+1]]``. Overrides offsets stored next to the array.
    ids : str, optional
        A text file with one id per line. Overrides ids stored next to the array.

    Returns
    -------
    ModalityData

    Raises
    ------
    ParameterError
        Unknown key, lengths that do not fit (ids/offsets vs rows), NaN or inf values,
        duplicate ids, arrays of the wrong shape.
    FormatError
        A file that cannot be read as its type (damaged, bad CSV, non-numeric data).
    """
    path, key = split_spec(spec)
    kind = sniff(path)
    raw = _read_raw(path, kind, key)
    disp = str(path)
    if raw.per_item is not None:
        return _per_item(raw, path, kind, modality, given_ids=ids, given_offsets=offsets)
    if ids is not None:
        raw.ids, raw.ids_from = read_ids_file(ids), os.fspath(ids)
    if offsets is not None:
        raw.offsets = read_offsets(offsets)
        raw.offsets_from = os.fspath(offsets)

    prefix = f"{disp}:{raw.key}" if raw.key is not None else disp
    arr = raw.data
    if arr is None or np.ndim(arr) not in (2, 3):
        shape = None if arr is None else np.shape(arr)
        raise ParameterError(
            f"{'array ' + repr(raw.key) + ' ' if raw.key else ''}has shape {shape}; expected (items, dim), "
            "(rows, dim) with offsets, or (items, frames, dim)", path)
    data = _as_float32(arr, path, f"array {raw.key!r}" if raw.key else "the array")
    if data.shape[-1] == 0:
        raise ParameterError(f"rows have width 0 (shape {data.shape})", path)
    level = "clip"
    if raw.row_ids is not None:
        if raw.offsets is not None:
            raise ParameterError("the CSV 'id' column already groups rows into items; offsets do not apply", path)
        run_ids, run_off = _runs(raw.row_ids, raw.row_lines or list(range(1, len(raw.row_ids) + 1)), path)
        if np.any(np.diff(run_off) > 1):
            raw.offsets, raw.offsets_from = run_off, "CSV 'id' column (consecutive rows with the same id)"
        if raw.ids is None:
            raw.ids, raw.ids_from = run_ids, "CSV 'id' column"
        elif len(raw.ids) != len(run_ids):
            raise ParameterError(f"{raw.ids_from} has {len(raw.ids)} ids for {len(run_ids)} items "
                                 "(the CSV 'id' column)", path)
    if data.ndim == 3:
        if raw.offsets is not None:
            raise ParameterError(f"a 3-D array {data.shape} holds (items, frames, dim); offsets do not apply", path)
        rows = list(data)
        level = "frame"
    elif raw.offsets is not None:
        _check_offsets(raw.offsets, data.shape[0], path, raw.offsets_from or "offsets")
        o = raw.offsets
        rows = [data[o[i]:o[i + 1]] for i in range(len(o) - 1)]
        level = "frame"
    else:
        rows = [data[i:i + 1] for i in range(data.shape[0])]
    if not rows:
        raise ParameterError("holds no items", path)
    flat = data.reshape(-1, data.shape[-1])
    finite = np.isfinite(flat).all(axis=1)
    if not finite.all():
        r = int(np.flatnonzero(~finite)[0])
        if data.ndim == 3:
            where = f"item {r // data.shape[1]}, frame {r % data.shape[1]}"
        elif level == "frame":
            it = int(np.searchsorted(raw.offsets, r, side="right") - 1)
            where = f"row {r} (item {it}, frame {r - int(raw.offsets[it])})"
        else:
            where = f"row {r}"
        raise ParameterError(f"{where} holds NaN or infinite values", path)
    if raw.ids is not None and len(raw.ids) != len(rows):
        raise ParameterError(f"{raw.ids_from} has {len(raw.ids)} ids for {len(rows)} items", path)
    if raw.ids is not None:
        _check_unique(raw.ids, raw.ids_from or "ids", path)
    return ModalityData(modality=modality, path=disp, fmt=kind, key=raw.key, layout="array", level=level,
                        rows=rows, ids=raw.ids, sources=[f"{prefix}#{i}" for i in range(len(rows))],
                        columns=raw.columns, ids_from=raw.ids_from, offsets_from=raw.offsets_from)


def _per_item(raw: _Raw, path: Path, kind: str, modality: str, *, given_ids, given_offsets) -> ModalityData:
    where = "the NPZ file" if kind == "npz" else f"group {raw.group!r}"
    if given_ids is not None:
        raise ParameterError(f"{where} holds one array per item, whose ids are the array names; "
                             "an ids file does not apply (name one array as PATH:KEY to read it)", path)
    if given_offsets is not None:
        raise ParameterError(f"{where} holds one array per item; offsets do not apply "
                             "(name one array as PATH:KEY to read it)", path)
    names, rows, levels = [], [], set()
    dim = None
    for name, a in raw.per_item or []:
        if a.ndim not in (1, 2):
            raise ParameterError(f"array {name!r} has shape {a.shape}; per-item arrays are 1-D (dim,) "
                                 "vectors or 2-D (frames, dim) matrices", path)
        if a.shape[-1] == 0:
            raise ParameterError(f"array {name!r} has shape {a.shape}: rows of width 0", path)
        levels.add("clip" if a.ndim == 1 else "frame")
        a2 = _as_float32(a, path, f"array {name!r}").reshape(-1, a.shape[-1])
        if dim is None:
            dim, first = a2.shape[1], name
        elif a2.shape[1] != dim:
            raise ParameterError(f"array {name!r} has width {a2.shape[1]}, array {first!r} has {dim}; per-item "
                                 f"arrays must share a width (to read one array, name it: {path}:KEY)", path)
        bad = np.flatnonzero(~np.isfinite(a2).all(axis=1))
        if bad.size:
            raise ParameterError(f"array {name!r}, row {bad[0]} holds NaN or infinite values", path)
        names.append(name)
        rows.append(a2)
    if len(levels) > 1:
        raise ParameterError(f"{where} mixes 1-D (clip) and 2-D (frame) arrays", path)
    group = raw.group if kind == "hdf5" else None
    src = [f"{path}#{(group.rstrip('/') + '/' + n) if group else n}" for n in names]
    return ModalityData(modality=modality, path=str(path), fmt=kind, key=group, layout="per-item",
                        level=levels.pop(), rows=rows, ids=names, sources=src, ids_from="array names")


def _check_unique(ids: list[str], src: str, path: Path) -> None:
    seen: dict[str, int] = {}
    for i, x in enumerate(ids):
        if not x:
            raise ParameterError(f"id {i} ({src}) is empty", path)
        if x in seen:
            raise ParameterError(f"id {x!r} appears twice ({src}: items {seen[x]} and {i})", path)
        seen[x] = i

