"""Distances between every query and every target, for every method, in bounded memory.

The segment methods share one computation: the similarity block ``S = Q @ T.T``
between the segments of a chunk of queries and those of a chunk of targets (a
matrix product, on the CPU or a torch device), which compiled kernels then reduce to
one distance per pair (:mod:`vmtool.ranking._kernels`). Chunks are cut at item
boundaries so that a block stays under ``block_mb`` megabytes; float16 storage is
converted to the compute type one chunk at a time (exact, by integer operations on the
bits) — except for the diagonal methods of a few queries, whose fused kernel converts
each target's rows in the cache and takes only the pair's diagonals
(:func:`vmtool.ranking._kernels.half_diagonals`).

The diagonal methods (``trace``, ``btrace`` and their ``-mean`` variants) need only a
few diagonals of each pair's matrix. With many
queries they skip the full block: items are grouped by length, and each diagonal
offset of each pair of length groups is one matrix product of flattened windows.

Parallelism: the work of a block is cut into parts (target slices, length groups) that
run in a pool of threads, one per usable CPU, while the BLAS library itself is held to
one thread (threadpoolctl). A multi-threaded BLAS on many small products, on a shared
machine, spends its time waiting for its own threads.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from vmtool.errors import ParameterError
from vmtool.ranking.methods import DEFAULT_METHOD, DIAGONAL_METHODS, Method, parse_methods
from vmtool.ranking.segments import SegmentSet

__all__ = ["distances", "distance_matrices", "DEFAULT_BLOCK_MB", "DIAG_MIN_QUERIES", "PairScorer"]

#: default memory budget of one similarity block (and of one converted target chunk)
DEFAULT_BLOCK_MB = 64

#: from this many queries on, the diagonal methods use grouped diagonal products
DIAG_MIN_QUERIES = 32

def distances(
    queries: SegmentSet,
    targets: SegmentSet,
    method: str | Method = DEFAULT_METHOD,
    *,
    device: str = "cpu",
    block_mb: float = DEFAULT_BLOCK_MB,
    dtype: Any = np.float32,
    pair_scorer: PairScorer | None = None,
) -> np.ndarray:
    """Distance of every query to every target with one method.

    Parameters
    ----------
    queries, targets : SegmentSet
        The two sides (e.g. videos' and tracks' segment embeddings), same width ``d``.
    method : str or Method
        A name of :data:`~vmtool.ranking.methods.METHODS`, optionally ``name:indel``.
    device : str
        Where the matrix products run: ``cpu`` or a torch device (``cuda``, ``cuda:1``).
        The dynamic programming always runs on the CPU.
    block_mb : float
        Memory budget of one similarity block, megabytes.
    dtype : {np.float32, np.float64}
        Compute type (float16 storage is converted to it chunk by chunk).
    pair_scorer : callable, optional
        ``head`` only: ``(video, music) -> logits``, ``(n, D), (m, D) -> (n, m)``, the
        pair classifier of a BCE model (``LoadedModel.pair_logits``).

    Returns
    -------
    np.ndarray [shape=(len(queries), len(targets)), dtype=float64]
        Distances (smaller is better); NaN where a side has no embeddings.
    """
    (m,) = parse_methods([method])
    return distance_matrices(queries, targets, [m], device=device, block_mb=block_mb, dtype=dtype,
                             pair_scorer=pair_scorer)[m.label]


def distance_matrices(
    queries: SegmentSet,
    targets: SegmentSet,
    methods: str | Iterable[str | Method],
    *,
    device: str = "cpu",
    block_mb: float = DEFAULT_BLOCK_MB,
    dtype: Any = np.float32,
    timings: dict[str, float] | None = None,
    pair_scorer: PairScorer | None = None,
) -> dict[str, np.ndarray]:
    """Distances of every query to every target for several methods at once.

    The segment methods share the similarity blocks. When *timings* is given it
    receives, per method label, the seconds that method would take alone: its own
    reduction plus the whole time of the shared similarity products.

    Returns
    -------
    dict
        Method label -> ``(len(queries), len(targets))`` float64 distances.
    """
    ms = parse_methods(methods)
    if queries.dim != targets.dim:
        raise ParameterError(f"dimension mismatch: the queries have {queries.dim}-d embeddings, "
                             f"the targets {targets.dim}-d")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ParameterError(f"compute dtype must be float32 or float64, got {dtype}")
    from vmtool.ranking._kernels import warmup

    warmup(dtype)  # numba's first call in a process: not part of any method's time
    mm = _MatMul(device, dtype)
    budget = max(1e-4, float(block_mb)) * 2**20
    with _blas_single_thread():
        out, times = _compute(queries, targets, ms, mm, budget, pair_scorer)
    if timings is not None:
        timings.update(times)
    return {m.label: out[m.label] for m in ms}


def _compute(queries: SegmentSet, targets: SegmentSet, ms: Sequence[Method], mm: _MatMul,
             budget: float, pair_scorer: PairScorer | None = None) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    nq = len(queries)
    out: dict[str, np.ndarray] = {}
    times: dict[str, float] = {}
    block: list[Method] = []
    for m in ms:
        t0 = time.perf_counter()
        if m.name == "clip":
            if queries.clip is None or targets.clip is None:
                raise ParameterError("method 'clip' needs clip embeddings, and one side has none")
            out[m.label] = _euclidean(queries.clip, targets.clip, mm, budget)
        elif m.name == "head":
            out[m.label] = _head(queries, targets, pair_scorer)
        elif m.name == "centroid":  # Seg-VM-Net: squared distance between the raw means
            out[m.label] = _euclidean(queries.means, targets.means, mm, budget, squared=True)
        elif m.name == "centroid-unit":
            out[m.label] = _euclidean(queries.centroids, targets.centroids, mm, budget)
        elif m.name in DIAGONAL_METHODS and nq >= DIAG_MIN_QUERIES:
            best, squared = DIAGONAL_METHODS[m.name]
            out[m.label] = _diagonals(queries, targets, best, squared, mm, budget)
        elif m.name in DIAGONAL_METHODS and _fused(targets, mm):
            best, squared = DIAGONAL_METHODS[m.name]
            out[m.label] = _half_diagonals(queries, targets, best, squared, mm)
        else:
            block.append(m)
            continue
        times[m.label] = time.perf_counter() - t0
    if block:
        res, sim_s, own_s = _block_methods(queries, targets, block, mm, budget)
        for m in block:
            out[m.label] = res[m.label]
            times[m.label] = sim_s + own_s[m.label]
    return out, times


PairScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _head(queries: SegmentSet, targets: SegmentSet, scorer: PairScorer | None) -> np.ndarray:
    """Minus the pair classifier's logit; the video side goes first whichever is the query."""
    if scorer is None:
        raise ParameterError("method 'head' needs the pair classifier of a model trained with --loss bce")
    if queries.clip is None or targets.clip is None:
        raise ParameterError("method 'head' needs clip embeddings, and one side has none")
    q = np.nan_to_num(queries.clip.astype(np.float32))
    t = np.nan_to_num(targets.clip.astype(np.float32))
    if queries.modality == "audio":
        logits = np.asarray(scorer(t, q), dtype=np.float64).T
    else:
        logits = np.asarray(scorer(q, t), dtype=np.float64)
    out = -logits
    out[~np.isfinite(queries.clip.astype(np.float32)).all(1)] = np.nan
    out[:, ~np.isfinite(targets.clip.astype(np.float32)).all(1)] = np.nan
    return out


# --- threads ---------------------------------------------------------------------------------

_POOL: ThreadPoolExecutor | None = None


def _threads() -> int:
    from vmtool.ranking._kernels import threads

    return threads()


def _map(fn: Callable, items: Sequence) -> list:
    """``[fn(x) for x in items]``, spread over the thread pool (order kept)."""
    global _POOL
    n = _threads()
    if n == 1 or len(items) < 2:
        return [fn(x) for x in items]
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=n, thread_name_prefix="vmtool-rank")
    return list(_POOL.map(fn, items))


@contextlib.contextmanager
def _blas_single_thread():
    """Hold the BLAS library to one thread (when threadpoolctl is available)."""
    if _threads() == 1:
        yield
        return
    global _BLAS
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    if _BLAS is None:  # listing the loaded libraries takes 10-30 ms: once per process, not per ranking
        _BLAS = ThreadpoolController()
    with _BLAS.limit(limits=1, user_api="blas"):
        yield


_BLAS = None


# --- matrix products -----------------------------------------------------------------------


class _MatMul:
    """``A @ B.T`` in the compute type, with numpy on the CPU or torch on a device."""

    def __init__(self, device: str, dtype: np.dtype):
        self.dtype = dtype
        self.device = (device or "cpu").lower()
        self._torch = None
        if self.device != "cpu":
            import torch

            self._torch = torch
            self._dev = torch.device(self.device)

    def cast(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype == np.float16 and self.dtype == np.float32 and x.size > 4096:
            from vmtool.ranking._kernels import half_to_float32

            return half_to_float32(x)
        return x.astype(self.dtype, copy=False)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a = self.cast(a)
        b = self.cast(b)
        if self._torch is None:
            return np.ascontiguousarray(a @ b.T)
        t = self._torch
        ta = t.from_numpy(np.ascontiguousarray(a)).to(self._dev)
        tb = t.from_numpy(np.ascontiguousarray(b)).to(self._dev)
        return (ta @ tb.T).cpu().numpy()


def _euclidean(x: np.ndarray, y: np.ndarray, mm: _MatMul, budget: float, squared: bool = False) -> np.ndarray:
    """``||x_a - y_b||`` (or its square) for all rows, by ``|x|^2 + |y|^2 - 2 x.y`` (NaN rows give NaN)."""
    x = mm.cast(x)
    y = mm.cast(y)
    x2 = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    y2 = np.einsum("ij,ij->i", y, y, dtype=np.float64)
    out = np.empty((len(x), len(y)))
    step = max(1, int(budget // (8 * max(1, len(y)))))
    for a0 in range(0, len(x), step):
        a1 = min(len(x), a0 + step)
        d2 = x2[a0:a1, None] + y2[None, :] - 2.0 * mm(np.nan_to_num(x[a0:a1]), np.nan_to_num(y))
        d2 = np.maximum(d2, 0.0)
        out[a0:a1] = d2 if squared else np.sqrt(d2)
    return out


# --- chunks ----------------------------------------------------------------------------------


def _item_chunks(offsets: np.ndarray, max_rows: int) -> list[tuple[int, int]]:
    """Consecutive item ranges ``(i0, i1)`` holding at most *max_rows* rows (at least one item)."""
    n = len(offsets) - 1
    chunks = []
    i0 = 0
    while i0 < n:
        i1 = int(np.searchsorted(offsets, offsets[i0] + max_rows, side="right")) - 1
        i1 = min(n, max(i1, i0 + 1))
        chunks.append((i0, i1))
        i0 = i1
    return chunks


def _parts(offsets: np.ndarray, b0: int, b1: int, n: int) -> list[tuple[int, int]]:
    """Items ``b0:b1`` cut into at most *n* ranges of about equal numbers of rows."""
    cuts = np.searchsorted(offsets, np.linspace(offsets[b0], offsets[b1], n + 1), side="left")
    cuts = np.unique(np.clip(cuts, b0, b1))
    cuts[0], cuts[-1] = b0, b1
    return [(int(x), int(y)) for x, y in zip(cuts[:-1], cuts[1:]) if y > x]


def _block_methods(queries: SegmentSet, targets: SegmentSet, methods: Sequence[Method], mm: _MatMul,
                   budget: float) -> tuple[dict[str, np.ndarray], float, dict[str, float]]:
    from vmtool.ranking._kernels import CODES, NORM_CODES, block_distances

    nq, nt = len(queries), len(targets)
    item = mm.dtype.itemsize
    d = max(1, queries.dim)
    q_rows = max(1, min(len(queries.data), 1024, int(budget // (item * 64))))
    t_rows = max(1, int(budget // (item * q_rows)))
    if targets.data.dtype != mm.dtype:  # the converted chunk is bounded too
        t_rows = min(t_rows, max(1, int(budget // (item * d))))
    res = {m.label: np.full((nq, nt), np.nan) for m in methods}
    own = {m.label: 0.0 for m in methods}
    sim = 0.0
    need_norms = any(CODES[m.name] in NORM_CODES for m in methods)
    empty = np.zeros(0)
    n_parts = 1 if mm.device != "cpu" else 2 * _threads()
    t_chunks = _item_chunks(targets.offsets, t_rows)
    for a0, a1 in _item_chunks(queries.offsets, q_rows):
        r0, r1 = int(queries.offsets[a0]), int(queries.offsets[a1])
        qc = mm.cast(queries.data[r0:r1])
        qo = queries.offsets[a0:a1 + 1] - r0
        qn2 = np.einsum("ij,ij->i", qc, qc, dtype=np.float64) if need_norms else empty
        for c0, c1 in t_chunks:
            parts = _parts(targets.offsets, c0, c1, n_parts)

            def similarities(part):
                b0, b1 = part
                o0, o1 = int(targets.offsets[b0]), int(targets.offsets[b1])
                tc = mm.cast(targets.data[o0:o1])
                tn2 = np.einsum("ij,ij->i", tc, tc, dtype=np.float64) if need_norms else empty
                return mm(qc, tc), targets.offsets[b0:b1 + 1] - o0, tn2

            t = time.perf_counter()
            blocks = _map(similarities, parts)
            sim += time.perf_counter() - t
            for m in methods:
                code, indel = CODES[m.name], float(m.indel or 0.0)

                def reduce(k):
                    S, to, tn2 = blocks[k]
                    blk = np.empty((a1 - a0, len(to) - 1))
                    block_distances(S, qo, to, qn2, tn2, code, indel, blk, 0, len(to) - 1)
                    return blk

                t = time.perf_counter()
                for (b0, b1), blk in zip(parts, _map(reduce, range(len(parts)))):
                    res[m.label][a0:a1, b0:b1] = blk
                own[m.label] += time.perf_counter() - t
            del blocks
    return res, sim, own


# --- trace and btrace of a few queries against float16 rows, fused -----------------------------
#
# A catalog streamed from disk is float16. Converting a chunk to float32 and taking the
# whole similarity block costs two passes over memory and a product per (query row,
# target row), where the diagonal methods need only the few diagonals of each pair: the
# fused kernel converts each target's rows exactly, in the cache, and takes only those.


def _fused(targets: SegmentSet, mm: _MatMul) -> bool:
    """Whether the fused float16 kernel serves these targets (float32 on the CPU)."""
    return targets.data.dtype == np.float16 and mm.device == "cpu" and mm.dtype == np.float32


def _half_diagonals(queries: SegmentSet, targets: SegmentSet, best: bool, squared: bool,
                    mm: _MatMul) -> np.ndarray:
    """trace-like distances of a few queries with float16 targets (:func:`~vmtool.ranking._kernels.half_diagonals`)."""
    from vmtool.ranking._kernels import half_diagonals

    nq, nt, d = len(queries), len(targets), targets.dim
    out = np.empty((nq, nt))
    if nt == 0 or nq == 0:
        return out
    q = np.ascontiguousarray(mm.cast(queries.data))
    qn2 = np.einsum("ij,ij->i", q, q, dtype=np.float64)
    bits = np.ascontiguousarray(targets.data).view(np.uint16).reshape(-1)
    room = max(1, int(targets.lengths.max())) * d

    def run(part) -> None:  # disjoint columns: no two parts write the same cell
        half_diagonals(bits, targets.offsets, q, queries.offsets, qn2, best, squared, out, part[0], part[1],
                       np.empty(room, dtype=np.uint32))

    _map(run, _parts(targets.offsets, 0, nt, 2 * _threads()))
    return out


# --- trace and btrace by grouped diagonal products ---------------------------------------------
#
# The diagonal of offset k of a pair is one dot product between two flattened windows:
# the shorter sequence (all its rows) and ``length`` consecutive rows of the longer one,
# starting at row k. Queries are grouped by length L; for each group, the windows of
# length L of every (longer) target are stacked, and one matrix product scores every
# query of the group against every window. The best window of each target is then a
# ``maximum.reduceat``. Targets shorter than the query are handled the other way round.


def _windows(s: SegmentSet, items: np.ndarray, length: int, best: bool) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(n_windows, length)`` of the windows of *items*, and each item's first window."""
    lens = s.lengths[items]
    n_win = (lens - length + 1) if best else np.ones_like(lens)
    first = np.concatenate([[0], np.cumsum(n_win)[:-1]]).astype(np.int64)
    owner = np.repeat(np.arange(len(items)), n_win)
    k = np.arange(int(n_win.sum())) - first[owner]
    starts = s.offsets[items][owner] + k
    return starts[:, None] + np.arange(length), first


def _flat(s: SegmentSet, rows: np.ndarray, mm: _MatMul) -> np.ndarray:
    """``data[rows]`` as ``(n, length * d)`` in the compute type."""
    return mm.cast(s.data[rows]).reshape(len(rows), -1)


def _window_cost(lens: np.ndarray, other: np.ndarray, best: bool, longer: bool) -> np.ndarray:
    """Rows an item contributes to the largest stacked-window matrix it takes part in.

    ``longer``: the item's windows are cut at the lengths of the shorter *other* side
    (``(K - L + 1) * L`` rows for btrace, ``L`` for trace, the worst over those L);
    plus its own ``K`` rows when it is the shorter side.
    """
    cost = lens.astype(np.int64).copy()
    for L in np.unique(other):
        L = int(L)
        if L <= 0:
            continue
        ok = lens >= L if longer else lens > L
        c = ((lens - L + 1) * L) if best else np.full_like(lens, L)
        cost = np.where(ok, np.maximum(cost, c), cost)
    return cost


def _row_norms2(s: SegmentSet, mm: _MatMul) -> np.ndarray:
    """Squared norm of every segment row, ``(R,)`` float64 (converted chunk by chunk)."""
    out = np.empty(len(s.data))
    step = 1 << 16
    for r0 in range(0, len(s.data), step):
        x = mm.cast(s.data[r0:r0 + step])
        out[r0:r0 + len(x)] = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    return out


def _diagonals(queries: SegmentSet, targets: SegmentSet, best: bool, squared: bool, mm: _MatMul,
               budget: float) -> np.ndarray:
    """Trace-like distances by grouped diagonal products.

    ``squared``: Seg-VM-Net's sum of squared distances along a diagonal (the smallest
    over the offsets for btrace); otherwise minus the mean similarity (the largest).
    A diagonal's squared distances add up to the norms of its rows minus twice its
    similarities, so the same products serve both.
    """
    nq, nt = len(queries), len(targets)
    qn2 = _row_norms2(queries, mm) if squared else None
    tn2 = _row_norms2(targets, mm) if squared else None
    out = np.full((nq, nt), np.nan)
    qlens, tlens = queries.lengths, targets.lengths
    n = 1 if mm.device != "cpu" else _threads()
    # chunks whose stacked windows stay under the budget (shared by the threads)
    rows_budget = max(1, int(budget // (n * mm.dtype.itemsize * max(1, targets.dim))))
    q_cost = np.concatenate([[0], np.cumsum(_window_cost(qlens, tlens, best, longer=False))])
    t_cost = np.concatenate([[0], np.cumsum(_window_cost(tlens, qlens, best, longer=True))])
    tasks = []
    for a0, a1 in _item_chunks(q_cost, rows_budget):
        qchunk = np.arange(a0, a1)
        ql = qlens[a0:a1]
        for b0, b1 in _item_chunks(t_cost, rows_budget):
            tchunk = np.arange(b0, b1)
            tl = tlens[b0:b1]
            for L in np.unique(ql):  # targets at least as long as the query: windows over the targets
                qa, tb = qchunk[ql == L], tchunk[tl >= L]
                if L > 0 and len(tb):
                    tasks.append((int(L), qa, tb, True))
            for L in np.unique(tl):  # targets shorter than the query: windows over the queries
                qa, tb = qchunk[ql > L], tchunk[tl == L]
                if L > 0 and len(qa):
                    tasks.append((int(L), qa, tb, False))

    def run(task) -> None:
        L, qa, tb, over_targets = task
        # one side's windows (rows, with each item's first window) against the other's L rows
        if over_targets:
            rows, first = _windows(targets, tb, L, best)
            qrows, trows, axis = queries.offsets[qa][:, None] + np.arange(L), rows, 1
        else:
            rows, first = _windows(queries, qa, L, best)
            qrows, trows, axis = rows, targets.offsets[tb][:, None] + np.arange(L), 0
        g = mm(_flat(queries, qrows, mm), _flat(targets, trows, mm))
        # disjoint pairs: no two tasks write the same cell
        if squared:
            d2 = qn2[qrows].sum(1)[:, None] + tn2[trows].sum(1)[None, :] - 2.0 * g
            out[np.ix_(qa, tb)] = np.maximum(np.minimum.reduceat(d2, first, axis=axis).astype(np.float64), 0.0)
        else:
            out[np.ix_(qa, tb)] = -(np.maximum.reduceat(g, first, axis=axis).astype(np.float64) / L)

    # one wave of tasks per chunk keeps the memory of the stacked windows bounded
    for i in range(0, len(tasks), n):
        _map(run, tasks[i:i + n])
    return out
