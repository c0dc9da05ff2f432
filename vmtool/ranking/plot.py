"""Figures: an alignment (distance matrix with its path) and an evaluation's histograms.

matplotlib runs with the Agg backend (no display needed); files are written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vmtool.atomic import atomic_output, check_output_path
from vmtool.errors import ParameterError
from vmtool.ranking.align import Alignment

__all__ = ["plot_alignment", "alignment_image", "plot_evaluation", "check_plot_path"]


def check_plot_path(path: str | os.PathLike) -> tuple[Path, str]:
    """Check a figure's output path before any computation; return it and its format.

    The format comes from the extension (``.png``, ``.pdf``, ``.svg``... whatever
    matplotlib writes), so a results-losing failure after minutes of ranking becomes
    a refusal up front.

    Raises
    ------
    ParameterError
        No extension, or one matplotlib cannot write (exit 1).
    VmtoolError
        The path's directory is missing or not writable, or the path is a directory.
    """
    from matplotlib.backend_bases import FigureCanvasBase

    out = check_output_path(path)
    known = sorted(FigureCanvasBase.get_supported_filetypes())
    ext = out.suffix.lower().lstrip(".")
    if ext not in known:
        what = f"unknown figure format {out.suffix!r}" if ext else "no figure format (the name has no extension)"
        raise ParameterError(f"{what}; use one of: {', '.join('.' + k for k in known)}", out)
    return out, ext


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _alignment_figure(plt, al: Alignment, title: str | None, query_label: str, target_label: str):
    kq, kc = al.distance_matrix.shape
    fig, ax = plt.subplots(figsize=(min(12, 2.5 + 0.35 * kc), min(10, 2.0 + 0.35 * kq)), dpi=100)
    try:
        im = ax.imshow(al.distance_matrix, cmap="magma", origin="upper", aspect="auto", interpolation="nearest")
        fig.colorbar(im, ax=ax, label="distance between segments")
        if len(al.path):
            ax.plot(al.path[:, 1], al.path[:, 0], "o-", color="#2ec4b6", lw=2, ms=5, label="optimal path")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_xlabel(f"{target_label} segment")
        ax.set_ylabel(f"{query_label} segment")
        ax.set_title(title or f"{al.method.label}: distance {al.distance:.4g}", fontsize=10)
        fig.tight_layout()
    except BaseException:
        plt.close(fig)
        raise
    return fig


def plot_alignment(al: Alignment, path: str | os.PathLike, *, title: str | None = None,
                   query_label: str = "query", target_label: str = "target") -> Path:
    """Draw the Euclidean distance matrix of *al* with its optimal path; write *path* (PNG...)."""
    plt = _pyplot()
    fig = _alignment_figure(plt, al, title, query_label, target_label)
    try:
        out, fmt = check_plot_path(path)
        with atomic_output(out) as tmp:
            fig.savefig(tmp, format=fmt)  # the temporary name's extension says nothing
    finally:
        plt.close(fig)
    return out


def alignment_image(al: Alignment, *, fmt: str = "png", dpi: float = 100, title: str | None = None,
                    query_label: str = "query", target_label: str = "target") -> bytes:
    """The picture of :func:`plot_alignment` as the bytes of a *fmt* file (for a page that embeds it)."""
    import io

    plt = _pyplot()
    fig = _alignment_figure(plt, al, title, query_label, target_label)
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi)
    finally:
        plt.close(fig)
    return buf.getvalue()


def plot_evaluation(ev, path: str | os.PathLike) -> Path:
    """Histograms of the distances of matching and non-matching pairs, one panel per
    method (rows) and direction/scenario (columns), with the ground truth's rank."""
    plt = _pyplot()
    cols = [(d, s) for d in ev.directions for s in ev.scenarios]
    rows = [m.label for m in ev.methods]
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(3.6 * len(cols), 2.3 * len(rows)), dpi=90,
                             squeeze=False)
    try:
        for r, method in enumerate(rows):
            for c, (direction, scenario) in enumerate(cols):
                ax = axes[r][c]
                sc = ev.score(method, direction, scenario, ev.hubness[0])
                other = sc.other_distances[np.isfinite(sc.other_distances)]
                gt = sc.gt_distances[np.isfinite(sc.gt_distances)]
                if other.size or gt.size:
                    # the range of the ground truth, and of the other pairs without their extreme 0.2 %
                    ends = ([np.percentile(other, 0.1), np.percentile(other, 99.9)] if other.size else []) + \
                        ([gt.min(), gt.max()] if gt.size else [])
                    lo, hi = float(min(ends)), float(max(ends))
                    bins = np.linspace(lo, hi if hi > lo else lo + 1e-9, 40)
                    ax.hist(other[(other >= lo) & (other <= hi)], bins=bins, density=True, color="0.6",
                            label="other pairs")
                    ax.hist(gt, bins=bins, density=True, color="#e4572e", alpha=0.7, label="ground truth")
                m = sc.metrics
                ax.set_title(f"{method} · {direction} · {scenario}\nmedian rank {m['median_rank']:g}, "
                             f"R@10 {m['r10']:.1f}%", fontsize=8)
                ax.tick_params(labelsize=7)
                if r == len(rows) - 1:
                    ax.set_xlabel("distance", fontsize=8)
                if r == 0 and c == 0:
                    ax.legend(fontsize=7)
        fig.suptitle(f"{ev.n_items} items: distances of matching and non-matching pairs", fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 0.97))
        out, fmt = check_plot_path(path)
        with atomic_output(out) as tmp:
            fig.savefig(tmp, format=fmt)  # the temporary name's extension says nothing
    finally:
        plt.close(fig)
    return out
