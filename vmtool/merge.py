"""Merging vmtool collections: features files, segmented files, catalogs.

:func:`merge` is what ``vmtool merge`` runs. The inputs must have been made the same
way: the same extraction configuration, and for each element (feature, curve,
segmentation, embedding) they share, the same attributes (extractor version and
parameters, segmentation parameters, the model that made an embedding). Catalogs must
hold the same model. Every input is checked before anything is written, and every
problem is reported.

Items keep their order (the inputs' order, then each input's). An item that is already
in the output with the same id and SHA-256 is the same item: it is kept once. An id
already taken by different content gets ``-<first 8 hex digits of the SHA-256>``, as
``vmtool extract`` does. An element missing from an input is "not computed" for that
input's items.

Data are copied in blocks of contiguous rows, so merging large files takes little memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vmtool.atomic import DEFAULT_WAIT, atomic_output, check_output_path, locks_output
from vmtool.errors import FormatError, ParameterError, VmtoolError
from vmtool.progress import Progress
from vmtool.store import LABELS_GROUP, NEGATIVES_GROUP, RAGGED_GROUPS, Collection, CollectionWriter, canonical_json, \
    companion_names, read_kind

__all__ = ["MergeError", "MergeReport", "merge"]

_BLOCK_BYTES = 64 << 20  # rows copied per h5py read/write


class MergeError(VmtoolError):
    """Inputs that cannot be merged; :attr:`problems` lists every one (one line each)."""

    def __init__(self, problems: Sequence[VmtoolError]):
        self.problems = list(problems)
        first = self.problems[0]
        more = f" (and {len(self.problems) - 1} more problem(s))" if len(self.problems) > 1 else ""
        super().__init__(first.reason + more, first.path)
        self.exit_code = max(p.exit_code for p in self.problems)


@dataclass
class MergeReport:
    """What :func:`merge` wrote."""

    output: str
    items: int = 0
    per_input: list[dict[str, Any]] = field(default_factory=list)  # path, items, added, duplicates, renamed
    duplicates: int = 0  # items present twice (same id and sha256), kept once
    dropped: int = 0  # items left out because --ids does not list them
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (old id, new id)
    elements: list[str] = field(default_factory=list)  # "group/name"
    catalog: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"output": self.output, "items": self.items, "inputs": self.per_input,
                "duplicates": self.duplicates, "dropped": self.dropped, "renamed": [{"from": a, "to": b} for a, b in self.renamed],
                "elements": self.elements, "catalog": self.catalog}


def _differing_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON-like dicts (for messages)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            out += _differing_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if canonical_json(a) == canonical_json(b) else [prefix.rstrip(".") or "(value)"]


def _element_attrs(group) -> dict[str, Any]:
    out = {}
    for k, v in group.attrs.items():
        if isinstance(v, bytes):
            v = v.decode()
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, np.ndarray):
            v = v.tolist()
        out[k] = v
    return out


def _comparable(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes with their JSON strings parsed (key order and spacing do not matter)."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, str) and v[:1] in "[{":
            try:
                v = json.loads(v)
            except json.JSONDecodeError:
                pass
        out[k] = v
    return out


@dataclass
class _Spec:
    group: str
    name: str
    attrs: dict[str, Any]
    shape: tuple[int, ...]  # row shape (data.shape[1:])
    dtype: Any
    first: str  # the input that defined it (for messages)
    companions: dict[str, tuple[tuple[int, ...], Any]] = field(default_factory=dict)  # key -> (row shape, dtype)
    needs_present: bool = False


@locks_output()
def merge(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    ids: Sequence[str] | None = None,
    wait: float = DEFAULT_WAIT,
    command: str = "",
    progress: Progress | None = None,
) -> MergeReport:
    """Merge vmtool collections into *output* (written atomically).

    Parameters
    ----------
    inputs : sequence of path
        Collection files (features files, segmented files or catalogs), in order. *output*
        may be one of them.
    output : path
    ids : sequence of str, optional
        Keep only the items with these ids (as the inputs name them); every id must be in
        some input. With one input, this makes a subset (e.g. drop removed tracks).
    command : str
        The command line recorded in the output's history.
    wait : float
        Seconds to wait for another run writing *output* (see :func:`vmtool.atomic.output_lock`).

    Returns
    -------
    MergeReport

    Raises
    ------
    MergeError
        Inputs that cannot be merged (every problem listed in ``problems``); nothing is written.
    """
    progress = progress or Progress()
    out = check_output_path(output, inputs=inputs, update_kind="collection")
    paths = [Path(p) for p in inputs]
    if not paths:
        raise ParameterError("no input given")
    problems: list[VmtoolError] = []
    seen: set[Path] = set()
    for p in paths:
        key = p.resolve()
        if key in seen:
            problems.append(ParameterError("is given twice", p))
        seen.add(key)
    cols: list[Collection] = []
    try:
        for p in paths:
            try:
                kind, _ = read_kind(p)
                if kind != "collection":
                    raise FormatError(f"is a vmtool {kind!r} file; only collections (features files, "
                                      "catalogs) can be merged", p)
                c = Collection(p)
                try:
                    c.validate()  # offsets, presence flags, companions consistent
                except VmtoolError:
                    c.close()
                    raise
                cols.append(c)
            except VmtoolError as exc:
                problems.append(exc)
        specs, model = _check_compatible(cols, problems) if cols else ([], None)
        if problems:
            raise MergeError(problems)
        report = MergeReport(output=str(out), catalog=model is not None)
        report.elements = [f"{s.group}/{s.name}" for s in specs]
        if ids is not None:
            known = {i for c in cols for i in c.ids}
            missing = [i for i in ids if i not in known]
            if missing:
                more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
                where = "the file" if len(cols) == 1 else "any input"
                raise ParameterError(f"{len(missing)} id(s) of --ids not in {where}: {', '.join(missing[:5])}{more}",
                                     cols[0].path if len(cols) == 1 else None)
        keep = _plan_items(cols, report, None if ids is None else set(ids))
        progress.batch_start(len(specs) + 1)
        with atomic_output(out) as tmp:
            _write(tmp, out, cols, keep, specs, model, command, progress)
        report.items = sum(len(k) for k, _ in keep)
        return report
    finally:
        for c in cols:
            c.close()


def _check_compatible(cols: list[Collection], problems: list[VmtoolError]):
    first = cols[0]
    ref_cfg = first.config
    ref_model = first._f.attrs.get("model")
    specs: dict[tuple[str, str], _Spec] = {}
    label_kinds: dict[str, tuple[str, Path]] = {}
    for c in cols:
        if canonical_json(c.config) != canonical_json(ref_cfg):
            keys = ", ".join(_differing_keys(c.config, ref_cfg)[:4])
            problems.append(ParameterError(f"was extracted with another configuration than {first.path} "
                                           f"(differs in: {keys}); merge files made with the same options", c.path))
        m = c._f.attrs.get("model")
        if (m is None) != (ref_model is None):
            has, lacks = (c.path, first.path) if m is not None else (first.path, c.path)
            problems.append(ParameterError(f"cannot merge a catalog ({has}) with a file that has no model "
                                           f"({lacks})", c.path))
        elif m is not None and json.loads(m).get("sha256") != json.loads(ref_model).get("sha256"):
            problems.append(ParameterError(f"was embedded with another model than {first.path}; "
                                           "embed both with the same model", c.path))
        for key in sorted(c._f):
            if key not in RAGGED_GROUPS and key not in ("items", "model", LABELS_GROUP, NEGATIVES_GROUP, "metadata"):  # metadata: merged per item
                problems.append(ParameterError(f"holds '/{key}', which vmtool merge cannot combine (merge the "
                                               "inputs of that step, then run it again)", c.path))
        for name in c.label_names():
            kind = c.label_kind(name)
            if label_kinds.setdefault(name, (kind, c.path))[0] != kind:
                other = label_kinds[name]
                problems.append(ParameterError(f"label column {name!r} is {kind}, in {other[1]} it is {other[0]}",
                                               c.path))
        for group in RAGGED_GROUPS:
            if group not in c._f:
                continue
            for name in sorted(c._f[group]):
                g = c._f[group][name]
                attrs = _element_attrs(g)
                if "data" not in g:
                    problems.append(FormatError(f"dataset '{group}/{name}/data' is missing", c.path))
                    continue
                shape, dtype = tuple(g["data"].shape[1:]), g["data"].dtype
                comps = {k: (tuple(g[k].shape[1:]), g[k].dtype) for k in companion_names(g)}
                s = specs.get((group, name))
                if s is None:
                    specs[(group, name)] = _Spec(group, name, attrs, shape, dtype, str(c.path), comps,
                                                 "present" in g)
                    continue
                if shape != s.shape:
                    problems.append(ParameterError(f"'{group}/{name}' has rows of shape {shape}, {s.first} has "
                                                   f"{s.shape}", c.path))
                elif canonical_json(_comparable(attrs)) != canonical_json(_comparable(s.attrs)):
                    keys = ", ".join(_differing_keys(_comparable(attrs), _comparable(s.attrs))[:4])
                    problems.append(ParameterError(f"'{group}/{name}' was made differently than in {s.first} "
                                                   f"(differs in: {keys})", c.path))
                for k, v in comps.items():
                    if k in s.companions and s.companions[k][0] != v[0]:
                        problems.append(ParameterError(f"'{group}/{name}/{k}' has rows of shape {v[0]}, "
                                                       f"{s.first} has {s.companions[k][0]}", c.path))
                    s.companions.setdefault(k, v)
                s.needs_present = s.needs_present or "present" in g
    for s in specs.values():
        # an element some inputs lack: their items must read as "not computed"
        if any(s.group not in c._f or s.name not in c._f[s.group] for c in cols):
            s.needs_present = s.needs_present or s.group in ("segmentations", "events", "embeddings")
    model = None
    if ref_model is not None and not problems:
        model = (ref_model, first._f["model"] if "model" in first._f else None)
    return list(specs.values()), model


def _plan_items(cols: list[Collection], report: MergeReport,
                wanted: set[str] | None = None) -> list[tuple[np.ndarray, list[str]]]:
    """Per input: the indices of the items to copy and their ids in the output."""
    taken: dict[str, str] = {}  # id -> sha256
    out: list[tuple[np.ndarray, list[str]]] = []
    for c in cols:
        idx: list[int] = []
        ids: list[str] = []
        dup = ren = 0
        for k, (i, h) in enumerate(zip(c.ids, c.sha256s)):
            if wanted is not None and i not in wanted:
                report.dropped += 1
                continue
            if taken.get(i) == h:
                dup += 1
                continue
            new = i
            if new in taken:
                new = f"{i}-{h[:8]}"
                n = 2
                while new in taken:
                    new = f"{i}-{h[:8]}-{n}"
                    n += 1
                report.renamed.append((i, new))
                ren += 1
            taken[new] = h
            idx.append(k)
            ids.append(new)
        report.duplicates += dup
        report.per_input.append({"path": str(c.path), "items": len(c), "added": len(idx), "duplicates": dup,
                                 "renamed": ren})
        out.append((np.asarray(idx, dtype=np.int64), ids))
    return out


def _merge_labels(w: CollectionWriter, cols: list[Collection], keep) -> None:
    """Label columns (union; an input without a column gives its items no value) and negatives
    (union, with renamed ids, only pairs whose two items are kept)."""
    names = sorted({n for c in cols for n in c.label_names()})
    columns: dict[str, list[np.ndarray]] = {n: [] for n in names}
    pairs: list[tuple[str, str]] = []
    for c, (idx, ids) in zip(cols, keep):
        for n in names:
            if n in c.label_names():
                columns[n].append(c.label(n)[idx])
            else:
                numeric = any(n in o.label_names() and o.label_kind(n) == "numeric" for o in cols)
                columns[n].append(np.full(len(idx), np.nan) if numeric else np.full(len(idx), "", dtype=object))
        new_id = {c.ids[int(k)]: i for k, i in zip(idx, ids)}
        pairs += [(new_id[v], new_id[m]) for v, m in c.negatives() if v in new_id and m in new_id]
    if names:
        w.write_labels({n: np.concatenate(parts) if parts else np.zeros(0) for n, parts in columns.items()})
    if any(NEGATIVES_GROUP in c._f for c in cols):
        w.write_negatives(sorted(set(pairs)))


def _runs(idx: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs ``[a, b)`` of sorted indices."""
    if idx.size == 0:
        return []
    cut = np.flatnonzero(np.diff(idx) != 1) + 1
    starts = np.concatenate([[0], cut])
    ends = np.concatenate([cut, [idx.size]])
    return [(int(idx[s]), int(idx[e - 1]) + 1) for s, e in zip(starts, ends)]


def _copy_rows(src, dst, runs: list[tuple[int, int]], offsets: np.ndarray, at: int) -> int:
    """Append the rows of the item runs of *src* (with *offsets*) to *dst* from row *at*."""
    row_bytes = max(1, int(np.prod(src.shape[1:], dtype=np.int64)) * src.dtype.itemsize)
    step = max(1, _BLOCK_BYTES // row_bytes)
    for a, b in runs:
        lo, hi = int(offsets[a]), int(offsets[b])
        for s in range(lo, hi, step):
            e = min(hi, s + step)
            dst[at:at + e - s] = src[s:e]
            at += e - s
    return at


def _write(tmp: Path, out: Path, cols, keep, specs: list[_Spec], model, command: str, progress: Progress) -> None:
    from vmtool import __version__
    from vmtool.metadata import merge_origins
    from vmtool.store import _ITEM_CHUNK, _GZIP, ElementSpec, _now

    first = cols[0]
    with CollectionWriter(tmp, config=first.config, command=command, display_path=out, flush_items=4096) as w:
        for c, (idx, ids) in zip(cols, keep):
            meta = c.metadata()
            for k, new_id in zip(idx, ids):
                it = c.item(int(k))
                it.id = new_id
                w.add(it, {}, meta.item(int(k)))
        w.flush()
        merge_origins(w._f, [c.metadata().origins for c in cols])
        progress.file_done("items", True)
        _merge_labels(w, cols, keep)
        f = w._f
        n = int(f["items/id"].shape[0])
        history = list(first.attrs.get("history") or [])
        history.append({"time": _now(), "command": command, "vmtool_version": __version__})
        f.attrs["history"] = json.dumps(history)
        f.attrs["merged_from"] = json.dumps([{"path": str(c.path), "items": len(c), "added": int(len(k)),
                                              "created": c.attrs.get("created", "")} for c, (k, _) in zip(cols, keep)])
        if model is not None:
            f.attrs["model"] = model[0]
            if model[1] is not None:
                f.copy(model[1], "model")
        for s in specs:
            w._create_element(ElementSpec(s.group, s.name, RAGGED_GROUPS[s.group], s.shape[0] if s.shape else None,
                                          s.dtype, {}))
            eg = f[s.group][s.name]
            for k, v in s.attrs.items():  # exactly as stored (already JSON strings where they were)
                eg.attrs[k] = v
            counts = np.zeros(n, dtype=np.int64)
            rates = np.full(n, np.nan)
            present = np.zeros(n, dtype=bool)
            comp_counts = {k: np.zeros(n, dtype=np.int64) for k in s.companions}
            pos = 0
            for c, (idx, _) in zip(cols, keep):
                m = len(idx)
                if s.group in c._f and s.name in c._f[s.group] and m:
                    g = c._f[s.group][s.name]
                    off = np.asarray(g["offsets"][()], dtype=np.int64)
                    counts[pos:pos + m] = off[idx + 1] - off[idx]
                    if "rate" in g:
                        rates[pos:pos + m] = np.asarray(g["rate"][()])[idx]
                    present[pos:pos + m] = (np.asarray(g["present"][()], dtype=bool)[idx] if "present" in g
                                            else counts[pos:pos + m] > 0)
                    for key in s.companions:
                        if key in g:
                            coff = np.asarray(g[f"{key}_offsets"][()], dtype=np.int64)
                            comp_counts[key][pos:pos + m] = coff[idx + 1] - coff[idx]
                pos += m
            offsets = np.concatenate([[0], np.cumsum(counts)])
            eg["offsets"][:] = offsets
            eg["rate"][:] = rates
            eg["data"].resize((int(offsets[-1]),) + s.shape)
            comp_ds = {}
            for key, (shape, dtype) in s.companions.items():
                total = int(comp_counts[key].sum())
                eg.create_dataset(key, shape=(total,) + shape, maxshape=(None,) + shape, dtype=dtype,
                                  chunks=(max(1024, min(total, 1 << 16)) if total else 1024,) + shape, **_GZIP)
                eg.create_dataset(f"{key}_offsets", data=np.concatenate([[0], np.cumsum(comp_counts[key])]),
                                  maxshape=(None,), chunks=(_ITEM_CHUNK,), **_GZIP)
                comp_ds[key] = (eg[key], 0)
            at = 0
            for c, (idx, _) in zip(cols, keep):
                if not (s.group in c._f and s.name in c._f[s.group]) or not len(idx):
                    continue
                g = c._f[s.group][s.name]
                runs = _runs(idx)
                at = _copy_rows(g["data"], eg["data"], runs, np.asarray(g["offsets"][()], dtype=np.int64), at)
                for key in s.companions:
                    if key in g:
                        ds, cat = comp_ds[key]
                        cat = _copy_rows(g[key], ds, runs, np.asarray(g[f"{key}_offsets"][()], dtype=np.int64), cat)
                        comp_ds[key] = (ds, cat)
            if s.needs_present:
                eg.create_dataset("present", data=present, maxshape=(None,), chunks=(_ITEM_CHUNK,), **_GZIP)
            progress.file_done(f"{s.group}/{s.name}", True)
    # the result must read back as a valid collection
    with Collection(tmp) as check:
        check.validate()
