"""The best section of a track for a video: where the music should start and end under it.

An editor placing a recommended track needs a start time, not only a distance. The
alignment that ranked the track already says which part of it matched: the path of
SW-DTW's local alignment, NW-DTW's global one, or btrace/trace's best diagonal. The
section starts where the video's first moment falls on the track along that path
(the first matched target segment's start, moved back by the query time before its
matched segment), lasts the video's length (or ``--length``), is moved back inside the
track when it would run past the end, and starts on a beat:

- the bars' downbeats or the beats stored in the catalog (``vmtool segment -m bars`` or
  ``-m beats``), when present;
- otherwise the measured beat grid of ``vmtool extract`` (``measured_bpm`` and
  ``measured_beat_offset`` in ``/metadata``);
- otherwise the start is not snapped (``snap`` = ``none``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from vmtool.errors import ParameterError

__all__ = ["Section", "beat_times", "place_section"]


@dataclass
class Section:
    """Where the track should play under the video.

    Attributes
    ----------
    start, end : float
        Seconds in the track.
    snap : str
        What the start was snapped to: ``bars``, ``beats``, ``measured-grid`` or ``none``.
    """

    start: float
    end: float
    snap: str

    def to_dict(self) -> dict[str, Any]:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "snap": self.snap}


def beat_times(col, index: int) -> tuple[np.ndarray | None, str]:
    """The beat times of item *index* of an open collection, and where they came from."""
    segs = col.names("segmentations")
    if "bars" in segs:
        g = col.ragged("segmentations", "bars")
        if g.present(index):
            rows = np.asarray(g.rows(index), dtype=np.float64)
            if len(rows):
                return np.concatenate([[0.0], rows]) if rows[0] > 0 else rows, "bars"
    if "beats" in segs:
        g = col.ragged("segmentations", "beats")
        if g.present(index):
            rows = np.asarray(g.rows(index), dtype=np.float64)
            if len(rows):
                return rows, "beats"
    meta = col.metadata()
    bpm, off = meta.value(index, "measured_bpm"), meta.value(index, "measured_beat_offset")
    if bpm and off is not None and bpm > 0:
        duration = float(col.column("duration")[index])
        period = 60.0 / bpm
        return off + period * np.arange(0, max(1, int(math.ceil((duration - off) / period)) + 1)), "measured-grid"
    return None, "none"


def place_section(alignment, query_spans: np.ndarray | None, length: float, duration: float,
                  beats: np.ndarray | None = None, snap: str = "none") -> Section | None:
    """The section of the target under a query of *length* seconds.

    Parameters
    ----------
    alignment : vmtool.ranking.Alignment
        With the target's segment spans.
    query_spans : np.ndarray [shape=(Kq, 2)], optional
        The query's segment spans, seconds (without them the video is taken to start
        at its first matched segment).
    length : float
        Seconds the music must cover (the video's length).
    duration : float
        The track's length; a section never runs past it (it is shorter than *length*
        only when the whole track is).
    beats : np.ndarray, optional
        Candidate start times; the start moves to the nearest one that keeps the section
        inside the track.
    snap : str
        What *beats* are (``bars``, ``beats``, ``measured-grid``), reported.

    Returns
    -------
    Section or None
        None when the alignment matched nothing or has no time spans.
    """
    if not (length > 0 and math.isfinite(length)):
        raise ParameterError(f"--length must be a positive number of seconds, got {length!r}")
    path = alignment.path
    if len(path) == 0 or alignment.target_spans is None:
        return None
    i0, j0 = (int(x) for x in path[0])
    q_before = float(np.asarray(query_spans)[i0, 0]) if query_spans is not None else 0.0
    start = float(alignment.target_spans[j0, 0]) - q_before
    latest = max(0.0, duration - length)
    start = min(max(0.0, start), latest)
    used = "none"
    if beats is not None and len(beats):
        ok = beats[(beats >= 0) & (beats <= latest + 1e-9)]
        if len(ok):
            start = float(ok[np.argmin(np.abs(ok - start))])
            used = snap
    return Section(start, min(duration, start + length), used)


def sections(ranking, query, catalog, path, length: float | None = None) -> list[Section | None]:
    """The best section of each result of *ranking* (``vmtool rank``'s ``section``).

    Parameters
    ----------
    ranking : Ranking
        Results of :func:`vmtool.ranking.rank`; alignment methods carry their alignment,
        other segment-level methods get btrace's best diagonal for their results.
    query, catalog : SegmentSet
        The one-item query and the targets ranked.
    path : path
        The catalog file (its beats, bars or measured beat grid).
    length : float, optional
        Seconds to cover; default the query's length (the end of its last segment).

    Returns
    -------
    list of Section or None
        None for a result without segment embeddings (method ``clip``).
    """
    from vmtool.ranking.align import align
    from vmtool.store import open_collection

    qspans = query.spans_of(0)
    if length is None:
        if qspans is None or not len(qspans):
            return [None] * len(ranking.results)
        length = float(qspans[-1, 1])
    out: list[Section | None] = []
    with open_collection(path) as col:
        for r in ranking.results:
            al = r.alignment
            if al is None:
                if ranking.method.level != "segment" or catalog.lengths[r.index] == 0:
                    out.append(None)
                    continue
                al = align(query.segments(0), catalog.segments(r.index), "btrace", query_spans=qspans,
                           target_spans=catalog.spans_of(r.index))
            beats, kind = beat_times(col, r.index)
            duration = float(col.column("duration")[r.index])
            out.append(place_section(al, qspans, length, duration, beats, kind))
    return out
