"""The ranking methods: names, defaults, and the ``name[:indel]`` syntax.

A method compares a query (a sequence of segment embeddings, or one clip embedding)
with a target and returns a *distance*: the smaller, the better the match. The
definitions are in ``docs/methods-ranking.md``.

The paper's definitions (Seg-VM-Net, Prétet et al. 2023, section IV-D) carry the
paper's names; vmtool's normalised variants carry names of their own.

=============  ========  ==========================================================
name           level     distance
=============  ========  ==========================================================
clip           clip      Euclidean distance between the two clip embeddings (VM-Net)
centroid       segment   squared Euclidean distance between the raw means of the
                         segment embeddings (paper)
single         segment   single linkage: the smallest squared Euclidean distance
                         between a query segment and a target segment (paper)
complete       segment   complete linkage: the largest such distance (paper)
trace          segment   sum of the squared distances along the main diagonal, over
                         min(Kc, Kq) pairs (paper)
btrace         segment   the smallest such sum over the diagonals that keep the shorter
                         sequence inside the longer one (paper)
nw-dtw         segment   minus the global alignment score, Algorithm 1, indel 0.05
sw-dtw         segment   minus the local alignment score, Algorithm 2, indel 0.01
head           clip      BCE models: minus the logit of the model's pair classifier
rhythm         -         vmtool: tempo and metre fit of a track to the video's cutting
                         rhythm (no embeddings; ``vmtool.structure.rhythm_fit``)
centroid-unit  segment   vmtool: Euclidean distance between the L2-normalised means
trace-mean     segment   vmtool: minus the mean similarity along the main diagonal
btrace-mean    segment   vmtool: minus the best such mean over the diagonals
=============  ========  ==========================================================

Similarities are dot products (cosines of unit vectors).

A learned method takes the rhythm fit as a second term with ``name+rhythm:WEIGHT``
(``btrace+rhythm:0.3``): the two distances, z-scored over the candidates, are added
with the weight on the rhythm term (:func:`vmtool.ranking.rhythm.combine`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vmtool.errors import ParameterError

__all__ = [
    "METHODS",
    "PAPER_METHODS",
    "VMTOOL_METHODS",
    "MODEL_METHODS",
    "ALIGNMENT_METHODS",
    "DIAGONAL_METHODS",
    "DEFAULT_INDEL",
    "DEFAULT_METHOD",
    "RHYTHM",
    "DEFAULT_RHYTHM_WEIGHT",
    "Method",
    "parse_method",
    "parse_methods",
]

#: the paper's methods, in the order of its tables (Seg-VM-Net, Tables II-IV)
PAPER_METHODS: tuple[str, ...] = ("clip", "centroid", "single", "complete", "trace", "btrace", "nw-dtw", "sw-dtw")

#: vmtool's own variants (normalised: the mean over the diagonal, the normalised centroid)
VMTOOL_METHODS: tuple[str, ...] = ("centroid-unit", "trace-mean", "btrace-mean")

#: methods that need the catalog's model: ``head`` ranks by the pair classifier of a
#: model trained with the BCE loss (Prétet et al. 2021, section IV-B: "the sigmoid value")
MODEL_METHODS: tuple[str, ...] = ("head",)

#: the rhythm fit: ranks tracks by their tempo and metre against the video's cuts, with no
#: model (alone, or as the ``+rhythm:WEIGHT`` term of a learned method)
RHYTHM = "rhythm"

#: weight of the rhythm term in ``name+rhythm`` when none is given
DEFAULT_RHYTHM_WEIGHT = 0.3

#: every method (``all`` means the embedding methods: PAPER_METHODS + VMTOOL_METHODS)
METHODS: tuple[str, ...] = PAPER_METHODS + VMTOOL_METHODS + MODEL_METHODS

#: methods that align the two sequences (they give a path, an edit list and a matched span)
ALIGNMENT_METHODS: tuple[str, ...] = ("trace", "btrace", "nw-dtw", "sw-dtw", "trace-mean", "btrace-mean")

#: the diagonal methods: name -> (best offset, paper's sum of squared distances)
DIAGONAL_METHODS: dict[str, tuple[bool, bool]] = {
    "trace": (False, True), "btrace": (True, True), "trace-mean": (False, False), "btrace-mean": (True, False)}

#: the default of ``vmtool rank`` and the demo: vmtool's best trace. On the Seg-VM-Net
#: protocol (benchmarks/bench_protocol.py, docs/performance.md: OLDA, 3 seeds) it ranks
#: the true track at 8.6 on average against 11.0 for the paper's btrace, a sum over
#: min(Kc, Kq) pairs that favours targets with fewer segments than the query.
DEFAULT_METHOD = "btrace-mean"

#: default insertion/deletion penalty of the dynamic-programming methods
DEFAULT_INDEL: dict[str, float] = {"nw-dtw": 0.05, "sw-dtw": 0.01}

DESCRIPTIONS: dict[str, str] = {
    "clip": "Euclidean distance between clip embeddings",
    "centroid": "squared Euclidean distance between the means of the segment embeddings",
    "single": "single linkage: closest pair of segments (squared Euclidean)",
    "complete": "complete linkage: farthest pair of segments (squared Euclidean)",
    "trace": "sum of squared distances along the main diagonal",
    "btrace": "smallest such sum over the diagonal offsets",
    "nw-dtw": "global alignment score, Needleman-Wunsch style DTW (negated)",
    "sw-dtw": "local alignment score, Smith-Waterman style DTW (negated)",
    "centroid-unit": "vmtool: Euclidean distance between the normalised means",
    "trace-mean": "vmtool: mean similarity along the main diagonal (negated)",
    "btrace-mean": "vmtool: best mean similarity over the diagonal offsets (negated)",
    "head": "BCE models: the pair classifier's logit (negated)",
    "rhythm": "vmtool: tempo/metre fit to the video's cuts, no model (name+rhythm:W adds it to a learned one)",
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
    rhythm : float or None
        Weight of the rhythm-fit term added to a learned method (``btrace+rhythm:0.3``);
        None: no rhythm term. The method ``rhythm`` alone has None.
    """

    name: str
    indel: float | None = None
    rhythm: float | None = None

    def __post_init__(self) -> None:
        if self.name not in METHODS and self.name != RHYTHM:
            raise ParameterError(f"unknown method {self.name!r}; methods: {', '.join(METHODS + (RHYTHM,))}")
        if self.rhythm is not None:
            if self.name in (RHYTHM, "head"):
                raise ParameterError(f"method {self.name!r} takes no rhythm term (a learned distance does: "
                                     f"btrace+rhythm:0.3)")
            if not (math.isfinite(self.rhythm) and self.rhythm >= 0):
                raise ParameterError(f"{self.name}+rhythm: the weight must be a number >= 0, got {self.rhythm!r}")
        if self.name in DEFAULT_INDEL:
            if self.indel is None:
                object.__setattr__(self, "indel", DEFAULT_INDEL[self.name])
            elif not (math.isfinite(self.indel) and self.indel >= 0):
                raise ParameterError(f"{self.name}: the indel penalty must be a number >= 0, got {self.indel!r}")
        elif self.indel is not None:
            raise ParameterError(f"method {self.name!r} takes no indel penalty (only nw-dtw and sw-dtw do)")

    @property
    def label(self) -> str:
        """The name, with ``:indel`` when the penalty is not the default and ``+rhythm:W``."""
        out = self.name
        if self.name in DEFAULT_INDEL and self.indel != DEFAULT_INDEL[self.name]:
            out = f"{self.name}:{self.indel:g}"
        return out if self.rhythm is None else f"{out}+rhythm:{self.rhythm:g}"

    @property
    def learned(self) -> Method:
        """The method without its rhythm term (what compares the embeddings)."""
        return self if self.rhythm is None else Method(self.name, self.indel)

    @property
    def uses_rhythm(self) -> bool:
        """Whether ranking needs the rhythm fit (``rhythm`` alone or a ``+rhythm`` term)."""
        return self.name == RHYTHM or self.rhythm is not None

    @property
    def level(self) -> str:
        """``clip``, ``segment``, or ``none`` (``rhythm``): which embeddings the method compares."""
        return "none" if self.name == RHYTHM else "clip" if self.name in ("clip", "head") else "segment"

    @property
    def aligns(self) -> bool:
        """Whether the method aligns the sequences (path, edit list, matched span)."""
        return self.name in ALIGNMENT_METHODS

    def __str__(self) -> str:
        return self.label


def parse_method(spec: str | Method) -> Method:
    """A :class:`Method` from ``name``, ``name:indel`` (e.g. ``nw-dtw:0.1``) or
    ``name[:indel]+rhythm[:weight]`` (e.g. ``btrace+rhythm:0.3``; the weight defaults to
    :data:`DEFAULT_RHYTHM_WEIGHT`).

    Raises
    ------
    ParameterError
        Unknown name, an indel penalty or rhythm weight that is not a number >= 0 or
        not allowed, or a second term other than ``rhythm``.
    """
    if isinstance(spec, Method):
        return spec
    text = str(spec).strip().lower()
    text, plus, extra = text.partition("+")
    weight = None
    if plus:
        term, sep, value = extra.strip().partition(":")
        if term.strip() != RHYTHM or "+" in value:
            raise ParameterError(f"invalid method {spec!r}: only a rhythm term can be added (name+rhythm:WEIGHT)")
        try:
            weight = float(value) if sep else DEFAULT_RHYTHM_WEIGHT
        except ValueError:
            raise ParameterError(f"invalid method {spec!r}: the rhythm weight {value!r} is not a number") from None
    name, sep, value = text.partition(":")
    indel = None
    if sep:
        try:
            indel = float(value)
        except ValueError:
            raise ParameterError(f"invalid method {spec!r}: the indel penalty {value!r} is not a number") from None
    return Method(name.strip(), indel, weight)


def parse_methods(specs: str | Iterable[str] | Sequence[Method]) -> list[Method]:
    """Methods from a comma-separated list (``"trace,nw-dtw:0.1"``) or ``"all"``.

    Repeated methods are kept once, in the order given; ``all`` expands to
    :data:`PAPER_METHODS` and :data:`VMTOOL_METHODS` with their default parameters.
    """
    if isinstance(specs, str):
        specs = [specs]
    out: list[Method] = []
    for spec in specs:
        parts = [spec] if isinstance(spec, Method) else [p for p in str(spec).split(",") if p.strip()]
        for p in parts:
            if not isinstance(p, Method) and p.strip().lower() == "all":
                ms = [Method(n) for n in PAPER_METHODS + VMTOOL_METHODS]
            else:
                ms = [parse_method(p)]
            for m in ms:
                if m.uses_rhythm:
                    raise ParameterError(f"method {m.label!r} ranks with vmtool rank only: it needs a video's shot "
                                         "cuts and the tracks' beats, not embeddings")
                if m not in out:
                    out.append(m)
    if not out:
        raise ParameterError("no ranking method given")
    return out
