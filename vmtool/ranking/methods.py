"""The ranking methods: names, defaults, and the ``name[:indel]`` syntax.

A method compares a query (a sequence of segment embeddings, or one clip embedding)
with a target and returns a *distance*: the smaller, the better the match. The
definitions are in ``docs/methods-ranking.md``.

==========  ========  =============================================================
name        level     distance
==========  ========  =============================================================
clip        clip      Euclidean distance between the two clip embeddings
centroid    segment   Euclidean distance between the normalised means of the segment
                      embeddings (the centroids' directions)
single      segment   single linkage: the smallest Euclidean distance between a
                      query segment and a target segment
complete    segment   complete linkage: the largest such distance
trace       segment   minus the mean similarity along the main diagonal
btrace      segment   minus the best such mean over the diagonal offsets that keep
                      the shorter sequence inside the longer one
nw-dtw      segment   minus the global alignment score (Needleman-Wunsch style
                      dynamic time warping), indel 0.05
sw-dtw      segment   minus the local alignment score (Smith-Waterman style), indel 0.01
==========  ========  =============================================================

Similarities are dot products (cosines of unit vectors).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vmtool.errors import ParameterError

__all__ = [
    "METHODS",
    "ALIGNMENT_METHODS",
    "DEFAULT_INDEL",
    "Method",
    "parse_method",
    "parse_methods",
]

#: every method, in the order of the paper's tables
METHODS: tuple[str, ...] = ("clip", "centroid", "single", "complete", "trace", "btrace", "nw-dtw", "sw-dtw")

#: methods that align the two sequences (they give a path, an edit list and a matched span)
ALIGNMENT_METHODS: tuple[str, ...] = ("trace", "btrace", "nw-dtw", "sw-dtw")

#: default insertion/deletion penalty of the dynamic-programming methods
DEFAULT_INDEL: dict[str, float] = {"nw-dtw": 0.05, "sw-dtw": 0.01}

DESCRIPTIONS: dict[str, str] = {
    "clip": "Euclidean distance between clip embeddings",
    "centroid": "Euclidean distance between the normalised means of the segment embeddings",
    "single": "single linkage: closest pair of segments",
    "complete": "complete linkage: farthest pair of segments",
    "trace": "mean similarity along the main diagonal (negated)",
    "btrace": "best trace over diagonal offsets (negated)",
    "nw-dtw": "global alignment score, Needleman-Wunsch style DTW (negated)",
    "sw-dtw": "local alignment score, Smith-Waterman style DTW (negated)",
}


@dataclass(frozen=True)
class Method:
    """A ranking method and its parameter.

    Attributes
    ----------
    name : str
        One of :data:`METHODS`.
    indel : float or None
        Insertion/deletion penalty (``nw-dtw`` and ``sw-dtw`` only; None elsewhere).
    """

    name: str
    indel: float | None = None

    def __post_init__(self) -> None:
        if self.name not in METHODS:
            raise ParameterError(f"unknown method {self.name!r}; methods: {', '.join(METHODS)}")
        if self.name in DEFAULT_INDEL:
            if self.indel is None:
                object.__setattr__(self, "indel", DEFAULT_INDEL[self.name])
            elif not (math.isfinite(self.indel) and self.indel >= 0):
                raise ParameterError(f"{self.name}: the indel penalty must be a number >= 0, got {self.indel!r}")
        elif self.indel is not None:
            raise ParameterError(f"method {self.name!r} takes no indel penalty (only nw-dtw and sw-dtw do)")

    @property
    def label(self) -> str:
        """The name, with ``:indel`` when the penalty is not the default."""
        if self.name in DEFAULT_INDEL and self.indel != DEFAULT_INDEL[self.name]:
            return f"{self.name}:{self.indel:g}"
        return self.name

    @property
    def level(self) -> str:
        """``clip`` or ``segment``: which embeddings the method compares."""
        return "clip" if self.name == "clip" else "segment"

    @property
    def aligns(self) -> bool:
        """Whether the method aligns the sequences (path, edit list, matched span)."""
        return self.name in ALIGNMENT_METHODS

    def __str__(self) -> str:
        return self.label


def parse_method(spec: str | Method) -> Method:
    """A :class:`Method` from ``name`` or ``name:indel`` (e.g. ``nw-dtw:0.1``).

    Raises
    ------
    ParameterError
        Unknown name, or an indel penalty that is not a number >= 0 or not allowed.
    """
    if isinstance(spec, Method):
        return spec
    text = str(spec).strip().lower()
    name, sep, value = text.partition(":")
    indel = None
    if sep:
        try:
            indel = float(value)
        except ValueError:
            raise ParameterError(f"invalid method {spec!r}: the indel penalty {value!r} is not a number") from None
    return Method(name.strip(), indel)


def parse_methods(specs: str | Iterable[str] | Sequence[Method]) -> list[Method]:
    """Methods from a comma-separated list (``"trace,nw-dtw:0.1"``) or ``"all"``.

    Repeated methods are kept once, in the order given; ``all`` expands to
    :data:`METHODS` with their default parameters.
    """
    if isinstance(specs, str):
        specs = [specs]
    out: list[Method] = []
    for spec in specs:
        parts = [spec] if isinstance(spec, Method) else [p for p in str(spec).split(",") if p.strip()]
        for p in parts:
            if not isinstance(p, Method) and p.strip().lower() == "all":
                ms = [Method(n) for n in METHODS]
            else:
                ms = [parse_method(p)]
            for m in ms:
                if m not in out:
                    out.append(m)
    if not out:
        raise ParameterError("no ranking method given")
    return out
