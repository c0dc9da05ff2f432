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

from numba import njit, uint32

__all__ = ["CODES", "NORM_CODES", "block_distances", "half_diagonals", "warmup", "threads", "half_to_float32",
           "item_means"]

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


# --- float16 rows read straight from the catalog -------------------------------------------
#
# numba has no float16 type on the CPU. A float16 value's bits convert exactly to float32
# ones with integer operations that vectorise (IEEE 754 binary16 -> binary32):
#   normal (exponent 1-30):  shift exponent and mantissa up by 13 bits, add (127 - 15) to
#                             the exponent;
#   inf / NaN (exponent 31): the same, plus another 112 (the float32 exponent 255), the
#                             mantissa (NaN payload) kept;
#   zero / subnormal (0):    mantissa * 2^-24 (an int -> float conversion, then a power
#                             of two: both exact, and no float32 subnormal is involved, so
#                             flush-to-zero modes cannot change it);
#   the sign bit moves from bit 15 to bit 31.

_U13 = np.uint32(13)
_U16 = np.uint32(16)
_ZERO = np.uint32(0)
_MAG = np.uint32(0x7FFF)
_EXP = np.uint32(0x7C00)
_MANT = np.uint32(0x03FF)
_SIGN = np.uint32(0x8000)
_BIAS = np.uint32(112 << 23)  # (127 - 15) << 23
_SUB = np.float32(2.0**-24)


@njit(cache=True, nogil=True)
def _half_bits(h, u):
    """float16 bits *h* (1-D uint16) -> float32 bits into *u* (1-D uint32, same length), exact."""
    f = u.view(np.float32)
    for k in range(h.shape[0]):
        x = uint32(h[k])
        v = uint32(uint32(x & _MAG) << _U13) + _BIAS
        u[k] = v + _BIAS if uint32(x & _EXP) == _EXP else v
    for k in range(h.shape[0]):
        x = uint32(h[k])
        if uint32(x & _EXP) == _ZERO:
            f[k] = np.float32(uint32(x & _MANT)) * _SUB
    for k in range(h.shape[0]):
        u[k] = u[k] | uint32(uint32(uint32(h[k]) & _SIGN) << _U16)


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _dot32(a, b):
    # float32 products summed in float32 lanes (reassociated, so the loop vectorises: the
    # rounding of a BLAS product, not numpy's pairwise sum)
    acc = np.float32(0.0)
    for k in range(a.shape[0]):
        acc += a[k] * b[k]
    return acc


@njit(cache=True, nogil=True)
def half_diagonals(bits, to, q, qo, qn2, best, squared, out, b_start, b_stop, scratch):
    """trace / btrace (and ``-mean``) of every query with targets ``b_start:b_stop`` of float16 rows.

    The fused form of :func:`block_distances` for the diagonal methods when the targets
    are float16 (a catalog streamed from disk): each target's rows are converted exactly
    to float32 once, into a small buffer that stays in the cache, and only the products
    on the pair's diagonals are computed — a few per target row against the query's
    whole similarity block — with no float32 copy of the chunk.

    Parameters
    ----------
    bits : np.ndarray [shape=(R * d,), uint16]
        The targets' rows, flattened (``data.view(np.uint16).ravel()``).
    to : np.ndarray [shape=(nt + 1,), int64]
        Local offsets of the targets' rows.
    q : np.ndarray [shape=(rq, d), float32, C order]
        The queries' rows; query ``a`` owns rows ``qo[a]:qo[a+1]``.
    qn2 : np.ndarray [shape=(rq,), float64]
        Squared norms of the query rows (read when *squared*).
    best, squared : bool
        ``best``: the best diagonal offset (btrace) rather than the main one (trace);
        ``squared``: Seg-VM-Net's sum of squared distances, else minus the mean
        similarity (``-mean`` methods). As :func:`block_distances`' codes 6, 7, 2, 3.
    out : np.ndarray [shape=(nq, nt), float64]
        Receives the distances (NaN where a sequence is empty).
    scratch : np.ndarray [shape=(>= kmax * d,), uint32]
        Room for one target's converted rows (one buffer per thread).
    """
    d = q.shape[1]
    nq = qo.shape[0] - 1
    t = scratch.view(np.float32)
    tn2 = np.empty(max(1, scratch.shape[0] // max(1, d)))
    for b in range(b_start, b_stop):
        c0 = to[b]
        kc = to[b + 1] - c0
        if kc == 0:
            for a in range(nq):
                out[a, b] = np.nan
            continue
        _half_bits(bits[c0 * d:(c0 + kc) * d], scratch[:kc * d])
        if squared:
            for j in range(kc):
                row = t[j * d:(j + 1) * d]
                tn2[j] = _dot32(row, row)
        for a in range(nq):
            r0 = qo[a]
            kq = qo[a + 1] - r0
            if kq == 0:
                out[a, b] = np.nan
                continue
            n = min(kq, kc)
            n_off = abs(kc - kq) + 1 if best else 1
            res = np.inf if squared else -np.inf
            for k in range(n_off):
                di = k if kq > kc else 0
                dj = k if kc > kq else 0
                acc = 0.0
                for i in range(n):
                    s = _dot32(q[r0 + di + i], t[(dj + i) * d:(dj + i + 1) * d])
                    if squared:
                        acc += max(qn2[r0 + di + i] + tn2[dj + i] - 2.0 * s, 0.0)
                    else:
                        acc += s
                if squared:
                    if acc < res:
                        res = acc
                else:
                    v = acc / n
                    if v > res:
                        res = v
            out[a, b] = res if squared else -res



@njit(cache=True, nogil=True)
def _half_blocks(h, u):
    # _half_bits a few thousand values at a time: its three passes stay in the cache
    step = 4096
    for a in range(0, h.shape[0], step):
        b = min(a + step, h.shape[0])
        _half_bits(h[a:b], u[a:b])


def half_to_float32(x: np.ndarray) -> np.ndarray:
    """float16 -> float32, exact, by the bit operations of :func:`_half_bits` (about 6x numpy's cast here)."""
    x = np.ascontiguousarray(x)
    out = np.empty(x.shape, dtype=np.float32)
    if x.size:
        _half_blocks(x.view(np.uint16).reshape(-1), out.view(np.uint32).reshape(-1))
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
def _means_half(bits, d, offsets, out):
    # bits: the rows' float16 bits, flattened; each row converted exactly in a small buffer
    acc = np.empty(d)
    row = np.empty(d, dtype=np.uint32)
    f = row.view(np.float32)
    for i in range(offsets.shape[0] - 1):
        r0, r1 = offsets[i], offsets[i + 1]
        if r1 == r0:
            continue
        acc[:] = 0.0
        for r in range(r0, r1):
            _half_bits(bits[r * d:(r + 1) * d], row)
            for k in range(d):
                acc[k] += f[k]
        for k in range(d):
            out[i, k] = acc[k] / (r1 - r0)


def item_means(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Mean of each item's rows, ``(N, d)`` float32 (NaN rows for items without rows)."""
    n = len(offsets) - 1
    out = np.full((n, data.shape[1]), np.nan, dtype=np.float32)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    data = np.ascontiguousarray(data)
    bits = data.view(np.uint16).reshape(-1) if data.dtype == np.float16 else None

    def part(ab) -> None:  # items a:b (their offsets index the whole data)
        a, b = ab
        if bits is not None:
            _means_half(bits, data.shape[1], offsets[a:b + 1], out[a:b])
        else:
            _means(data, offsets[a:b + 1], out[a:b])

    if len(data) < 65536:
        part((0, n))
    else:  # a streamed catalog's chunk: the threads share it (the kernels release the GIL)
        from vmtool.ranking.batched import _map, _parts

        _map(part, _parts(offsets, 0, n, threads()))
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
        for writeable in (True, False):  # a streamed chunk is a read-only memory map (numba compiles both)
            h = np.zeros(1, dtype=np.float16)
            h.setflags(write=writeable)
            half_to_float32(h)
            item_means(h.reshape(1, 1), o)
            half_diagonals(h.view(np.uint16), o, np.zeros((1, 1), dtype=np.float32), o, np.zeros(1), True, True,
                           np.empty((1, 1)), 0, 1, np.empty(1, dtype=np.uint32))
    _WARM.add(key)
