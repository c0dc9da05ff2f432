"""The study's aggregates: the clips grouped by music or video genre, with their means and intervals."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vmtool.errors import ParameterError
from vmtool.structure import scores
from vmtool.structure.clip import SCORES, ClipResult, _plain

__all__ = ["GROUPINGS", "GroupStats", "aggregate"]

#: the groupings of the aggregates
GROUPINGS = ("music_genre", "video_genre")


@dataclass
class GroupStats:
    """Aggregates of the clips of one genre (or of all clips).

    ``n_<level>``/``pct_<level>``: clips at each synchronisation level and their share
    of ``n_clips`` in percent. ``s_seg``/``s_bar``/``s_beat``: ``{"mean", "ci_low",
    "ci_high", "n", "chance"}`` over the clips where the score is defined; ``ci_*`` is
    the 95% Student-t interval of the mean, ``chance`` the mean of the clips' chance
    levels. ``s_bar_free`` also holds ``offset_bars``, the circular mean of the clips'
    best offsets as a fraction of their bar (in ``[-0.5, 0.5)``), and ``offset_r``, the
    length of that mean vector (1: every clip at the same phase; near 0: no common phase).
    """

    grouping: str  # "all", "music_genre" or "video_genre"
    genre: str
    n_clips: int
    counts: dict[str, int]
    s_seg: dict[str, float]
    s_bar: dict[str, float]
    s_beat: dict[str, float] = field(default_factory=dict)
    s_bar_free: dict[str, float] = field(default_factory=dict)

    def pct(self, level: str) -> float:
        return 100.0 * self.counts.get(level, 0) / self.n_clips if self.n_clips else math.nan

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"grouping": self.grouping, "genre": self.genre, "n_clips": self.n_clips}
        for lvl in (*scores.SYNC_LEVELS, "none", "unknown"):
            d[f"n_{lvl}"] = self.counts.get(lvl, 0)
            d[f"pct_{lvl}"] = _plain(round(self.pct(lvl), 4))
        for key in SCORES:
            for k, v in getattr(self, key).items():
                d[f"{key}_{k}"] = _plain(v)
        return d


def aggregate(clips: Sequence[ClipResult], by: str | None = None, *, min_count: int = 1
              ) -> tuple[list[GroupStats], list[tuple[str, int]]]:
    """Per-genre aggregates of the analysed clips (failed clips are left out).

    Parameters
    ----------
    clips : sequence of ClipResult
    by : str or None
        ``music_genre``, ``video_genre``, or None for one group of all clips.
    min_count : int
        Genres with fewer clips are left out (not the group of all clips).

    Returns
    -------
    groups : list of GroupStats
        Largest genre first (then by name).
    omitted : list of (genre, n_clips)
        The genres left out.
    """
    ok = [c for c in clips if not c.failed]
    if by is None:
        buckets = {"all": ok}
    else:
        if by not in GROUPINGS:
            raise ParameterError(f"unknown grouping {by!r}; use {', '.join(GROUPINGS)}")
        buckets: dict[str, list[ClipResult]] = {}
        for c in ok:
            buckets.setdefault(str(getattr(c, by)), []).append(c)
    groups, omitted = [], []
    for genre, members in sorted(buckets.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        if by is not None and len(members) < min_count:
            omitted.append((genre, len(members)))
            continue
        counts: dict[str, int] = {}
        for c in members:
            counts[c.sync_level] = counts.get(c.sync_level, 0) + 1
        stats = {}
        for key in SCORES:
            vals = np.array([getattr(c, key) for c in members], dtype=np.float64)
            chance = np.array([getattr(c, f"{key}_chance") for c in members], dtype=np.float64)
            m, lo, hi, n = scores.mean_ci(vals)
            ok_c = np.isfinite(vals) & np.isfinite(chance)
            stats[key] = {"mean": m, "ci_low": lo, "ci_high": hi, "n": n,
                          "chance": float(chance[ok_c].mean()) if ok_c.any() else math.nan}
        stats["s_bar_free"].update(_offset_phase(members))
        groups.append(GroupStats(by or "all", genre, len(members), counts, **stats))
    return groups, omitted


def _offset_phase(clips: Sequence[ClipResult]) -> dict[str, float]:
    """Circular mean of the phase-free offsets, in bars, and its resultant length."""
    phases = []
    for c in clips:
        period = c.d_bar
        if math.isfinite(c.s_bar_free_offset) and math.isfinite(period) and period > 0:
            phases.append(c.s_bar_free_offset / period)
    if not phases:
        return {"offset_bars": math.nan, "offset_r": math.nan}
    z = np.exp(2j * np.pi * np.asarray(phases)).mean()
    mean = float(np.angle(z) / (2 * np.pi))
    return {"offset_bars": -0.5 if mean >= 0.5 else mean, "offset_r": float(abs(z))}
