"""Reading embeddings from vmtool catalogs (``vmtool embed``'s output).

A catalog (docs/format.md, "Embeddings") holds per item a clip embedding per modality
(``/embeddings/audio``, ``/embeddings/video``) and, for segment-level models, one
embedding per segment with its span (``/embeddings/<modality>_segments`` and its
``spans`` companion). These functions read one modality of a catalog as a
:class:`~vmtool.ranking.segments.SegmentSet`, or one item of a file, keeping float16
storage as it is (the ranking converts it chunk by chunk).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from vmtool.errors import FormatError, ParameterError, VmtoolError
from vmtool.ranking.segments import SegmentSet
from vmtool.store import open_collection, parse_item_ref

__all__ = ["MODALITIES", "parse_item_ref", "load_catalog", "load_item", "catalog_model", "DIRECTIONS", "sides"]

MODALITIES = ("audio", "video")

#: direction -> (query modality, target modality)
DIRECTIONS = {"v2m": ("video", "audio"), "m2v": ("audio", "video")}


def sides(direction: str) -> tuple[str, str]:
    """``(query modality, target modality)`` of ``v2m`` (video queries music) or ``m2v``."""
    try:
        return DIRECTIONS[direction]
    except KeyError:
        raise ParameterError(f"unknown direction {direction!r}; use v2m or m2v") from None


def catalog_model(path: str | os.PathLike) -> dict[str, Any] | None:
    """The root attribute ``model`` of a catalog (JSON), or None.

    Reads the root attributes only, not the item table: opening the collection read a
    million tracks' ids, sources and hashes (2.7 s) for one attribute, twice per
    ``rank`` of a streamed catalog.
    """
    import h5py

    from vmtool.store import KIND_COLLECTION, _check_root, _decode, read_kind

    p = Path(path)
    read_kind(p)  # existence, HDF5, vmtool attributes
    with h5py.File(p, "r") as f:
        _check_root(f, p, KIND_COLLECTION)
        raw = _decode(f.attrs["model"]) if "model" in f.attrs else None
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise FormatError("root attribute 'model' is not valid JSON", path) from exc
    return dict(raw)


def hash_strings(h, ds) -> None:
    """Feed the hash *h* every value of the string dataset *ds*, each followed by a NUL byte.

    One call for the whole column: the same bytes as a call per value. Shared by the
    index's fingerprint and the CSLS sidecar's key, whose digests must not change.
    """
    values = ds.asstr()[()]
    if len(values):
        h.update(("\0".join(values.tolist()) + "\0").encode())


def _element_names(modality: str) -> tuple[str, str]:
    if modality not in MODALITIES:
        raise ParameterError(f"unknown modality {modality!r}; use audio or video")
    return modality, f"{modality}_segments"


def _no_embeddings(col, path: Path, name: str) -> VmtoolError:
    have = col.names("embeddings")
    if not have:
        return FormatError("has no embeddings (group 'embeddings' is missing or empty); "
                           "it is not a catalog: run vmtool embed first", path)
    if name.endswith("_segments"):
        return FormatError(f"has no segment embeddings 'embeddings/{name}' (it has: {', '.join(have)}); "
                           "a clip-level catalog ranks with --method clip only", path)
    return FormatError(f"has no clip embeddings 'embeddings/{name}' (it has: {', '.join(have)})", path)


def load_catalog(
    path: str | os.PathLike,
    modality: str,
    *,
    segments: bool = True,
    clip: bool = True,
) -> SegmentSet:
    """One modality of a catalog, every item (items without it have no rows).

    Parameters
    ----------
    path : path
        A catalog written by ``vmtool embed`` (or :func:`vmtool.synth.synth_catalog`).
    modality : {"audio", "video"}
    segments, clip : bool
        Which embeddings to read. Missing clip embeddings are only an error when
        *segments* is False; the clip rows of items without one are NaN.

    Raises
    ------
    FormatError
        Not a vmtool collection, no embeddings, or inconsistent embedding datasets.
    """
    import h5py

    p = Path(path)
    clip_name, seg_name = _element_names(modality)
    with open_collection(p) as col:
        n = len(col)
        have = col.names("embeddings")
        if segments and seg_name not in have:
            raise _no_embeddings(col, p, seg_name)
        if not segments and clip_name not in have:
            raise _no_embeddings(col, p, clip_name)
        for name in (seg_name, clip_name):
            if name in have:
                col.ragged("embeddings", name)  # checks offsets against data
        ids, sources, shas = col.ids, [str(s) for s in col.column("source")], col.sha256s
    with h5py.File(p, "r") as f:
        g = f["embeddings"]
        dim = None
        data = offsets = spans = None
        if segments:
            eg = g[seg_name]
            data = eg["data"][()]
            if data.ndim != 2:
                raise FormatError(f"dataset 'embeddings/{seg_name}/data' is not a matrix", p)
            offsets = eg["offsets"][()].astype(np.int64)
            dim = data.shape[1]
            spans = _read_spans(eg, offsets, p, seg_name)
        clip_arr = None
        if clip and clip_name in g:
            cg = g[clip_name]
            cdata = cg["data"][()]
            coff = cg["offsets"][()].astype(np.int64)
            counts = np.diff(coff)
            if np.any(counts > 1):
                raise FormatError(f"'embeddings/{clip_name}' has more than one row for an item", p)
            if dim is not None and cdata.ndim == 2 and cdata.shape[1] != dim:
                raise FormatError(f"'embeddings/{clip_name}' is {cdata.shape[1]}-d but "
                                  f"'embeddings/{seg_name}' is {dim}-d", p)
            dim = cdata.shape[1]
            clip_arr = np.full((n, dim), np.nan, dtype=cdata.dtype)
            clip_arr[counts == 1] = cdata
    damaged: dict[str, np.ndarray] = {}  # dataset -> items with a NaN or infinite stored row
    if data is not None:
        bad_rows = ~np.isfinite(data).all(axis=1)
        if bad_rows.any():
            item_of_row = np.repeat(np.arange(n), np.diff(offsets))
            damaged[f"embeddings/{seg_name}/data"] = np.unique(item_of_row[bad_rows])
    if clip_arr is not None:
        stored = np.flatnonzero(counts == 1)  # the NaN rows of items without a clip embedding mean "absent"
        bad = stored[~np.isfinite(clip_arr[stored]).all(axis=1)]
        if bad.size:
            damaged[f"embeddings/{clip_name}/data"] = bad
    if data is None:
        data = np.zeros((0, dim), dtype=clip_arr.dtype)
        offsets = np.zeros(n + 1, dtype=np.int64)
        spans = np.zeros((0, 2))
    out = SegmentSet(data, offsets, spans=spans, clip=clip_arr, ids=ids, sources=sources, sha256s=shas,
                     modality=modality)
    if damaged:
        out = _without_damaged(out, damaged, p, modality)
    return out


def _without_damaged(s: SegmentSet, damaged: dict[str, np.ndarray], path: Path, modality: str) -> SegmentSet:
    """*s* without the items whose embeddings hold NaN or inf; a warning names them.

    Raises
    ------
    FormatError
        When no item is left.
    """
    bad = np.unique(np.concatenate(list(damaged.values())))
    where = ", ".join(f"'{d}'" for d in damaged)
    if len(bad) == len(s):
        raise FormatError(f"every item's {modality} embeddings hold NaN or infinite values ({where}); "
                          "embed the features again", path)
    names = [s.ids[i] for i in bad[:10]]
    more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
    warnings.warn(f"{path}: {len(bad)} item(s) have NaN or infinite {modality} embeddings ({where}) and are left "
                  f"out: {', '.join(names)}{more}", RuntimeWarning, stacklevel=3)
    return s.subset(np.setdiff1d(np.arange(len(s)), bad))


def _read_spans(eg, offsets: np.ndarray, path: Path, name: str) -> np.ndarray:
    rows = int(offsets[-1])
    if "spans" not in eg or "spans_offsets" not in eg:
        # no spans stored: segment k spans [k, k + 1) in "segment units"
        lens = np.diff(offsets)
        k = np.arange(rows) - np.repeat(offsets[:-1], lens)
        return np.stack([k, k + 1.0], axis=1).astype(np.float64)
    spans = eg["spans"][()].astype(np.float64)
    soff = eg["spans_offsets"][()].astype(np.int64)
    if spans.shape != (rows, 2) or soff.shape != offsets.shape or np.any(soff != offsets):
        raise FormatError(f"dataset 'embeddings/{name}/spans' does not match its segments", path)
    return spans


def load_item(path: str | os.PathLike, item_id: str, modality: str) -> SegmentSet:
    """One item of a vmtool file (``file.h5#item-id``) as a one-item set.

    Raises
    ------
    ParameterError
        No such item, or the item lacks *modality*'s embeddings.
    FormatError
        The file has no embeddings.
    """
    p = Path(path)
    clip_name, seg_name = _element_names(modality)
    with open_collection(p) as col:
        have = col.names("embeddings")
        if clip_name not in have and seg_name not in have:
            raise _no_embeddings(col, p, seg_name)
        i = col.index(item_id)
        it = col.item(i)
        segs = spans = clip = None
        if seg_name in have:
            r = col.ragged("embeddings", seg_name)
            segs = np.asarray(r.rows(i))
            sp = r.companion("spans", i)
            spans = np.asarray(sp, dtype=np.float64).reshape(-1, 2) if sp is not None \
                else np.stack([np.arange(len(segs)), np.arange(len(segs)) + 1.0], axis=1)
            if len(spans) != len(segs):
                raise FormatError(f"dataset 'embeddings/{seg_name}/spans' does not match its segments", p)
        if clip_name in have:
            rows = np.asarray(col.ragged("embeddings", clip_name).rows(i))
            clip = rows[0] if len(rows) else None
    if (segs is None or len(segs) == 0) and clip is None:
        raise ParameterError(f"item {item_id!r} has no {modality} embeddings", p)
    for name, x in ((seg_name, segs), (clip_name, clip)):
        if x is not None and not np.isfinite(x).all():
            raise FormatError(f"item {item_id!r} has NaN or infinite values in 'embeddings/{name}/data'", p)
    dim = segs.shape[1] if segs is not None else clip.shape[0]
    if segs is None:
        segs = np.zeros((0, dim), dtype=clip.dtype)
        spans = np.zeros((0, 2))
    clip_row = None if clip is None else clip.reshape(1, -1)
    if clip_row is None:
        clip_row = np.full((1, dim), np.nan, dtype=segs.dtype)
    return SegmentSet(segs, np.array([0, len(segs)]), spans=spans, clip=clip_row, ids=[it.id], sources=[it.source],
                      sha256s=[it.sha256], modality=modality)
