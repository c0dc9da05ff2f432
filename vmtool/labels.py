"""Per-item labels and known mismatched pairs of a collection (``vmtool label``, ``import --labels``).

Affective video-music datasets ship labels next to their features: per clip, the
video's emotion class, the music's emotion class, a polarity, the track it comes
from. vmtool keeps them in the collection as named columns under ``/labels`` (schema
1.1, ``docs/format.md``), one value per item, numeric (float64, NaN for no value) or
categorical (string, "" for no value). Pairs known to be mismatched are kept under
``/negatives`` as ``(video item id, music item id)``.

A labels CSV has a header row. Its join column is ``id`` (the item id) or ``file``
(the base name of the item's source file, as ``vmtool extract`` records it); every
other column is a label column. A column whose every non-empty value is a number is
numeric, otherwise categorical; ``polarity`` MUST be numeric (the polarity penalty of
DPVM, eq. 11, subtracts polarities). A negatives CSV has the columns ``video_id`` and
``music_id``.

:func:`label_column` is the library's way to read one column as an array per item.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vmtool.atomic import atomic_output
from vmtool.errors import FormatError, ParameterError, VmtoolError
from vmtool.store import Collection, CollectionWriter, open_collection

__all__ = ["LabelTable", "read_labels_csv", "read_negatives_csv", "join_labels", "apply_labels", "label_column",
           "copy_labels", "label_file", "labels_as_text", "NUMERIC_COLUMNS", "LabelReport"]

#: columns that must hold numbers (a polarity is subtracted: DPVM eq. 11)
NUMERIC_COLUMNS = ("polarity",)
JOIN_COLUMNS = ("id", "file")


@dataclass
class LabelTable:
    """A labels CSV read into memory.

    ``key`` is the join column (``id`` or ``file``), ``keys`` its value per row, ``columns``
    the label columns (name -> values per row: float64 for numeric columns, str objects
    otherwise), ``rows`` the CSV line number of each row (for messages).
    """

    path: Path
    key: str
    keys: list[str]
    columns: dict[str, np.ndarray]
    rows: list[int]


@dataclass
class LabelReport:
    path: str
    columns: list[dict[str, Any]] = field(default_factory=list)
    labelled: int = 0
    n_items: int = 0
    negatives: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "columns": self.columns, "labelled": self.labelled, "n_items": self.n_items,
                "negatives": self.negatives}


def _read_csv(path: str | os.PathLike) -> tuple[Path, list[str], list[tuple[int, list[str]]]]:
    p = Path(path)
    if not p.is_file():
        raise VmtoolError("no such labels file", p)
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            sample = fh.read(4096)
            fh.seek(0)
            first = sample.splitlines()[0] if sample else ""
            delim = "\t" if "\t" in first else ","
            reader = csv.reader(fh, delimiter=delim)
            header = next(reader, None)
            if header is None:
                raise ParameterError("is empty (expected a header row)", p)
            header = [h.strip() for h in header]
            rows = [(reader.line_num, [c.strip() for c in r]) for r in reader if any(c.strip() for c in r)]
    except UnicodeDecodeError:
        raise FormatError("is not a UTF-8 text file (expected CSV)", p) from None
    except csv.Error as exc:
        raise FormatError(f"is not valid CSV: {exc}", p) from None
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise ParameterError(f"column {dup[0]!r} appears twice in the header", p)
    for line, r in rows:
        if len(r) != len(header):
            raise ParameterError(f"row {line} has {len(r)} fields, the header {len(header)}", p)
    return p, header, rows


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def read_labels_csv(path: str | os.PathLike) -> LabelTable:
    """Read a labels CSV (see the module's description).

    Raises
    ------
    ParameterError
        No ``id`` or ``file`` column; an empty or repeated key; a non-numeric value in
        a numeric column (``polarity``); no label column. Messages name the file, the
        column and the first bad row (CSV line number).
    """
    p, header, rows = _read_csv(path)
    key = next((k for k in JOIN_COLUMNS if k in header), None)
    if key is None:
        raise ParameterError(f"has no 'id' or 'file' column to join on (columns: {', '.join(header)})", p)
    ki = header.index(key)
    seen: dict[str, int] = {}
    for line, r in rows:
        if not r[ki]:
            raise ParameterError(f"column {key!r}, row {line}: empty {key}", p)
        if r[ki] in seen:
            raise ParameterError(f"column {key!r}, row {line}: {r[ki]!r} is also on row {seen[r[ki]]}", p)
        seen[r[ki]] = line
    names = [h for h in header if h != key and h not in JOIN_COLUMNS]
    if not names:
        raise ParameterError(f"has no label column besides {key!r}", p)
    columns: dict[str, np.ndarray] = {}
    for name in names:
        j = header.index(name)
        if not name or "/" in name:
            raise ParameterError(f"label column name {name!r} is not usable (non-empty, without '/')", p)
        vals = [r[j] for _, r in rows]
        nums = [_number(v) if v else math.nan for v in vals]
        bad = next((i for i, x in enumerate(nums) if x is None), None)
        if bad is None:
            columns[name] = np.asarray(nums, dtype=np.float64)
        elif name in NUMERIC_COLUMNS:
            raise ParameterError(f"column {name!r}, row {rows[bad][0]}: {vals[bad]!r} is not a number (polarity "
                                 "is numeric, e.g. -1, 0, 1 for negative, neutral, positive)", p)
        else:
            columns[name] = np.asarray(vals, dtype=object)
    return LabelTable(p, key, [r[ki] for _, r in rows], columns, [line for line, _ in rows])


def read_negatives_csv(path: str | os.PathLike) -> tuple[Path, list[tuple[str, str]], list[int]]:
    """Read a negatives CSV (columns ``video_id``, ``music_id``): pairs and their line numbers."""
    p, header, rows = _read_csv(path)
    for col in ("video_id", "music_id"):
        if col not in header:
            raise ParameterError(f"has no {col!r} column (a negatives file pairs video_id with music_id; "
                                 f"columns: {', '.join(header)})", p)
    vi, mi = header.index("video_id"), header.index("music_id")
    for line, r in rows:
        for col, j in (("video_id", vi), ("music_id", mi)):
            if not r[j]:
                raise ParameterError(f"column {col!r}, row {line}: empty id", p)
    return p, [(r[vi], r[mi]) for _, r in rows], [line for line, _ in rows]


def _item_keys(col: Collection, key: str) -> dict[str, int]:
    if key == "id":
        return {x: i for i, x in enumerate(col.ids)}
    out: dict[str, int] = {}
    for i, src in enumerate(col.column("source")):
        for part in str(src).split(";"):  # imported items join their sources with ';'
            if part:
                out.setdefault(os.path.basename(part), i)
    return out


def join_labels(col: Collection, table: LabelTable) -> tuple[dict[str, np.ndarray], int]:
    """The table's columns as one value per item of *col* (missing: NaN / ""), and how many items it labels.

    Raises
    ------
    ParameterError
        A key that names no item (the message gives the file, the column and the first such row).
    """
    where = _item_keys(col, table.key)
    index = []
    for k, line in zip(table.keys, table.rows):
        if k not in where:
            what = "item id" if table.key == "id" else "source file name"
            raise ParameterError(f"column {table.key!r}, row {line}: {k!r} is no {what} of {col.path}", table.path)
        index.append(where[k])
    idx = np.asarray(index, dtype=np.int64)
    n = len(col)
    out: dict[str, np.ndarray] = {}
    for name, vals in table.columns.items():
        if vals.dtype.kind == "f":
            arr = np.full(n, np.nan)
        else:
            arr = np.full(n, "", dtype=object)
        arr[idx] = vals
        out[name] = arr
    return out, int(len(np.unique(idx)))


def check_negatives(col: Collection, path: Path, pairs: Sequence[tuple[str, str]], lines: Sequence[int]) -> None:
    """Every negative pair must name items of *col* (the video item has video, the music item audio)."""
    ids = {x: i for i, x in enumerate(col.ids)}
    for (v, m), line in zip(pairs, lines):
        for column, x in (("video_id", v), ("music_id", m)):
            if x not in ids:
                raise ParameterError(f"column {column!r}, row {line}: {x!r} is no item id of {col.path}", path)
        if v == m:
            raise ParameterError(f"row {line}: {v!r} is paired with itself (its own music is its match)", path)


def apply_labels(
    path: str | os.PathLike,
    *,
    labels: str | os.PathLike | None = None,
    negatives: str | os.PathLike | None = None,
    command: str = "",
    output: str | os.PathLike | None = None,
) -> LabelReport:
    """Add label columns and/or negatives to a collection (in place, atomically, or to *output*).

    Columns of the CSV replace stored columns of the same name; others are kept.
    Negatives are added to those stored. Everything is read and checked before the
    file is replaced: on an error it is untouched.
    """
    if labels is None and negatives is None:
        raise ParameterError("nothing to add: give --labels FILE.csv and/or --negatives FILE.csv")
    src = Path(path)
    open_collection(src).close()  # a collection, readable: checked before copying it
    out = Path(output) if output is not None else src
    with atomic_output(out, seed=src) as tmp:
        report = label_file(tmp, labels=labels, negatives=negatives, command=command, display_path=src)
    report.path = str(out)
    return report


def label_file(path: str | os.PathLike, *, labels: str | os.PathLike | None = None,
               negatives: str | os.PathLike | None = None, command: str = "",
               display_path: str | os.PathLike | None = None) -> LabelReport:
    """Write label columns and/or negatives into the collection at *path* (no copy: the caller
    works on a temporary file). Used by :func:`apply_labels` and ``vmtool import --labels``."""
    shown = Path(display_path) if display_path is not None else Path(path)
    with Collection(path) as col:
        col.path = shown  # messages name the user's file, not the temporary copy
        cols: dict[str, np.ndarray] = {}
        report = LabelReport(str(shown), n_items=len(col))
        table = None
        if labels is not None:
            table = read_labels_csv(labels)
            cols, report.labelled = join_labels(col, table)
        pairs: list[tuple[str, str]] = []
        if negatives is not None:
            npath, pairs, lines = read_negatives_csv(negatives)
            check_negatives(col, npath, pairs, lines)
            pairs = sorted(set(col.negatives()) | set(pairs))
    with CollectionWriter(path, config=None, command=command, display_path=shown) as w:
        if cols:
            w.write_labels(cols, attrs={"source": str(table.path) if table else ""})
        if negatives is not None:
            w.write_negatives(pairs, attrs={"source": str(negatives)})
    for name, arr in cols.items():
        kind = "numeric" if arr.dtype.kind == "f" else "categorical"
        have = ~np.isnan(arr) if kind == "numeric" else arr != ""
        entry: dict[str, Any] = {"name": name, "kind": kind, "items": int(have.sum())}
        if kind == "categorical":
            entry["classes"] = len(set(arr[have]))
        report.columns.append(entry)
    report.negatives = len(pairs)
    return report


def label_column(collection: Collection | str | os.PathLike, name: str, *,
                 required: bool = False, numeric: bool = False) -> np.ndarray:
    """Label column *name* of a collection, one value per item (in item order).

    Parameters
    ----------
    collection : Collection or path
    name : str
    required : bool
        Every item must have a value (else an error naming the first item without).
    numeric : bool
        The column must be numeric.

    Returns
    -------
    np.ndarray [shape=(n_items,)]
        float64 (NaN: no value) for numeric columns, str objects ("": no value) otherwise.

    Raises
    ------
    ParameterError
        The file has no such column, or it breaks *required* / *numeric*; the message
        names the file and the column.
    """
    if not isinstance(collection, Collection):
        with open_collection(collection) as col:
            return label_column(col, name, required=required, numeric=numeric)
    arr = collection.label(name)
    if numeric and arr.dtype.kind != "f":
        raise ParameterError(f"label column {name!r} is categorical, a number per item is needed", collection.path)
    if required:
        missing = np.flatnonzero(np.isnan(arr) if arr.dtype.kind == "f" else arr == "")
        if missing.size:
            raise ParameterError(f"label column {name!r} has no value for {missing.size} item(s), e.g. "
                                 f"{collection.ids[int(missing[0])]!r}", collection.path)
    return arr


def labels_as_text(values: np.ndarray) -> np.ndarray:
    """A label column as str objects ("" for no value): numbers as ``f"{x:g}"`` (1.0 -> "1"),
    so that numeric and categorical columns compare the same way."""
    if values.dtype.kind != "f":
        return np.asarray(values, dtype=object)
    return np.array(["" if np.isnan(x) else f"{x:g}" for x in values], dtype=object)


def copy_labels(src: Collection, writer: CollectionWriter, index: Sequence[int] | None = None,
                ids: Mapping[str, str] | None = None) -> None:
    """Copy *src*'s label columns and negatives into *writer* (whose items are *src*'s items *index*).

    *ids* maps renamed item ids (old -> new) for the negatives; pairs whose items are
    not kept are dropped.
    """
    idx = np.arange(len(src)) if index is None else np.asarray(index, dtype=np.int64)
    names = src.label_names()
    if names:
        writer.write_labels({n: src.label(n)[idx] for n in names})
    neg = src.negatives()
    if neg:
        kept_ids = {src.ids[int(i)] for i in idx}
        ren = dict(ids or {})
        pairs = [(ren.get(v, v), ren.get(m, m)) for v, m in neg if v in kept_ids and m in kept_ids]
        writer.write_negatives(pairs)
