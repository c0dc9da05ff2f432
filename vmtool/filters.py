"""``--where`` filters on track metadata and item columns (``vmtool rank``).

A music supervisor narrows a search before looking at distances: a tempo range, a set
of keys, a maximum duration, a genre. A filter is one string ``FIELD [OP] VALUE``:

=================  ===============================================================
``bpm 90..120``    a closed range (numbers); ``..180`` and ``90..`` leave one side open
``key Am,C``       one of the listed values (keys compare in their canonical spelling,
                   so ``Bb`` matches ``A#``; text compares case-insensitively)
``genre ~ rock``   contains (case-insensitive); ``!~`` does not contain
``artist != X``    differs from; ``=`` equals
``bpm >= 100``     ``<``, ``<=``, ``>``, ``>=`` on numbers
=================  ===============================================================

Fields: the item columns ``duration`` (seconds), ``id`` and ``source``, and every
``/metadata`` column. ``bpm`` and ``key`` use the tagged (or sheet) value where there
is one and the measured value otherwise; ``tempo`` is another name for ``bpm`` and
``loudness`` for ``measured_loudness_lufs`` (integrated loudness, LUFS). An item without
a value for a filtered field is excluded by that filter (whatever the operator); fields
not filtered on are never required. Several filters all apply (AND).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vmtool.errors import UsageError
from vmtool.metadata import Metadata, normalize_key

__all__ = ["Filter", "parse_filter", "select", "Selection", "catalog_filter"]

_ITEM_FIELDS = {"duration": "num", "id": "str", "source": "str"}
_ALIASES = {"tempo": "bpm", "loudness": "measured_loudness_lufs"}
_OPS = ("!=", "!~", "<=", ">=", "=", "~", "<", ">")
_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(!=|!~|<=|>=|=|~|<|>)?\s*(.*?)\s*$")


@dataclass(frozen=True)
class Filter:
    """One parsed filter.

    ``op`` is ``range`` (``low``/``high``, None = open), ``in`` (``values``), ``=``,
    ``!=``, ``~``, ``!~``, ``<``, ``<=``, ``>``, ``>=`` (``values[0]``).
    """

    text: str
    field: str
    op: str
    values: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None


def _number(text: str, spec: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise UsageError(f"--where {spec!r}: {text!r} is not a number") from None
    if not math.isfinite(v):
        raise UsageError(f"--where {spec!r}: {text!r} is not a finite number")
    return v


def parse_filter(text: str) -> Filter:
    """Parse ``FIELD [OP] VALUE`` (the syntax only; the field is checked by :func:`select`).

    Raises
    ------
    UsageError
        No field, no value, or a malformed range (exit code 2).
    """
    m = _RE.match(text)
    if not m or not m.group(3):
        raise UsageError(f"--where {text!r}: expected FIELD [OP] VALUE, e.g. 'bpm 90..120', 'key Am,C', "
                         "'genre ~ rock'")
    field, op, value = m.group(1).lower(), m.group(2), m.group(3)
    field = _ALIASES.get(field, field)
    if op in ("<", "<=", ">", ">="):
        return Filter(text, field, op, (str(_number(value, text)),))
    if op is not None:
        return Filter(text, field, op, (value,))
    if ".." in value:
        lo, sep, hi = value.partition("..")
        if ".." in hi or (not lo.strip() and not hi.strip()):
            raise UsageError(f"--where {text!r}: a range is LOW..HIGH, ..HIGH or LOW..")
        low = _number(lo.strip(), text) if lo.strip() else None
        high = _number(hi.strip(), text) if hi.strip() else None
        if low is not None and high is not None and low > high:
            raise UsageError(f"--where {text!r}: the range is empty ({low:g} > {high:g})")
        return Filter(text, field, "range", low=low, high=high)
    values = tuple(v.strip() for v in value.split(",") if v.strip())
    if not values:
        raise UsageError(f"--where {text!r}: no value")
    return Filter(text, field, "in", values)


@dataclass
class Selection:
    """Which items pass the filters: ``keep`` (bool per item) and counts per filter."""

    keep: np.ndarray
    excluded_by: dict[str, int]  # filter text -> items it excluded (of those still in)

    @property
    def excluded(self) -> int:
        return int((~self.keep).sum())


def _canon(field: str, v: str) -> str:
    if field in ("key", "measured_key"):
        return normalize_key(v) or v.strip().lower()
    return v.strip().lower()


def _column(field: str, meta: Metadata, items: dict[str, np.ndarray]) -> np.ndarray | None:
    if field in _ITEM_FIELDS:
        return items.get(field)
    return meta.effective(field)


def select(filters: Sequence[Filter | str], meta: Metadata, items: dict[str, np.ndarray]) -> Selection:
    """Apply *filters* to the items of a collection.

    Parameters
    ----------
    filters : sequence of Filter or str
    meta : Metadata
        The collection's ``/metadata`` (:meth:`vmtool.store.Collection.metadata`).
    items : dict of str -> np.ndarray
        Item columns ``duration``, ``id``, ``source`` (one entry per item).

    Raises
    ------
    UsageError
        A field the collection does not have, or an operator that does not fit the
        field's type (a range on text), exit code 2.
    """
    n = meta.n_items
    keep = np.ones(n, dtype=bool)
    excluded_by: dict[str, int] = {}
    known = sorted(set(_ITEM_FIELDS) | set(meta.columns) | ({"bpm", "key"} & {c.replace("measured_", "")
                                                                               for c in meta.columns}))
    for f in filters:
        f = parse_filter(f) if isinstance(f, str) else f
        col = _column(f.field, meta, items)
        if col is None:
            raise UsageError(f"--where {f.text!r}: unknown field {f.field!r} (fields: {', '.join(known)})")
        numeric = np.asarray(col).dtype.kind in "fiu"
        if numeric:
            x = np.asarray(col, dtype=np.float64)
            have = np.isfinite(x)
            xs = np.where(have, x, 0.0)
            if f.op == "range":
                ok = have & (xs >= (-np.inf if f.low is None else f.low)) & (xs <= (np.inf if f.high is None else f.high))
            elif f.op in ("<", "<=", ">", ">="):
                v = float(f.values[0])
                ok = have & {"<": xs < v, "<=": xs <= v, ">": xs > v, ">=": xs >= v}[f.op]
            elif f.op in ("in", "=", "!="):
                vals = np.array([_number(v, f.text) for v in f.values])
                hit = np.isclose(xs[:, None], vals[None, :], rtol=0, atol=1e-9).any(axis=1)
                ok = have & (~hit if f.op == "!=" else hit)
            else:
                raise UsageError(f"--where {f.text!r}: {f.op!r} needs a text field; {f.field!r} is a number")
        else:
            s = [str(v) if v is not None else "" for v in col]
            have = np.array([bool(v) for v in s], dtype=bool)
            if f.op == "range" or f.op in ("<", "<=", ">", ">="):
                raise UsageError(f"--where {f.text!r}: a range or comparison needs a number; {f.field!r} is text")
            canon = [_canon(f.field, v) for v in s]
            if f.op in ("~", "!~"):
                needle = f.values[0].strip().lower()
                hit = np.array([needle in v.lower() for v in s], dtype=bool)
                ok = have & (~hit if f.op == "!~" else hit)
            else:
                vals = {_canon(f.field, v) for v in f.values}
                hit = np.array([c in vals for c in canon], dtype=bool)
                ok = have & (~hit if f.op == "!=" else hit)
        excluded_by[f.text] = int((keep & ~ok).sum())
        keep &= ok
    return Selection(keep, excluded_by)


def catalog_filter(path, filters: Sequence[Filter | str],
                   ids: Sequence[str] | None = None) -> tuple[Selection | None, Metadata]:
    """Open the collection *path*, read its metadata and apply *filters* (None when none given).

    *ids* (default: every stored item, in file order) are the items the results index, e.g.
    a loaded catalog from which items with damaged embeddings were left out.
    """
    from vmtool.store import open_collection

    if not filters and ids is None:  # the metadata alone: no item table (a million items: 2 s)
        import h5py

        from vmtool.metadata import read_metadata
        from vmtool.store import read_kind

        read_kind(path)  # existence, HDF5, vmtool attributes, as opening the collection checks
        with h5py.File(path, "r") as f:
            if isinstance(f.get("items/id"), h5py.Dataset):  # else opening it says what is wrong
                return None, read_metadata(f, f["items/id"].shape[0], Path(path))
    with open_collection(path) as col:
        meta = col.metadata()
        items = {"duration": np.asarray(col.column("duration"), dtype=np.float64),
                 "id": np.array(col.ids, dtype=object), "source": np.asarray(col.column("source"), dtype=object)}
        if ids is not None and list(ids) != list(col.ids):
            rows = np.array([col.index(x) for x in ids], dtype=np.int64)
            meta = meta.take(rows)
            items = {k: v[rows] for k, v in items.items()}
    if not filters:
        return None, meta
    return select(filters, meta, items), meta
