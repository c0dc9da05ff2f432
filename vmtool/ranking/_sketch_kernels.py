"""Compiled kernel (numba): a query against chosen candidates of a prefilter index's sketch.

:func:`vmtool.ranking.batched.distances` on the candidates' sketch rows needs those rows
gathered into a new array first (a fancy index of a memory-mapped float16 dataset, then a
float16 -> float32 conversion, then one matrix product). At a million tracks a query has
50,000-100,000 candidates, 600,000-1,200,000 sketch rows: the gathering, not the
arithmetic, was most of the time. This kernel walks the candidates in groups, reads each
one's float16 rows in place (table look-up to float32; the rows of the candidates a few
places ahead are prefetched), forms the group's similarity
block with the query (one BLAS product per group of 64 candidates) and hands it to the
same reduction the exact ranking uses
(:func:`vmtool.ranking._kernels.block_distances`), so the distances are those of
``distances(query_sketch, candidates_sketch, method)`` up to float32 rounding of the
products' summation order.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from vmtool.ranking._kernels import CODES, block_distances, threads

__all__ = ["sketch_distances"]

AHEAD = 6  # candidates whose rows are prefetched ahead of the one being read


@intrinsic
def _prefetch(typingctx, arr, i, j):
    """Ask the CPU to fetch ``arr[i, j]``'s cache line (``llvm.prefetch``; a hint, no result).

    Each candidate's rows lie elsewhere in the sketch (hundreds of MB at a million tracks):
    without it the kernel waits on memory for every candidate (1.5 against 0.93 µs per
    candidate, single thread, 70,000 candidates of the million-track sketch).
    """
    from llvmlite import ir
    from numba.core import cgutils

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1], args[2]])
        i32 = ir.IntType(32)
        if getattr(ptr.type, "is_opaque", False):  # LLVM with opaque pointers
            name, arg = "llvm.prefetch.p0", ptr
        else:
            arg = builder.bitcast(ptr, ir.IntType(8).as_pointer())
            name = "llvm.prefetch.p0i8"
        fnty = ir.FunctionType(ir.VoidType(), [arg.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        builder.call(fn, [arg, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])  # read, keep, data
        return context.get_dummy_value()

    return types.void(arr, i, j), codegen

#: float16 bits -> float32 (exact: numpy's cast of every value). A sketch row has 32-128
#: values: one look-up each is cheaper here than the bit operations of
#: :func:`vmtool.ranking._kernels.half_to_float32`, which pay off on long rows.
_LUT = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)

GROUP = 64  # candidates per similarity block (about 800 rows; 256 ran 3x slower on the 2-core test machine)


@njit(cache=True, nogil=True)
def _sketch_block(q, qn2, bits, lut, offsets, cands, code, indel, out, c_start, c_stop):
    # candidates c_start:c_stop, GROUP at a time: their rows decoded into T, S = (T q^T)^T by BLAS,
    # then the exact ranking's reduction of the block
    m, r = q.shape
    qT = np.ascontiguousarray(q.T)
    qo = np.zeros(2, dtype=np.int64)
    qo[1] = m
    kmax = 0
    for c in range(c_start, c_stop):
        i = cands[c]
        kmax = max(kmax, offsets[i + 1] - offsets[i])
    cap = GROUP * max(kmax, 1)
    T = np.zeros((cap, r), dtype=np.float32)
    STbuf = np.empty((cap, m), dtype=np.float32)  # the products, allocated once per call
    tn2 = np.empty(cap)
    to = np.empty(GROUP + 1, dtype=np.int64)
    res = np.empty((1, GROUP))
    for g0 in range(c_start, c_stop, GROUP):
        g1 = min(g0 + GROUP, c_stop)
        col = 0
        to[0] = 0
        for c in range(g0, g1):
            if c + AHEAD < c_stop:
                ahead = cands[c + AHEAD]
                for row in range(offsets[ahead], offsets[ahead + 1]):
                    _prefetch(bits, row, 0)
            i = cands[c]
            for row in range(offsets[i], offsets[i + 1]):
                s2 = 0.0
                for k in range(r):
                    v = lut[bits[row, k]]
                    T[col, k] = v
                    s2 += v * v
                tn2[col] = s2
                col += 1
            to[c - g0 + 1] = col
        ST = STbuf[:max(col, 1)]
        if col:
            np.dot(T[:col], qT, ST)
        block_distances(ST.T, qo, to, qn2, tn2, code, indel, res, 0, g1 - g0)
        for c in range(g0, g1):
            out[c] = res[0, c - g0]


def sketch_distances(query_rows: np.ndarray, sketch: np.ndarray, offsets: np.ndarray, candidates: np.ndarray,
                     method) -> np.ndarray:
    """Distances of one query to *candidates*, on sketch rows read in place.

    Parameters
    ----------
    query_rows : np.ndarray [shape=(m, r)]
        The query's segment rows, projected on the sketch's directions.
    sketch : np.ndarray [shape=(R, r), float16]
        Every item's sketch rows (e.g. memory-mapped from the index).
    offsets : np.ndarray [shape=(N + 1,), int64]
        Item ``i`` owns sketch rows ``offsets[i]:offsets[i + 1]``.
    candidates : np.ndarray [shape=(P,), int64]
        The items to rank.
    method : str or Method
        A segment method of :data:`vmtool.ranking._kernels.CODES`.

    Returns
    -------
    np.ndarray [shape=(P,), float64]
        The distances, NaN for a candidate without rows (or an empty query).
    """
    from vmtool.ranking.batched import _blas_single_thread, _map
    from vmtool.ranking.methods import parse_method

    m = parse_method(method)
    q = np.ascontiguousarray(query_rows, dtype=np.float32)
    cands = np.ascontiguousarray(candidates, dtype=np.int64)
    out = np.full(len(cands), np.nan)
    if not len(cands) or not len(q):
        return out
    bits = sketch.view(np.uint16)
    offs = np.ascontiguousarray(offsets, dtype=np.int64)
    qn2 = (q.astype(np.float64) ** 2).sum(axis=1)
    code, indel = CODES[m.name], float(m.indel or 0.0)
    n = 4 * threads()  # pieces: a thread slowed by another process's work leaves less behind
    step = max(GROUP, -(-len(cands) // n))
    with _blas_single_thread():  # one BLAS thread in each of ours
        _map(lambda a: _sketch_block(q, qn2, bits, _LUT, offs, cands, code, indel, out, a,
                                     min(a + step, len(cands))), list(range(0, len(cands), step)))
    return out
