"""Pictures of the structure study: one per clip, one per genre grouping.

Drawn with matplotlib's object API on an Agg canvas (no pyplot, no display), written
atomically like every vmtool output.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from vmtool.atomic import atomic_output

__all__ = ["plot_clip", "plot_groups"]

_LEVEL_COLOURS = {"beat": "tab:blue", "bar": "tab:green", "pattern": "tab:purple"}


def _figure(width: float, height: float, nrows: int, ncols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(nrows * ncols)]
    return fig, axes


def _save(fig, path: str | os.PathLike) -> None:
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")


def _fmt(v: float, digits: int = 2) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def plot_clip(path_png: str | os.PathLike, clip, config) -> None:
    """Write one clip's picture: its shot-duration histogram and ``f_shot(t)``.

    Top: the histogram of shot durations (bins centred on multiples of the bin width)
    with ``D_beat``, ``D_bar`` and ``4 D_bar`` marked (dashed, each with its sync range
    ``0.5 D .. 1.5 D`` shaded) and ``D_shot_max`` (solid red). Bottom: ``f_shot(t)`` at
    25 Hz with the downbeats ``l_bar`` (thin green) and the segment boundaries ``l_seg``
    (thick orange).

    Parameters
    ----------
    path_png : path
    clip : vmtool.structure.clip.ClipResult
    config : vmtool.structure.clip.StructureConfig
    """
    fig, (ax_h, ax_f) = _figure(12.0, 6.0, 2)
    w = float(config.bin_width)
    hist = clip.histogram if clip.histogram is not None else np.zeros(0)
    if hist.size:
        ax_h.bar(np.arange(hist.size) * w, hist, width=w * 0.9, color="0.55", label="shots")
    # the longest shot, and at least the bar's sync range (the pattern's shows when shots reach it)
    right = max((hist.size + 0.5) * w, 1.6 * clip.d_bar if math.isfinite(clip.d_bar) else 0.0)
    for lvl, d in (("beat", clip.d_beat), ("bar", clip.d_bar), ("pattern", 4.0 * clip.d_bar)):
        if math.isfinite(d) and d > 0:
            c = _LEVEL_COLOURS[lvl]
            ax_h.axvspan(0.5 * d, 1.5 * d, color=c, alpha=0.08, lw=0)
            ax_h.axvline(d, color=c, ls="--", lw=1.2,
                         label=f"D_{lvl} = {d:.2f} s" if lvl != "pattern" else f"4 D_bar = {d:.2f} s")
    if math.isfinite(clip.d_shot_max):
        ax_h.axvline(clip.d_shot_max, color="tab:red", lw=1.8, label=f"D_shot_max = {clip.d_shot_max:.2f} s")
    ax_h.set_xlim(0.0, right)
    ax_h.set_xlabel("shot duration (s)")
    ax_h.set_ylabel("shots")
    ax_h.set_title(f"{clip.item.id} - sync level: {clip.sync_level}; S vs chance: "
                   f"l_seg {_fmt(clip.s_seg)} / {_fmt(clip.s_seg_chance)}, "
                   f"l_bar {_fmt(clip.s_bar)} / {_fmt(clip.s_bar_chance)}, "
                   f"beats {_fmt(clip.s_beat)} / {_fmt(clip.s_beat_chance)}", fontsize="medium")
    if ax_h.get_legend_handles_labels()[0]:
        ax_h.legend(loc="upper right", fontsize="small")

    f = clip.f_shot if clip.f_shot is not None else np.zeros(0)
    t = np.arange(f.size) / float(config.rate)
    if f.size:
        ax_f.plot(t, f, color="0.2", lw=0.7, label="f_shot")
    if clip.bars is not None:
        for i, b in enumerate(np.asarray(clip.bars.boundaries)):
            ax_f.axvline(b, color="tab:green", lw=0.6, alpha=0.7, label="l_bar (downbeats)" if i == 0 else None)
    if clip.l_seg is not None:
        for i, b in enumerate(np.asarray(clip.l_seg)):
            ax_f.axvline(b, color="tab:orange", lw=2.0, label="l_seg" if i == 0 else None)
    ax_f.axhline(config.threshold, color="tab:red", lw=0.6, ls=":", label=f"threshold {config.threshold:g}")
    ax_f.set_xlim(0.0, max(float(clip.item.duration), t[-1] if t.size else 1.0))
    ax_f.set_ylim(-0.02, 1.05)
    ax_f.set_xlabel("time (s)")
    ax_f.set_ylabel("f_shot")
    ax_f.legend(loc="upper right", fontsize="small", ncols=4, framealpha=0.8)
    _save(fig, path_png)


def plot_groups(path_png: str | os.PathLike, groups: Sequence, grouping: str) -> None:
    """Write per-genre bar charts: the share of clips at each sync level, and the S scores.

    Left: percent of clips synchronised at beat, bar and pattern level per genre.
    Right: mean ``S(l_seg)``, ``S(l_bar)`` and ``S(l_beat)`` with their 95% confidence intervals
    (error bars) and chance levels (black ticks).

    Parameters
    ----------
    path_png : path
    groups : sequence of vmtool.structure.genres.GroupStats
        The group of all clips first, then the genres (those kept by ``--min-count``).
    grouping : str
        ``music_genre`` or ``video_genre`` (axis labels).
    """
    labels = [f"{g.genre}\n(n={g.n_clips})" for g in groups]
    fig, (ax_l, ax_r) = _figure(max(8.0, 1.6 * len(groups) + 4.0), 4.5, 1, 2)
    x = np.arange(len(groups))
    levels = ("beat", "bar", "pattern")
    bw = 0.8 / len(levels)
    for k, lvl in enumerate(levels):
        ax_l.bar(x + (k - 1) * bw, [g.pct(lvl) for g in groups], width=bw, color=_LEVEL_COLOURS[lvl], label=lvl)
    ax_l.set_xticks(x, labels, fontsize="small")
    ax_l.set_ylabel("% of clips")
    ax_l.set_ylim(0, 100)
    ax_l.set_title(f"synchronisation level by {grouping.replace('_', ' ')}")
    ax_l.legend(fontsize="small")

    bw = 0.27
    for k, (key, colour) in enumerate((("s_seg", "tab:orange"), ("s_bar", "tab:green"), ("s_beat", "tab:blue"))):
        st = [getattr(g, key) for g in groups]
        mean = np.array([s["mean"] for s in st], dtype=float)
        lo = np.array([s["ci_low"] for s in st], dtype=float)
        hi = np.array([s["ci_high"] for s in st], dtype=float)
        err = np.vstack([np.where(np.isfinite(lo), mean - lo, 0.0), np.where(np.isfinite(hi), hi - mean, 0.0)])
        xs = x + (k - 1) * bw
        ax_r.bar(xs, np.nan_to_num(mean), width=bw, color=colour, yerr=err, capsize=3,
                 label=f"S(l_{key[2:]})")
        chance = np.array([s["chance"] for s in st], dtype=float)
        ok = np.isfinite(chance)
        ax_r.plot(xs[ok], chance[ok], "k_", markersize=11, mew=2, label="chance" if k == 0 else None)
    ax_r.set_xticks(x, labels, fontsize="small")
    ax_r.set_ylabel("co-occurrence score S")
    ax_r.set_title("boundary / cut co-occurrence (95% CI)")
    ax_r.legend(fontsize="small")
    _save(fig, path_png)
