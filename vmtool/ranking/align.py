"""The alignment of one query with one target: matrix, optimal path and edit list.

For an editor: which part of the track plays under each segment of the video.
:func:`align` recomputes, for one pair, the score the batched kernels give, keeping
the whole dynamic-programming matrix to trace the optimal path back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vmtool.errors import ParameterError
from vmtool.ranking.methods import ALIGNMENT_METHODS, DIAGONAL_METHODS, Method, parse_method

__all__ = ["Alignment", "Edit", "align", "nw_matrix", "sw_matrix"]


@dataclass
class Edit:
    """What plays under one query segment.

    Attributes
    ----------
    query_index : int
        The query segment (0-based).
    query_span : (float, float) or None
        Its start and end, seconds.
    target_first, target_last : int or None
        The first and last target segments matched to it (None: unmatched).
    target_span : (float, float) or None
        From the start of ``target_first`` to the end of ``target_last``, seconds.
    similarity : float or None
        Mean similarity of its matched pairs.
    """

    query_index: int
    query_span: tuple[float, float] | None
    target_first: int | None
    target_last: int | None
    target_span: tuple[float, float] | None
    similarity: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "query_segment": self.query_index,
            "query_start": None if self.query_span is None else self.query_span[0],
            "query_end": None if self.query_span is None else self.query_span[1],
            "target_segments": None if self.target_first is None else [self.target_first, self.target_last],
            "target_start": None if self.target_span is None else self.target_span[0],
            "target_end": None if self.target_span is None else self.target_span[1],
            "similarity": self.similarity,
        }


@dataclass
class Alignment:
    """The alignment of a query (rows) with a target (columns).

    Attributes
    ----------
    method : Method
    similarity : np.ndarray [shape=(Kq, Kc)]
        Dot products of the segment embeddings.
    distance_matrix : np.ndarray [shape=(Kq, Kc)]
        Euclidean distances between the segment embeddings.
    score : float
        The method's score: minus the sum of squared distances along the chosen
        diagonal for trace and btrace (Seg-VM-Net); the mean similarity along it for
        trace-mean and btrace-mean; the DP score for nw-dtw and sw-dtw.
    distance : float
        ``-score``: what the ranking sorts by.
    path : np.ndarray [shape=(P, 2), dtype=int64]
        Matched ``(query segment, target segment)`` pairs in order.
    offset : int or None
        The diagonal methods: target index minus query index along the chosen diagonal.
    edits : list of Edit
        One per query segment.
    """

    method: Method
    similarity: np.ndarray
    distance_matrix: np.ndarray
    score: float
    distance: float
    path: np.ndarray
    offset: int | None
    edits: list[Edit]
    target_spans: np.ndarray | None = None

    @property
    def target_span(self) -> tuple[float, float] | None:
        """Start of the first to end of the last matched target segment, seconds."""
        if len(self.path) == 0 or self.target_spans is None:
            return None
        j0, j1 = int(self.path[:, 1].min()), int(self.path[:, 1].max())
        return float(self.target_spans[j0, 0]), float(self.target_spans[j1, 1])

    @property
    def target_segments(self) -> tuple[int, int] | None:
        if len(self.path) == 0:
            return None
        return int(self.path[:, 1].min()), int(self.path[:, 1].max())

    def to_dict(self, *, matrices: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "method": self.method.label,
            "indel": self.method.indel,
            "score": self.score,
            "distance": self.distance,
            "offset": self.offset,
            "target_span": None if self.target_span is None else list(self.target_span),
            "path": self.path.tolist(),
            "edits": [e.to_dict() for e in self.edits],
        }
        if matrices:
            d["similarity"] = np.round(self.similarity, 6).tolist()
            d["distance_matrix"] = np.round(self.distance_matrix, 6).tolist()
        return d


def nw_matrix(S: np.ndarray, indel: float) -> np.ndarray:
    """The ``(Kq + 1, Kc + 1)`` score matrix of the global (Needleman-Wunsch) alignment.

    ``H[0, j] = -j g``, ``H[i, 0] = -i g``,
    ``H[i, j] = max(H[i-1, j-1] + s_ij, H[i-1, j] - g, H[i, j-1] - g)``.
    """
    kq, kc = S.shape
    H = np.empty((kq + 1, kc + 1))
    H[0, :] = -indel * np.arange(kc + 1)
    H[:, 0] = -indel * np.arange(kq + 1)
    for i in range(1, kq + 1):
        for j in range(1, kc + 1):
            H[i, j] = max(H[i - 1, j - 1] + S[i - 1, j - 1], H[i - 1, j] - indel, H[i, j - 1] - indel)
    return H


def sw_matrix(S: np.ndarray, indel: float) -> np.ndarray:
    """The ``(Kq + 1, Kc + 1)`` score matrix of the local (Smith-Waterman) alignment.

    ``H[0, j] = H[i, 0] = 0``,
    ``H[i, j] = max(0, H[i-1, j-1] + s_ij, H[i-1, j] - g, H[i, j-1] - g)``.
    """
    kq, kc = S.shape
    H = np.zeros((kq + 1, kc + 1))
    for i in range(1, kq + 1):
        for j in range(1, kc + 1):
            H[i, j] = max(0.0, H[i - 1, j - 1] + S[i - 1, j - 1], H[i - 1, j] - indel, H[i, j - 1] - indel)
    return H


def _step_back(H: np.ndarray, S: np.ndarray, i: int, j: int, g: float) -> tuple[int, int]:
    """The predecessor of cell (i, j) that attains its value (match first, then skip a
    query segment, then skip a target segment)."""
    cands = []
    if i > 0 and j > 0:
        cands.append((H[i - 1, j - 1] + S[i - 1, j - 1], i - 1, j - 1))
    if i > 0:
        cands.append((H[i - 1, j] - g, i - 1, j))
    if j > 0:
        cands.append((H[i, j - 1] - g, i, j - 1))
    best = max(c[0] for c in cands)
    for v, pi, pj in cands:  # the first candidate within rounding of the best
        if v >= best - 1e-12 * max(1.0, abs(best)):
            return pi, pj
    raise AssertionError("unreachable")  # pragma: no cover


def _trace_back(H: np.ndarray, S: np.ndarray, g: float, local: bool) -> list[tuple[int, int]]:
    """Matched pairs along the optimal path (global from the last cell; local from the best)."""
    if local:
        i, j = (int(x) for x in np.unravel_index(int(np.argmax(H)), H.shape))
    else:
        i, j = H.shape[0] - 1, H.shape[1] - 1
    path = []
    while i > 0 or j > 0:
        if local and H[i, j] <= 0:  # the local alignment starts here
            break
        pi, pj = _step_back(H, S, i, j, g)
        if pi == i - 1 and pj == j - 1:
            path.append((pi, pj))
        i, j = pi, pj
    return path[::-1]


def _diagonal_path(S: np.ndarray, E2: np.ndarray, best_offset: bool,
                   squared: bool) -> tuple[list[tuple[int, int]], float, int]:
    """The best diagonal: by the sum of squared distances *E2* (``squared``, negated as
    a score) or by the mean similarity *S*; ties go to the smallest offset."""
    kq, kc = S.shape
    n = min(kq, kc)
    best, best_k = -np.inf, 0
    for k in range(abs(kc - kq) + 1 if best_offset else 1):
        di, dj = (k, 0) if kq > kc else (0, k)
        if squared:
            v = -float(sum(E2[di + i, dj + i] for i in range(n)))
        else:
            v = float(np.mean([S[di + i, dj + i] for i in range(n)]))
        if v > best:
            best, best_k = v, k
    di, dj = (best_k, 0) if kq > kc else (0, best_k)
    return [(di + i, dj + i) for i in range(n)], best, dj - di


def align(
    query: np.ndarray,
    target: np.ndarray,
    method: str | Method = "nw-dtw",
    *,
    query_spans: np.ndarray | None = None,
    target_spans: np.ndarray | None = None,
) -> Alignment:
    """Align a query's segments with a target's.

    Parameters
    ----------
    query : np.ndarray [shape=(Kq, d)]
    target : np.ndarray [shape=(Kc, d)]
        Unit-norm segment embeddings, in time order.
    method : {"trace", "btrace", "nw-dtw", "sw-dtw", "trace-mean", "btrace-mean"} or Method
        Optionally with ``:indel`` for the DP methods.
    query_spans, target_spans : np.ndarray [shape=(K, 2)], optional
        Segment start and end times in seconds (for the edit list).

    Returns
    -------
    Alignment
        Its ``distance`` equals what :func:`~vmtool.ranking.batched.distances`
        gives for the pair.
    """
    m = parse_method(method)
    if not m.aligns:
        raise ParameterError(f"method {m.name!r} does not align sequences; use one of {', '.join(ALIGNMENT_METHODS)}")
    q = np.asarray(query, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if q.ndim != 2 or t.ndim != 2 or len(q) == 0 or len(t) == 0:
        raise ParameterError(f"cannot align: the query has {len(q)} segment(s) and the target {len(t)}")
    if q.shape[1] != t.shape[1]:
        raise ParameterError(f"dimension mismatch: the query has {q.shape[1]}-d embeddings, the target {t.shape[1]}-d")
    for side, x in (("query", q), ("target", t)):
        if not np.isfinite(x).all():
            raise ParameterError(f"cannot align: the {side}'s embeddings hold NaN or infinite values")
    S = q @ t.T
    E2 = np.maximum((q * q).sum(1)[:, None] + (t * t).sum(1)[None, :] - 2 * S, 0.0)
    E = np.sqrt(E2)
    offset = None
    if m.name in DIAGONAL_METHODS:
        best_offset, squared = DIAGONAL_METHODS[m.name]
        path, score, offset = _diagonal_path(S, E2, best_offset, squared)
    elif m.name == "nw-dtw":
        H = nw_matrix(S, m.indel)
        score, path = float(H[-1, -1]), _trace_back(H, S, m.indel, local=False)
    else:
        H = sw_matrix(S, m.indel)
        score, path = float(H.max()), _trace_back(H, S, m.indel, local=True)
    p = np.asarray(path, dtype=np.int64).reshape(-1, 2)
    qs = None if query_spans is None else np.asarray(query_spans, dtype=np.float64).reshape(-1, 2)
    ts = None if target_spans is None else np.asarray(target_spans, dtype=np.float64).reshape(-1, 2)
    edits = []
    for i in range(len(q)):
        js = p[p[:, 0] == i, 1]
        qspan = None if qs is None else (float(qs[i, 0]), float(qs[i, 1]))
        if len(js) == 0:
            edits.append(Edit(i, qspan, None, None, None, None))
            continue
        j0, j1 = int(js.min()), int(js.max())
        tspan = None if ts is None else (float(ts[j0, 0]), float(ts[j1, 1]))
        edits.append(Edit(i, qspan, j0, j1, tspan, float(S[i, js].mean())))
    return Alignment(m, S, E, float(score), -float(score), p, offset, edits, ts)
