"""The catalog side of the rhythm fit, and how its distance joins a learned one.

The rhythm fit (``vmtool rank -m rhythm``; the score is defined in
``docs/methods-ranking.md`` and computed by :mod:`vmtool.structure.rhythm_fit`)
compares a video's cutting rhythm with each track's beat grid. This module holds what
the ranking layer needs of it, with no model and no media:

- :func:`track_grids`: each track's beats and beats per bar, as the catalog holds them
  (``vmtool segment -m bars``, else ``-m beats``, else the beat grid ``vmtool extract``
  measures), and :func:`require_grids`, the one-line error naming the command that adds
  them;
- :func:`zscore` and :func:`combine`: ``name+rhythm:W`` adds the two distances after
  z-scoring each over the candidates;
- :func:`rank_rhythm`: a :class:`~vmtool.ranking.rank.Ranking` from rhythm distances alone.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from vmtool.errors import ParameterError, VmtoolError

__all__ = ["DEFAULT_BEATS_PER_BAR", "TrackGrid", "track_grids", "require_grids", "zscore", "combine",
           "rank_rhythm"]

#: beats per bar where the catalog says nothing about the metre (beats or a measured tempo only)
DEFAULT_BEATS_PER_BAR = 4


@dataclass(frozen=True)
class TrackGrid:
    """A track's beats, as its catalog holds them.

    Attributes
    ----------
    beats : np.ndarray [shape=(n,), dtype=float64]
        Beat times in seconds, increasing, from the start of the track.
    beats_per_bar : int
        From ``bars`` (estimated or given to ``segment --beats-per-bar``), else
        :data:`DEFAULT_BEATS_PER_BAR`.
    source : str
        ``bars``, ``beats`` or ``measured-grid``.
    """

    beats: np.ndarray
    beats_per_bar: int
    source: str


def _grid(col, index: int, segs: list[str]) -> TrackGrid | None:
    from vmtool.ranking.section import beat_times

    if "bars" in segs:
        g = col.ragged("segmentations", "bars")
        if g.present(index):
            beats, bpb = g.companion("beat_times", index), g.companion("beats_per_bar", index)
            if beats is not None and len(beats) >= 2:
                b = int(bpb[0]) if bpb is not None and len(bpb) and int(bpb[0]) >= 1 else DEFAULT_BEATS_PER_BAR
                return TrackGrid(np.asarray(beats, dtype=np.float64), b, "bars")
    times, kind = beat_times(col, index)  # bars without their beats: the downbeats, one "beat" per bar
    if times is None or len(times) < 2:
        return None
    return TrackGrid(np.asarray(times, dtype=np.float64), 1 if kind == "bars" else DEFAULT_BEATS_PER_BAR, kind)


def track_grids(path: str | os.PathLike) -> tuple[list[str], list[TrackGrid | None]]:
    """Every item's id and beat grid (None without beats or without audio).

    Parameters
    ----------
    path : path
        A vmtool collection or catalog.

    Returns
    -------
    ids : list of str
        The items, in the file's order.
    grids : list of TrackGrid or None
    """
    from vmtool.store import open_collection

    with open_collection(path) as col:
        segs = col.names("segmentations")
        items = col.items()
        grids = [_grid(col, i, segs) if it.has_audio else None for i, it in enumerate(items)]
    return [it.id for it in items], grids


def require_grids(grids, path: str | os.PathLike) -> None:
    """Raise the error a user sees when no track of *path* has beats.

    Raises
    ------
    VmtoolError
        Naming the file, what is missing, and the command that adds it.
    """
    if not any(g is not None for g in grids):
        raise VmtoolError(f"no track has beat times, which method rhythm needs: add them with "
                          f"'vmtool segment {path} -m bars -o {path}' (or re-extract: extract measures a beat grid)",
                          path)


def zscore(d: np.ndarray) -> np.ndarray:
    """*d* minus its mean, over its standard deviation, both taken over its finite values.

    NaN stays NaN; when the finite values are all equal (or fewer than two) they become 0.

    Examples
    --------
    >>> zscore(np.array([1.0, 2.0, 3.0, np.nan])).round(4).tolist()
    [-1.2247, 0.0, 1.2247, nan]
    """
    d = np.asarray(d, dtype=np.float64)
    out = np.full(d.shape, np.nan)
    ok = np.isfinite(d)
    if ok.any():
        v = d[ok]
        sd = float(v.std())
        out[ok] = (v - v.mean()) / sd if sd > 0 else 0.0
    return out


def combine(learned: np.ndarray, rhythm: np.ndarray, weight: float) -> np.ndarray:
    """The distance of ``name+rhythm:W``: ``zscore(learned) + W * zscore(rhythm)``.

    Both are z-scored over the same candidates: the targets where both are finite (a
    target without one of them is left out, NaN). z-scores put a learned distance
    (whose scale depends on the model and the method) and the rhythm distance (in
    [0, 1]) on one scale, the spread of this query's candidates, so *W* means the same
    whatever the model.

    Examples
    --------
    >>> combine(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 0.0]), 1.0).round(3).tolist()
    [0.189, -0.707, 0.518]
    """
    a = np.asarray(learned, dtype=np.float64)
    b = np.asarray(rhythm, dtype=np.float64)
    if a.shape != b.shape:
        raise ParameterError(f"{a.shape[0] if a.ndim else 0} learned distances for {b.shape[0] if b.ndim else 0} "
                             "rhythm distances")
    both = np.isfinite(a) & np.isfinite(b)
    out = np.full(a.shape, np.nan)
    out[both] = zscore(a[both]) + float(weight) * zscore(b[both])
    return out


def rank_rhythm(d: np.ndarray, ids, sources, *, k: int = 10, exclude: np.ndarray | None = None,
                seconds: float = 0.0):
    """A :class:`~vmtool.ranking.rank.Ranking` of method ``rhythm`` from its distances.

    Parameters
    ----------
    d : np.ndarray [shape=(n,)]
        Rhythm distances (NaN: a track without beats, never returned).
    ids, sources : sequence of str
        The targets' ids and media paths.
    exclude : np.ndarray [shape=(n,), dtype=bool], optional
        Targets never to return (``--where``, ``--exclude-self``).
    seconds : float
        Time spent on the query (reported).
    """
    from vmtool.ranking.methods import RHYTHM, Method
    from vmtool.ranking.rank import Ranked, Ranking, top_k

    if k < 1:
        raise ParameterError(f"k must be >= 1, got {k}")
    t0 = time.perf_counter()
    d = np.array(d, dtype=np.float64)
    usable = np.isfinite(d)
    excluded = 0
    if exclude is not None:
        exclude = np.asarray(exclude, dtype=bool)
        excluded = int((exclude & usable).sum())
        usable &= ~exclude
    d[~usable] = np.nan
    results = [Ranked(r, int(i), ids[i], sources[i], float(d[i])) for r, i in enumerate(top_k(d, k), start=1)]
    return Ranking(Method(RHYTHM), results, len(d), int(usable.sum()), None, excluded,
                   seconds + time.perf_counter() - t0)
