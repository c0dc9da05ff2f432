"""Labels for training: emotion classes, prototype classes, polarities and known negatives per item.

DPVM's emotion path (eq. 4) needs the emotion class of each pair's video and music;
the polarity-penalty metric loss (eqs. 10-12) a numeric polarity per pair; DPVM's
contrastive loss (eq. 2) takes the collection's known mismatched pairs as further
``Y = 1`` pairs. This module reads them from a collection's ``/labels`` and
``/negatives`` (``vmtool label``) into per-item arrays the training loop indexes.
"""

from __future__ import annotations

import numpy as np

from vmtool.errors import ParameterError
from vmtool.labels import label_column, labels_as_text

__all__ = ["emotion_classes", "label_classes", "polarities", "negative_pairs"]


def _emotion_columns(coll, video: str, music: str) -> tuple[str, str]:
    """The columns holding the video's and the music's emotion; ``emotion`` serves both when
    the per-modality columns are absent."""
    names = coll.label_names()
    if video not in names and music not in names and "emotion" in names:
        return "emotion", "emotion"
    return video, music


def emotion_classes(coll, video: str, music: str, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Class index per item of the video's and the music's emotion (-1: no value), and the class names.

    Classes are the sorted union of both columns' values over *items* (the training
    items). Raises ParameterError naming the file and column when a column is absent,
    numeric, or has no value on any of *items*.
    """
    vcol, mcol = _emotion_columns(coll, video, music)
    cols = {}
    for name in dict.fromkeys((vcol, mcol)):
        try:
            arr = label_column(coll, name)
        except ParameterError as exc:
            raise ParameterError(f"{exc.reason}; DPVM's emotion path (eq. 4) needs the emotion class of every "
                                 f"video and music (or train with --fusion content)", coll.path) from None
        arr = labels_as_text(arr)
        if not (arr[items] != "").any():
            raise ParameterError(f"label column {name!r} has no value for any training item", coll.path)
        cols[name] = arr
    classes = sorted({str(x) for name in cols for x in cols[name][items] if x != ""})
    index = {c: k for k, c in enumerate(classes)}

    def to_idx(arr: np.ndarray) -> np.ndarray:
        return np.array([index.get(str(x), -1) for x in arr], dtype=np.int64)

    return to_idx(cols[vcol]), to_idx(cols[mcol]), classes


def label_classes(coll, column: str, use: np.ndarray, source=None) -> tuple[np.ndarray, list[str]]:
    """Classes from a label column: ``(class index per item, class names)``.

    Every item of *use* must have a value; items outside it may lack one (-1).

    Raises
    ------
    ParameterError
        The file has no such column (naming file and column), or a used item has no value.
    """
    values = labels_as_text(label_column(coll, column))
    missing = [coll.ids[int(i)] for i in use if values[int(i)] == ""]
    if missing:
        raise ParameterError(f"label column {column!r} has no value for {len(missing)} item(s), e.g. "
                             f"{missing[0]!r}; its classes are the prototypes of the cosface loss", source)
    names, inv = np.unique(values, return_inverse=True)
    out = inv.astype(np.int64)
    out[values == ""] = -1
    return out, [str(x) for x in names]


def polarities(coll, column: str, items: np.ndarray) -> np.ndarray:
    """Numeric polarity per item (float64); every one of *items* must have one.

    Raises ParameterError naming the file and the column when it is absent, not numeric,
    or lacks a value for a training item (the first such item is named).
    """
    why = "; the polarity-penalty metric loss (eqs. 10-12) needs a polarity per item"
    try:
        arr = label_column(coll, column, numeric=True)
    except ParameterError as exc:
        raise ParameterError(exc.reason + why, coll.path) from None
    missing = items[np.isnan(arr[items])]
    if missing.size:
        raise ParameterError(f"label column {column!r} has no value for {missing.size} training item(s), e.g. "
                             f"{coll.ids[int(missing[0])]!r}{why}", coll.path)
    return arr


def negative_pairs(coll, items: np.ndarray) -> np.ndarray:
    """Known mismatched pairs among *items*: ``(k, 2)`` int64 of (video item, music item) indices."""
    where = {x: i for i, x in enumerate(coll.ids)}
    keep = set(int(i) for i in items)
    pairs = [(where[v], where[m]) for v, m in coll.negatives()
             if v in where and m in where and where[v] in keep and where[m] in keep]
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
