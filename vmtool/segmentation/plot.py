"""A picture of one segmentation: its curve, its boundaries, its labels, a reference.

Drawn with matplotlib's object API (:class:`matplotlib.figure.Figure` on an Agg
canvas): pyplot and its global figure registry are never touched, so plotting is safe
in threads and leaves no state behind; no display is needed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

import numpy as np

from vmtool.atomic import atomic_output
from vmtool.errors import ParameterError
from vmtool.segmentation.base import Segmentation, segment_edges

__all__ = ["plot_segmentation", "MAX_CURVE_POINTS"]

#: longer curves are reduced to this many points (block maxima, so peaks survive)
MAX_CURVE_POINTS = 20_000


def _reduce(curve: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Times (s) and values of *curve*, reduced to at most MAX_CURVE_POINTS by block maxima."""
    n = curve.size
    if n <= MAX_CURVE_POINTS:
        return np.arange(n) / rate, curve
    block = math.ceil(n / MAX_CURVE_POINTS)
    m = math.ceil(n / block)
    padded = np.full(m * block, -np.inf)
    padded[:n] = curve
    return (np.arange(m) * block + block / 2) / rate, padded.reshape(m, block).max(axis=1)


def plot_segmentation(
    path_png: str | os.PathLike,
    seg: Segmentation,
    *,
    title: str = "",
    reference: Iterable[float] | None = None,
    width: float = 12.0,
    height: float = 3.0,
    dpi: int = 100,
) -> None:
    """Write a PNG of *seg*: curve over time, boundaries, labelled segments, a reference.

    Solid vertical lines mark ``seg.boundaries``; dashed ones the *reference*
    boundaries (times outside ``(0, duration)`` are not drawn). When ``seg.labels`` is
    set, each segment is a coloured span, one colour per label (a legend lists them).
    Without a curve the axes show only the time line.

    Parameters
    ----------
    path_png : str or os.PathLike
        Output file; written atomically (a temporary file then :func:`os.replace`).
    seg : Segmentation
    title : str
        Figure title.
    reference : array-like of float, optional
        Reference boundary times in seconds.
    width, height : float
        Figure size in inches.
    dpi : int
        Pixels per inch.

    Raises
    ------
    ParameterError
        A non-positive size or dpi.
    VmtoolError
        The output directory does not exist or is not writable.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not (width > 0 and height > 0 and dpi > 0):
        raise ParameterError(f"width, height and dpi must be positive, got {width!r}, {height!r}, {dpi!r}")
    duration = float(seg.duration)
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)

    if seg.labels is not None and len(seg.labels) == len(seg.boundaries) + 1:
        cmap = _colours()
        uniq = list(dict.fromkeys(int(x) for x in seg.labels))
        shown: set[int] = set()
        for (a, b), lab in zip(segment_edges(seg.boundaries, duration), seg.labels):
            lab = int(lab)
            ax.axvspan(a, b, color=cmap[uniq.index(lab) % len(cmap)], alpha=0.25, lw=0,
                       label=None if lab in shown else f"label {lab}")
            shown.add(lab)

    curve = None if seg.curve is None else np.asarray(seg.curve, dtype=np.float64).reshape(-1)
    rate = float(seg.curve_rate)
    if curve is not None and curve.size and math.isfinite(rate) and rate > 0:
        t, v = _reduce(curve, rate)
        ax.plot(t, v, color="0.2", lw=0.8)
        ax.set_ylabel("curve")
    else:
        ax.set_yticks([])

    for i, b in enumerate(np.asarray(seg.boundaries, dtype=np.float64)):
        ax.axvline(b, color="tab:red", lw=1.0, label="boundaries" if i == 0 else None)
    if reference is not None:
        ref = np.asarray(list(reference), dtype=np.float64).reshape(-1)
        ref = ref[np.isfinite(ref) & (ref > 0) & (ref < duration)]
        for i, b in enumerate(ref):
            ax.axvline(b, color="tab:blue", lw=1.0, ls="--", label="reference" if i == 0 else None)

    ax.set_xlim(0.0, duration)
    ax.set_xlabel("time (s)")
    if title:
        ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize="small", ncols=4, framealpha=0.8)
    fig.tight_layout()
    with atomic_output(path_png) as tmp:
        fig.savefig(tmp, format="png")


def _colours() -> list:
    """The tab20 palette (20 colours)."""
    from matplotlib import colormaps

    return [colormaps["tab20"](i) for i in range(20)]
