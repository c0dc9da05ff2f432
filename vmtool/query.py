"""Queries of ``vmtool rank`` and ``vmtool align``: an item of a vmtool file, or a media file.

``file.h5#item-id`` reads the item's embeddings from that file. A media file is
processed exactly as a catalog's items were (same extractors, segmentation and
model, read from the catalog) by :func:`vmtool.embed.embed_query`. This module sits
above :mod:`vmtool.ranking` (which never reaches into models or extractors).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from vmtool.errors import ParameterError, VmtoolError
from vmtool.progress import Progress
from vmtool.ranking.catalog import catalog_model, load_item, parse_item_ref
from vmtool.ranking.segments import SegmentSet

__all__ = ["load_query", "is_item_ref", "recipe_for", "check_compatible"]


def is_item_ref(spec: str | os.PathLike) -> bool:
    """Whether *spec* is ``file.h5#item-id`` (not a media file)."""
    return parse_item_ref(spec) is not None


def load_query(
    spec: str | os.PathLike,
    modality: str,
    *,
    catalog: str | os.PathLike | None = None,
    device: str = "auto",
    segments: str | None = None,
    progress: Progress | None = None,
) -> SegmentSet:
    """One query's *modality* embeddings as a one-item :class:`SegmentSet`.

    Parameters
    ----------
    spec : str or path
        ``file.h5#item-id``, or a media file.
    modality : {"audio", "video"}
        Which side of the query to use (``video`` for v2m).
    catalog : path, optional
        The catalog whose recipe processes a media query (required for media).
    device : str
        Torch device for processing a media query.
    segments : str, optional
        Segmentation method for a media query instead of the catalog's (e.g.
        ``transnet`` for a video without sound).

    Raises
    ------
    VmtoolError
        No such file or item, the query lacks *modality*, or a media query cannot be
        processed (no catalog recipe, unreadable media).
    """
    ref = parse_item_ref(spec)
    if ref is not None:
        item = load_item(ref[0], ref[1], modality)
        if catalog is not None and Path(catalog).resolve() != ref[0].resolve():
            _warn_if_other_model(ref[0], Path(catalog))
        return item
    path = Path(spec)
    if not path.exists():
        raise VmtoolError("no such file (a query is a media file or file.h5#item-id)", path)
    if path.is_dir():
        raise VmtoolError("is a directory, expected a media file or file.h5#item-id", path)
    if _is_hdf5(path):
        raise ParameterError("is a vmtool file: name one of its items as FILE.h5#ITEM-ID", path)
    if catalog is None:
        raise ParameterError("a media query needs a catalog to be processed like (pass --catalog)", path)
    try:
        from vmtool.embed import embed_query
    except ImportError as exc:  # pragma: no cover - embed ships with vmtool
        raise ParameterError(f"cannot process a media query here ({exc}); use FILE.h5#ITEM-ID", path) from exc
    from vmtool.store import sha256_file

    q = embed_query(path, catalog, device=device, segments=segments, progress=progress)
    segs = q.segments.get(modality)
    clip = q.clip.get(modality)
    if segs is None and clip is None:
        have = sorted(set(q.segments) | set(q.clip))
        raise ParameterError(f"the query has no {modality} embeddings (it has: {', '.join(have) or 'none'})", path)
    dim = (segs if segs is not None else clip[None]).shape[-1]
    if segs is None:
        segs = np.zeros((0, dim), dtype=np.float32)
        spans = np.zeros((0, 2))
    else:
        segs = np.asarray(segs)
        spans = np.asarray(q.spans, dtype=np.float64).reshape(-1, 2)
        if len(spans) != len(segs):
            spans = np.stack([np.arange(len(segs)), np.arange(len(segs)) + 1.0], axis=1)
    clip_row = np.full((1, dim), np.nan, dtype=np.float32) if clip is None else np.asarray(clip).reshape(1, dim)
    return SegmentSet(segs, np.array([0, len(segs)]), spans=spans, clip=clip_row, ids=[path.stem],
                      sources=[str(path)], sha256s=[sha256_file(path)], modality=modality)


def _is_hdf5(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


def recipe_for(query: str | os.PathLike, target: str | os.PathLike,
               catalog: str | os.PathLike | None = None) -> Path | None:
    """The catalog whose recipe processes media sides of an alignment.

    *catalog* when given, else the file of whichever side is ``FILE.h5#ITEM-ID``
    (None when both sides are media: then processing them fails with a clear error).
    """
    if catalog is not None:
        return Path(catalog)
    for spec in (target, query):
        ref = parse_item_ref(spec)
        if ref is not None:
            return ref[0]
    return None


def check_compatible(query: SegmentSet, targets: SegmentSet, where: str | os.PathLike) -> None:
    """Raise a clear error when the query's embeddings cannot be compared with *targets*.

    Raises
    ------
    ParameterError
        Different embedding widths (naming *where*).
    """
    if query.dim != targets.dim:
        raise ParameterError(f"dimension mismatch: the query has {query.dim}-d {query.modality or ''} embeddings, "
                             f"this file {targets.dim}-d ones (embedded by another model?)", where)


def _warn_if_other_model(query_file: Path, catalog: Path) -> None:
    try:
        a, b = catalog_model(query_file), catalog_model(catalog)
    except VmtoolError:
        return
    if a and b and a.get("sha256") and b.get("sha256") and a["sha256"] != b["sha256"]:
        warnings.warn(f"{query_file} and {catalog} were embedded by different models "
                      f"({a.get('name')}, {b.get('name')}): their distances mean little", RuntimeWarning, stacklevel=3)
