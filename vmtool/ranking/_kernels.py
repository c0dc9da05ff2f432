"""Compiled kernels (numba): every (query, target) pair of a similarity block at once.

A *block* is the similarity matrix between the segments of a chunk of queries (rows)
and the segments of a chunk of targets (columns): ``S = Q @ T.T``. Query ``a`` owns
rows ``qo[a]:qo[a+1]`` and target ``b`` columns ``to[b]:to[b+1]``; the kernels walk
each pair's sub-matrix in place (no padding, no copy) and write one distance per pair.

The kernel releases the GIL, so that target slices can run in parallel threads.
Importing this module imports numba; the first call compiles the kernel (a few
seconds), then numba's on-disk cache makes later processes start faster.
"""

from __future__ import annotations

import numpy as np
import os

from numba import njit

__all__ = ["CODES", "NORM_CODES", "block_distances", "warmup", "threads", "half_to_float32", "item_means"]

CODES = {"single": 0, "complete": 1, "trace-mean": 2, "btrace-mean": 3, "nw-dtw": 4, "sw-dtw": 5,
         "trace": 6, "btrace": 7}

#: the methods whose kernels read the rows' squared norms
NORM_CODES = (0, 1, 6, 7)


@njit(cache=True, inline="always")
def _linkage(S, r0, kq, c0, kc, qn2, tn2, farthest):
    best = -np.inf if farthest else np.inf
    for i in range(kq):
        for j in range(kc):
            e2 = qn2[r0 + i] + tn2[c0 + j] - 2.0 * S[r0 + i, c0 + j]
            if farthest:
                if e2 > best:
                    best = e2
            elif e2 < best:
                best = e2
    return max(best, 0.0)


@njit(cache=True, inline="always")
def _diagonal(S, r0, kq, c0, kc, best_offset):
    n = min(kq, kc)
    n_off = abs(kc - kq) + 1 if best_offset else 1
    best = -np.inf
    for k in range(n_off):
        di = k if kq > kc else 0
        dj = k if kc > kq else 0
        acc = 0.0
        for i in range(n):
            acc += S[r0 + di + i, c0 + dj + i]
        v = acc / n
        if v > best:
            best = v
    return best


@njit(cache=True, inline="always")
def _diagonal_sq(S, r0, kq, c0, kc, qn2, tn2, best_offset):
    # Seg-VM-Net's trace / best trace: sum over min(kq, kc) pairs of squared distances
    n = min(kq, kc)
    n_off = abs(kc - kq) + 1 if best_offset else 1
    best = np.inf
    for k in range(n_off):
        di = k if kq > kc else 0
        dj = k if kc > kq else 0
        acc = 0.0
        for i in range(n):
            acc += max(qn2[r0 + di + i] + tn2[c0 + dj + i] - 2.0 * S[r0 + di + i, c0 + dj + i], 0.0)
        if acc < best:
            best = acc
    return best


@njit(cache=True, inline="always")
def _nw(S, r0, kq, c0, kc, g, prev, cur):
    # Needleman-Wunsch: H[0, j] = -j g, H[i, 0] = -i g,
    # H[i, j] = max(H[i-1, j-1] + s_ij, H[i-1, j] - g, H[i, j-1] - g); score H[kq, kc]
    for j in range(kc + 1):
        prev[j] = -j * g
    for i in range(1, kq + 1):
        left = -i * g
        cur[0] = left
        for j in range(1, kc + 1):
            left = max(max(prev[j - 1] + S[r0 + i - 1, c0 + j - 1], prev[j] - g), left - g)
            cur[j] = left
        for j in range(kc + 1):
            prev[j] = cur[j]
    return prev[kc]


@njit(cache=True, inline="always")
def _sw(S, r0, kq, c0, kc, g, prev, cur):
    # Smith-Waterman: H[0, j] = H[i, 0] = 0,
    # H[i, j] = max(0, H[i-1, j-1] + s_ij, H[i-1, j] - g, H[i, j-1] - g); score max H
    best = 0.0
    for j in range(kc + 1):
        prev[j] = 0.0
    for i in range(1, kq + 1):
        left = 0.0
        cur[0] = 0.0
        for j in range(1, kc + 1):
            left = max(max(0.0, prev[j - 1] + S[r0 + i - 1, c0 + j - 1]), max(prev[j] - g, left - g))
            cur[j] = left
            if left > best:
                best = left
        for j in range(kc + 1):
            prev[j] = cur[j]
    return best


@njit(cache=True, nogil=True)
def block_distances(S, qo, to, qn2, tn2, code, indel, out, b_start, b_stop):
    """Distances of every query with targets ``b_start:b_stop`` of one similarity block.

    Parameters
    ----------
    S : np.ndarray [shape=(rq, rt), float32 or float64, C order]
        Similarities between the chunk's query segments and target segments.
    qo, to : np.ndarray [shape=(nq + 1,), (nt + 1,), int64]
        Local offsets of the queries' rows and the targets' columns (starting at 0).
    qn2, tn2 : np.ndarray [shape=(rq,), (rt,), float64]
        Squared norms of the rows (linkages, trace and btrace: :data:`NORM_CODES`).
    code : int
        The method, one of :data:`CODES`.
    indel : float
        The DP methods' insertion/deletion penalty.
    out : np.ndarray [shape=(nq, nt), float64]
        Receives the distances (NaN where a sequence is empty).
    b_start, b_stop : int
        The targets this call handles.
    """
    nq = qo.shape[0] - 1
    kmax = 1
    for b in range(b_start, b_stop):
        kmax = max(kmax, to[b + 1] - to[b])
    prev = np.empty(kmax + 1)
    cur = np.empty(kmax + 1)
    for b in range(b_start, b_stop):
        c0 = to[b]
        kc = to[b + 1] - c0
        for a in range(nq):
            r0 = qo[a]
            kq = qo[a + 1] - r0
            if kq == 0 or kc == 0:
                out[a, b] = np.nan
            elif code == 0:
                out[a, b] = _linkage(S, r0, kq, c0, kc, qn2, tn2, False)
            elif code == 1:
                out[a, b] = _linkage(S, r0, kq, c0, kc, qn2, tn2, True)
            elif code == 2:
                out[a, b] = -_diagonal(S, r0, kq, c0, kc, False)
            elif code == 3:
                out[a, b] = -_diagonal(S, r0, kq, c0, kc, True)
            elif code == 4:
                out[a, b] = -_nw(S, r0, kq, c0, kc, indel, prev, cur)
            elif code == 5:
                out[a, b] = -_sw(S, r0, kq, c0, kc, indel, prev, cur)
            elif code == 6:
                out[a, b] = _diagonal_sq(S, r0, kq, c0, kc, qn2, tn2, False)
            else:
                out[a, b] = _diagonal_sq(S, r0, kq, c0, kc, qn2, tn2, True)



@njit(cache=True, nogil=True)
def _half_lut(bits, lut, out):
    flat = bits.ravel()
    res = out.ravel()
    for i in range(flat.size):
        res[i] = lut[flat[i]]


_LUT = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)


def half_to_float32(x: np.ndarray) -> np.ndarray:
    """float16 -> float32 by table look-up, exact (about 4x faster than numpy's cast here)."""
    x = np.ascontiguousarray(x)
    out = np.empty(x.shape, dtype=np.float32)
    if x.size:
        _half_lut(x.view(np.uint16), _LUT, out)
    return out


@njit(cache=True, nogil=True)
def _means(data, offsets, out):
    d = data.shape[1]
    acc = np.empty(d)
    for i in range(offsets.shape[0] - 1):
        r0, r1 = offsets[i], offsets[i + 1]
        if r1 == r0:
            continue
        acc[:] = 0.0
        for r in range(r0, r1):
            for k in range(d):
                acc[k] += data[r, k]
        for k in range(d):
            out[i, k] = acc[k] / (r1 - r0)


@njit(cache=True, nogil=True)
def _means_half(bits, lut, offsets, out):
    d = bits.shape[1]
    acc = np.empty(d)
    for i in range(offsets.shape[0] - 1):
        r0, r1 = offsets[i], offsets[i + 1]
        if r1 == r0:
            continue
        acc[:] = 0.0
        for r in range(r0, r1):
            for k in range(d):
                acc[k] += lut[bits[r, k]]
        for k in range(d):
            out[i, k] = acc[k] / (r1 - r0)


def item_means(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Mean of each item's rows, ``(N, d)`` float32 (NaN rows for items without rows)."""
    n = len(offsets) - 1
    out = np.full((n, data.shape[1]), np.nan, dtype=np.float32)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    data = np.ascontiguousarray(data)
    if data.dtype == np.float16:
        _means_half(data.view(np.uint16), _LUT, offsets, out)
    else:
        _means(data, offsets, out)
    return out


def threads() -> int:
    """CPUs this process may use (the threads the work is split between)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_WARM: set = set()


def warmup(dtype=np.float32) -> None:
    """Load (or compile) the kernel for similarity blocks of *dtype* once per process.

    numba's first call in a process costs a second or more (initialisation, cache
    loading); callers that time their work call this first.
    """
    key = np.dtype(dtype).str
    if key in _WARM:
        return
    S = np.zeros((1, 1), dtype=dtype)
    o = np.array([0, 1], dtype=np.int64)
    block_distances(S, o, o, np.zeros(1), np.zeros(1), 4, 0.0, np.empty((1, 1)), 0, 1)
    if not _WARM:  # the other kernels, once
        item_means(np.zeros((1, 1), dtype=np.float32), o)
        item_means(np.zeros((1, 1), dtype=np.float16), o)
        _half_lut(np.zeros((1, 1), dtype=np.uint16), _LUT, np.empty((1, 1), dtype=np.float32))
    _WARM.add(key)
