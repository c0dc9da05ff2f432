"""Ranking distances, alignments, metrics, scenarios, prefilter and synthetic catalogs.

The batched code is checked against plain, literal Python transcriptions of every
method (below), including the two dynamic-programming algorithms, on random inputs
(property-based tests).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmtool.errors import FormatError, ParameterError
from vmtool.ranking import (
    METHODS,
    SegmentSet,
    align,
    crop_queries,
    distance_matrices,
    distances,
    ground_truth_ranks,
    load_catalog,
    load_item,
    parse_method,
    parse_methods,
    rank,
    rank_metrics,
    stretch_targets,
)
from vmtool.ranking import batched as distances_module
from vmtool.ranking.evaluate import apply_scenario, evaluate, evaluate_sets, parse_directions, parse_scenarios
from vmtool.ranking.rank import top_k
from vmtool.synth import synth_catalog, synth_embeddings

# --- literal transcriptions -------------------------------------------------------------------


def dot(u, v):
    return sum(a * b for a, b in zip(u, v))


def sq_euclid(u, v):
    return sum((a - b) ** 2 for a, b in zip(u, v))


def euclid(u, v):
    return math.sqrt(sq_euclid(u, v))


def mean_vector(rows):
    return [sum(r[k] for r in rows) / len(rows) for k in range(len(rows[0]))]


def normalised(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v] if n > 0 else v


def similarity_matrix(Q, M):
    return [[dot(q, m) for m in M] for q in Q]


def algorithm_1_nw(S, indel):
    """Needleman-Wunsch style alignment score of a similarity matrix (global)."""
    n, m = len(S), len(S[0])
    H = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        H[i][0] = H[i - 1][0] - indel
    for j in range(1, m + 1):
        H[0][j] = H[0][j - 1] - indel
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            match = H[i - 1][j - 1] + S[i - 1][j - 1]
            delete = H[i - 1][j] - indel
            insert = H[i][j - 1] - indel
            H[i][j] = max(match, delete, insert)
    return H[n][m]


def algorithm_2_sw(S, indel):
    """Smith-Waterman style alignment score of a similarity matrix (local)."""
    n, m = len(S), len(S[0])
    H = [[0.0] * (m + 1) for _ in range(n + 1)]
    best = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            match = H[i - 1][j - 1] + S[i - 1][j - 1]
            delete = H[i - 1][j] - indel
            insert = H[i][j - 1] - indel
            H[i][j] = max(0.0, match, delete, insert)
            best = max(best, H[i][j])
    return best


def paper_trace(Q, M):
    """Seg-VM-Net, delta_trace: sum over i <= min(Kc, Kq) of ||m_i - q_i||^2."""
    return sum(sq_euclid(M[i], Q[i]) for i in range(min(len(M), len(Q))))


def paper_best_trace(Q, M):
    """Seg-VM-Net, delta_bt: the smallest trace over the diagonals (the shorter inside the longer)."""
    kc, kq = len(M), len(Q)
    if kc <= kq:
        return min(sum(sq_euclid(M[i], Q[i + k]) for i in range(kc)) for k in range(kq - kc + 1))
    return min(sum(sq_euclid(M[i + k], Q[i]) for i in range(kq)) for k in range(kc - kq + 1))


def trace(S):
    n = min(len(S), len(S[0]))
    return sum(S[i][i] for i in range(n)) / n


def best_trace(S):
    kq, kc = len(S), len(S[0])
    n = min(kq, kc)
    best = -math.inf
    for k in range(abs(kc - kq) + 1):
        if kc >= kq:
            value = sum(S[i][i + k] for i in range(n)) / n
        else:
            value = sum(S[i + k][i] for i in range(n)) / n
        best = max(best, value)
    return best


def reference_distance(method, Q, M, q_clip=None, m_clip=None):
    """The distance of one query (list of vectors) to one target, by simple loops."""
    name, indel = method.name, method.indel
    if name == "clip":
        return euclid(q_clip, m_clip)
    if name == "centroid":  # Seg-VM-Net: squared distance between the raw means
        return sq_euclid(mean_vector(M), mean_vector(Q))
    if name == "centroid-unit":
        return euclid(normalised(mean_vector(Q)), normalised(mean_vector(M)))
    if name == "single":
        return min(sq_euclid(m, q) for q in Q for m in M)
    if name == "complete":
        return max(sq_euclid(m, q) for q in Q for m in M)
    if name == "trace":
        return paper_trace(Q, M)
    if name == "btrace":
        return paper_best_trace(Q, M)
    S = similarity_matrix(Q, M)
    if name == "trace-mean":
        return -trace(S)
    if name == "btrace-mean":
        return -best_trace(S)
    if name == "nw-dtw":
        return -algorithm_1_nw(S, indel)
    return -algorithm_2_sw(S, indel)


# --- strategies --------------------------------------------------------------------------------


def unit_rows(rng, k, d):
    x = rng.standard_normal((k, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def random_set(rng, n, lengths, d, *, empty_ok=False, unit=True):
    seqs = []
    for _ in range(n):
        k = int(rng.integers(lengths[0], lengths[1] + 1))
        rows = unit_rows(rng, k, d) if k else np.zeros((0, d))
        if not unit:  # the paper's distances do not assume unit vectors
            rows = rows * rng.uniform(0.2, 2.0, size=(k, 1))
        seqs.append(rows)
    clip = unit_rows(rng, n, d)
    return SegmentSet.from_sequences(seqs, clip=clip, dim=d)


cases = st.fixed_dictionaries({
    "seed": st.integers(0, 2**31 - 1),
    "nq": st.integers(1, 5),
    "nt": st.integers(1, 6),
    "d": st.integers(1, 6),
    "kmax": st.integers(1, 7),
    "indel": st.floats(0.0, 0.6, allow_nan=False),
    "unit": st.booleans(),
})
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_against_reference(case, *, diag_min=None, block_mb=64.0, monkeypatch=None):
    rng = np.random.default_rng(case["seed"])
    Q = random_set(rng, case["nq"], (1, case["kmax"]), case["d"], unit=case["unit"])
    T = random_set(rng, case["nt"], (1, case["kmax"]), case["d"], unit=case["unit"])
    methods = [parse_method(m) for m in METHODS if m not in ("nw-dtw", "sw-dtw", "head")]
    methods += [parse_method(f"nw-dtw:{case['indel']}"), parse_method(f"sw-dtw:{case['indel']}")]
    if diag_min is not None:
        monkeypatch.setattr(distances_module, "DIAG_MIN_QUERIES", diag_min)
    got = distance_matrices(Q, T, methods, dtype=np.float64, block_mb=block_mb)
    for m in methods:
        for a in range(len(Q)):
            for b in range(len(T)):
                want = reference_distance(m, Q.segments(a).tolist(), T.segments(b).tolist(),
                                          Q.clip[a].tolist(), T.clip[b].tolist())
                assert got[m.label][a, b] == pytest.approx(want, abs=1e-6), (m.label, a, b)


@SETTINGS
@given(case=cases)
def test_batched_distances_equal_the_literal_algorithms(case):
    check_against_reference(case)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(case=cases)
def test_grouped_diagonals_and_tiny_chunks_equal_the_literal_algorithms(case, monkeypatch):
    # the diagonal methods by grouped diagonal products; one item per similarity block
    check_against_reference(case, diag_min=1, block_mb=1e-4, monkeypatch=monkeypatch)


@settings(max_examples=25, deadline=None)
@given(case=cases)
def test_alignment_score_and_path(case):
    rng = np.random.default_rng(case["seed"])
    kq, kc = (int(x) for x in rng.integers(1, case["kmax"] + 1, size=2))
    q, t = unit_rows(rng, kq, case["d"]), unit_rows(rng, kc, case["d"])
    S = similarity_matrix(q.tolist(), t.tolist())
    g = case["indel"]
    for name, ref in (("nw-dtw", lambda: algorithm_1_nw(S, g)), ("sw-dtw", lambda: algorithm_2_sw(S, g)),
                      ("trace", lambda: -paper_trace(q.tolist(), t.tolist())),
                      ("btrace", lambda: -paper_best_trace(q.tolist(), t.tolist())),
                      ("trace-mean", lambda: trace(S)), ("btrace-mean", lambda: best_trace(S))):
        al = align(q, t, f"{name}:{g}" if name.endswith("dtw") else name)
        assert al.score == pytest.approx(ref(), abs=1e-9)
        p = al.path
        # matched pairs strictly increase in both sequences
        assert np.all(np.diff(p[:, 0]) > 0) and np.all(np.diff(p[:, 1]) > 0)
        matched = sum(S[i][j] for i, j in p)
        if name == "nw-dtw":  # the path's own score: matches minus one indel per skipped segment
            assert matched - g * (kq + kc - 2 * len(p)) == pytest.approx(al.score, abs=1e-9)
        elif name == "sw-dtw" and len(p):
            gaps = (p[-1, 0] - p[0, 0] + 1 - len(p)) + (p[-1, 1] - p[0, 1] + 1 - len(p))
            assert matched - g * gaps == pytest.approx(al.score, abs=1e-9)
        elif name in ("trace-mean", "btrace-mean"):
            assert matched / len(p) == pytest.approx(al.score, abs=1e-9)
            assert len(p) == min(kq, kc) and np.all(p[:, 1] - p[:, 0] == al.offset)
        elif name in ("trace", "btrace"):  # minus the path's sum of squared distances
            assert -sum(al.distance_matrix[i, j] ** 2 for i, j in p) == pytest.approx(al.score, abs=1e-9)
            assert len(p) == min(kq, kc) and np.all(p[:, 1] - p[:, 0] == al.offset)
    # and the batched kernel agrees with the alignment
    d = distances(SegmentSet.from_sequences([q]), SegmentSet.from_sequences([t]), f"nw-dtw:{g}", dtype=np.float64)
    assert d[0, 0] == pytest.approx(align(q, t, f"nw-dtw:{g}").distance, abs=1e-9)


def test_paper_distances_by_hand():
    """Seg-VM-Net's equations (section IV-D) on a 3-segment query and a 2-segment target,
    computed by hand. Squared distances D[i][j] = ||q_i - m_j||^2 with
    q = (1,0), (0,1), (1,1) and m = (0,1), (1,1):  D = [[2, 1], [0, 1], [1, 0]]."""
    Q = SegmentSet.from_sequences([np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])])
    M = SegmentSet.from_sequences([np.array([[0.0, 1.0], [1.0, 1.0]])])
    want = {
        "trace": 2 + 1,  # D11 + D22, min(Kc, Kq) = 2 terms
        "btrace": 0 + 0,  # Kc < Kq: offsets k = 0 (2 + 1) and k = 1 (D21 + D32 = 0 + 0)
        "centroid": (2 / 3 - 1 / 2) ** 2 + (2 / 3 - 1) ** 2,  # means (2/3, 2/3) and (1/2, 1): 5/36
        "single": 0, "complete": 2,
        "trace-mean": -(0 + 1) / 2,  # similarities q1.m1 = 0, q2.m2 = 1
        "btrace-mean": -(1 + 2) / 2,  # offset 1: q2.m1 = 1, q3.m2 = 2
        "centroid-unit": math.sqrt(2 - 2 * 3 / math.sqrt(10)),  # cos of the means = 3 / sqrt(10)
    }
    got = distance_matrices(Q, M, list(want), dtype=np.float64)
    for name, value in want.items():
        assert got[name][0, 0] == pytest.approx(value, abs=1e-7), name  # means are kept as float32
    assert align(Q.segments(0), M.segments(0), "btrace").offset == -1  # the query's 2nd segment on the target's 1st
    # the grouped-diagonal path (many queries) gives the same values
    many = SegmentSet.from_sequences([Q.segments(0)] * 40)
    grouped = distance_matrices(many, M, ["trace", "btrace", "trace-mean", "btrace-mean"], dtype=np.float64)
    for name, d in grouped.items():
        assert np.allclose(d, want[name], atol=1e-12), name


def test_float32_compute_and_float16_storage_are_close():
    rng = np.random.default_rng(1)
    Q, T = random_set(rng, 6, (3, 9), 64), random_set(rng, 40, (3, 9), 64)
    ref = distance_matrices(Q, T, "all", dtype=np.float64)
    f32 = distance_matrices(Q, T, "all")
    T16 = SegmentSet(T.data.astype(np.float16), T.offsets, spans=T.spans, clip=T.clip.astype(np.float16))
    f16 = distance_matrices(Q, T16, "all", block_mb=0.01)  # several converted chunks
    for k in ref:
        assert np.allclose(f32[k], ref[k], atol=1e-5), k
        assert np.allclose(f16[k], ref[k], atol=1e-2), k


def test_float16_converts_to_float32_bit_for_bit():
    """Every float16 value — zeros of both signs, subnormals, normals, infinities, NaN
    payloads — converts exactly (the compiled bit operations, not a table)."""
    from vmtool.ranking._kernels import half_to_float32, item_means

    every = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).reshape(128, 512)
    want = every.astype(np.float32)
    assert np.array_equal(half_to_float32(every).view(np.uint32), want.view(np.uint32))
    offsets = np.array([0, 1, 1, 40, 128])  # an item without rows too
    assert np.array_equal(item_means(every, offsets), item_means(want, offsets), equal_nan=True)


def float16_with_edge_values(s: SegmentSet, inf_item: int) -> SegmentSet:
    """*s* stored as float16, with a zero row, subnormals, negative zeros, and an infinity
    in the first row of item *inf_item*."""
    data = s.data.astype(np.float16)
    data[0] = 0.0
    data[1, ::3] = np.float16(6e-8)  # subnormal (the smallest float16 is 5.96e-8)
    data[2, 1::4] = -np.float16(3e-6)
    data[3, ::5] = -0.0
    data[s.offsets[inf_item], 1] = np.inf
    assert np.any((data != 0) & (np.abs(data) < np.float16(6.1e-5)))
    return SegmentSet(data, s.offsets)


@pytest.mark.parametrize("nq", [1, 3])
def test_fused_float16_diagonals_equal_the_similarity_block_path(nq):
    """trace / btrace (and -mean) of a few queries with float16 targets — the fused kernel a
    streamed catalog uses — equal the similarity-block path on the same values as float32,
    within float32 rounding; empty sequences give NaN, an infinite value what it gives there."""
    rng = np.random.default_rng(5)
    Q = random_set(rng, nq, (0, 9), 40, unit=False)
    T = random_set(rng, 60, (0, 12), 40, unit=False)
    b_inf = int(np.flatnonzero(T.lengths > 0)[-1])
    T16 = float16_with_edge_values(T, b_inf)
    T32 = SegmentSet(T16.data.astype(np.float32), T16.offsets)
    assert distances_module._fused(T16, distances_module._MatMul("cpu", np.dtype(np.float32)))
    methods = ["trace", "btrace", "trace-mean", "btrace-mean"]
    got = distance_matrices(Q, T16, methods)
    want = distance_matrices(Q, T32, methods)  # float32 targets: the block path
    for m in methods:
        assert np.isnan(got[m][:, T16.lengths == 0]).all() and np.isnan(got[m][Q.lengths == 0]).all()
        np.testing.assert_allclose(got[m], want[m], rtol=1e-5, atol=1e-5, err_msg=m)
    assert np.isinf(got["trace-mean"][Q.lengths > 0, b_inf]).all()  # the infinity is read, not lost


def test_empty_sequences_give_nan():
    rng = np.random.default_rng(2)
    Q = SegmentSet.from_sequences([unit_rows(rng, 3, 4), np.zeros((0, 4))], dim=4)
    T = SegmentSet.from_sequences([np.zeros((0, 4)), unit_rows(rng, 2, 4)], dim=4)
    d = distances(Q, T, "nw-dtw")
    assert np.isnan(d[0, 0]) and np.isnan(d[1, 1]) and np.isfinite(d[0, 1])


def test_dimension_mismatch_and_missing_clip():
    rng = np.random.default_rng(3)
    with pytest.raises(ParameterError, match="dimension mismatch: the queries have 4-d embeddings, the targets 5-d"):
        distances(random_set(rng, 1, (1, 2), 4), random_set(rng, 1, (1, 2), 5))
    s = SegmentSet.from_sequences([unit_rows(rng, 2, 4)])
    with pytest.raises(ParameterError, match="'clip' needs clip embeddings"):
        distances(s, s, "clip")


# --- methods -------------------------------------------------------------------------------------


def test_method_specs():
    assert parse_method("nw-dtw").indel == 0.05 and parse_method("SW-DTW").indel == 0.01
    assert parse_method("nw-dtw:0.1").label == "nw-dtw:0.1" and parse_method("nw-dtw:0.05").label == "nw-dtw"
    assert [m.label for m in parse_methods("all")] == [m for m in METHODS if m != "head"]  # head needs a model
    assert [m.label for m in parse_methods("trace,btrace,trace")] == ["trace", "btrace"]
    with pytest.raises(ParameterError, match="unknown method 'dtw'; methods: clip, centroid"):
        parse_method("dtw")
    with pytest.raises(ParameterError, match="takes no indel penalty"):
        parse_method("trace:0.1")
    with pytest.raises(ParameterError, match="indel penalty 'x' is not a number"):
        parse_method("nw-dtw:x")
    with pytest.raises(ParameterError, match="must be a number >= 0"):
        parse_method("sw-dtw:-1")


def test_align_rejects_non_alignment_methods():
    x = np.eye(3)
    with pytest.raises(ParameterError, match="does not align"):
        align(x, x, "centroid")


def test_edit_list_with_spans():
    rng = np.random.default_rng(4)
    t = unit_rows(rng, 6, 16)
    q = t[2:5] + 0.01 * rng.standard_normal((3, 16))
    spans = np.array([[0, 5], [5, 9], [9, 15], [15, 20], [20, 31], [31, 40]], dtype=float)
    al = align(q, t, "sw-dtw", query_spans=[[0, 4], [4, 10], [10, 21]], target_spans=spans)
    assert al.path.tolist() == [[0, 2], [1, 3], [2, 4]]
    assert al.target_span == (9.0, 31.0)
    e = al.edits[1]
    assert (e.query_span, e.target_first, e.target_span) == ((4.0, 10.0), 3, (15.0, 20.0))
    bt = align(q, t, "btrace", target_spans=spans)
    assert bt.offset == 2 and bt.target_segments == (2, 4)
    d = al.to_dict()
    assert d["edits"][0]["target_segments"] == [2, 2] and len(d["similarity"]) == 3


# --- metrics and scenarios ---------------------------------------------------------------------------


def test_ground_truth_ranks_and_metrics():
    d = np.array([[0.1, 0.5, 0.3],
                  [0.2, 0.4, 0.4],   # a tie with the ground truth does not count against it
                  [np.nan, 0.0, 0.9]])
    assert ground_truth_ranks(d).tolist() == [1, 2, 2]
    d2 = d.copy()
    d2[1, 1] = np.nan  # a missing ground truth ranks last
    assert ground_truth_ranks(d2)[1] == 3
    m = rank_metrics(np.array([1, 2, 11, 30]))
    assert (m["r1"], m["r10"], m["r25"]) == (25.0, 50.0, 75.0)
    assert m["mean_rank"] == 11.0 and m["median_rank"] == 6.5
    assert m["ci95"] == pytest.approx(1.96 * np.std([1, 2, 11, 30], ddof=1) / 2)


def test_scenarios():
    rng = np.random.default_rng(5)
    seqs = [unit_rows(rng, k, 4) for k in (1, 2, 3, 5)]
    spans = [np.stack([np.arange(k) * 2.0, np.arange(k) * 2.0 + 2], axis=1) for k in (1, 2, 3, 5)]
    s = SegmentSet.from_sequences(seqs, spans=spans)
    c = crop_queries(s)
    assert c.lengths.tolist() == [1, 2, 1, 3]
    assert np.array_equal(c.segments(3), seqs[3][2:]) and c.spans_of(3)[0].tolist() == [4.0, 6.0]
    st_ = stretch_targets(s)
    assert st_.lengths.tolist() == [2, 4, 6, 10]
    assert np.array_equal(st_.segments(1), np.repeat(seqs[1], 2, axis=0))
    assert st_.spans_of(1).tolist() == [[0, 1], [1, 2], [2, 3], [3, 4]]
    q, t = apply_scenario(s, s, "crop-stretch")
    assert q.lengths.tolist() == [1, 2, 1, 3] and t.lengths.tolist() == [2, 4, 6, 10]
    assert parse_scenarios(["all"]) == ["vanilla", "crop-query", "stretch-targets", "crop-stretch"]
    assert parse_scenarios(["crop-query,vanilla"]) == ["crop-query", "vanilla"]
    assert parse_directions("both") == ["v2m", "m2v"]
    with pytest.raises(ParameterError, match="unknown scenario 'cropped'"):
        parse_scenarios(["cropped"])


def test_scenarios_separate_the_methods():
    """Cropping the query hurts trace but not btrace; stretching the targets hurts
    btrace but not the DP alignments (the papers' finding, on synthetic data). Shown with
    the mean variants: the paper's sums favour short targets on these variable-length
    sequences (docs/performance.md, "Seg-VM-Net protocol")."""
    sets = synth_embeddings(120, seed=7, dim=32)
    ev = evaluate_sets(sets["video"], sets["audio"], "trace-mean,btrace-mean,nw-dtw,btrace",
                       scenarios=["all"], directions=["v2m", "m2v"])
    r1 = {(s.method, s.direction, s.scenario): s.metrics["r1"] for s in ev.scores}
    for d in ("v2m", "m2v"):
        assert r1[("trace-mean", d, "vanilla")] > 80 and r1[("nw-dtw", d, "vanilla")] > 80
        assert r1[("trace-mean", d, "crop-query")] < r1[("btrace-mean", d, "crop-query")] - 20
        assert r1[("btrace-mean", d, "stretch-targets")] < r1[("nw-dtw", d, "stretch-targets")] - 20
        # the paper's btrace, a sum over min(Kc, Kq) pairs, prefers shorter targets
        assert r1[("btrace", d, "vanilla")] < r1[("btrace-mean", d, "vanilla")] - 20
    s = ev.score("nw-dtw", "v2m", "vanilla")
    assert s.n_queries == 120 and len(s.ranks) == 120 and s.seconds > 0
    assert ev.to_dict()["results"][0]["method"] == "trace-mean"


# --- ranking and prefilter ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sets():
    return synth_embeddings(300, seed=11, dim=64)


def test_rank_finds_the_item_and_its_span(sets):
    video, audio = sets["video"], sets["audio"]
    q = video.subset([17])
    r = rank(q, audio, "btrace-mean", k=5)
    assert [x.rank for x in r.results] == [1, 2, 3, 4, 5]
    assert r.results[0].id == "item00017" and r.results[0].index == 17
    assert r.results[0].span == (0.0, float(audio.spans_of(17)[-1, 1]))
    assert all(a.distance <= b.distance for a, b in zip(r.results, r.results[1:]))
    r2 = rank(q, audio, "nw-dtw", k=3, exclude=np.arange(300) == 17)
    assert r2.excluded == 1 and "item00017" not in [x.id for x in r2.results]
    assert rank(q, audio, "clip", k=1).results[0].span is None


def test_prefilter(sets):
    video, audio = sets["video"], sets["audio"]
    q = video.subset([3])
    full = rank(q, audio, "nw-dtw", k=10)
    same = rank(q, audio, "nw-dtw", k=10, prefilter=300)  # keeps everything
    assert [x.id for x in same.results] == [x.id for x in full.results] and same.prefilter is None
    pre = rank(q, audio, "nw-dtw", k=10, prefilter=60)
    assert pre.prefilter == 60 and pre.results[0].id == "item00003"
    assert [x.distance for x in pre.results] == pytest.approx(
        sorted(x.distance for x in pre.results))
    # every prefiltered result is a true distance
    ids = {x.id: x.distance for x in full.results}
    for x in pre.results:
        if x.id in ids:
            assert x.distance == pytest.approx(ids[x.id])
    with pytest.raises(ParameterError, match="--prefilter must be >= 1"):
        rank(q, audio, "nw-dtw", prefilter=0)


def test_top_k_orders_ties_by_index():
    d = np.array([0.5, 0.1, np.nan, 0.1, 0.3, np.inf])
    assert top_k(d, 3).tolist() == [1, 3, 4]
    assert top_k(d, 10).tolist() == [1, 3, 4, 0]


# --- synthetic catalogs and reading catalogs --------------------------------------------------------------


def test_synthetic_embeddings_are_deterministic_unit_and_above_chance():
    a = synth_embeddings(50, seed=3, dim=24)
    b = synth_embeddings(50, seed=3, dim=24)
    assert np.array_equal(a["audio"].data, b["audio"].data) and np.array_equal(a["video"].clip, b["video"].clip)
    assert np.allclose(np.linalg.norm(a["audio"].data, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(a["video"].clip, axis=1), 1, atol=1e-5)
    lens = a["audio"].lengths
    assert lens.min() >= 8 and lens.max() <= 16 and np.array_equal(lens, a["video"].lengths)
    sp = a["audio"].spans_of(0)
    assert sp[0, 0] == 0 and np.allclose(sp[1:, 0], sp[:-1, 1])
    # a video queries only part of a big catalog: same items, same vectors
    big = synth_embeddings(1500, seed=3, dim=24, video_items=10)
    assert len(big["video"]) == 10 and len(big["audio"]) == 1500
    full = synth_embeddings(1500, seed=3, dim=24)
    assert np.array_equal(big["video"].data, full["video"].subset(range(10)).data)
    d = distances(a["video"], a["audio"], "nw-dtw")
    assert np.mean(ground_truth_ranks(d) <= 1) > 0.5
    with pytest.raises(ParameterError, match="seg_range"):
        synth_embeddings(5, seg_range=(0, 3))


@pytest.fixture(scope="module")
def catalog_file(tmp_path_factory):
    return synth_catalog(tmp_path_factory.mktemp("cat") / "cat.h5", 40, seed=5, dim=16)


def test_catalog_round_trip(catalog_file):
    sets = synth_embeddings(40, seed=5, dim=16)
    a = load_catalog(catalog_file, "audio")
    assert a.ids == sets["audio"].ids and np.array_equal(a.offsets, sets["audio"].offsets)
    assert np.allclose(a.data, sets["audio"].data) and np.allclose(a.spans, sets["audio"].spans)
    assert np.allclose(a.clip, sets["audio"].clip)
    it = load_item(catalog_file, "item00004", "video")
    assert np.allclose(it.segments(0), sets["video"].segments(4)) and it.sources == ["synthetic/item00004.mp4"]
    with pytest.raises(ParameterError, match="no item 'nope' in the collection"):
        load_item(catalog_file, "nope", "video")
    ev = evaluate(str(catalog_file), "clip,btrace", directions=["both"])
    assert ev.n_items == 40 and len(ev.scores) == 4


def test_float16_catalog(tmp_path):
    p = synth_catalog(tmp_path / "half.h5", 30, seed=2, dim=16, dtype="float16")
    a = load_catalog(p, "audio")
    assert a.data.dtype == np.float16 and a.clip.dtype == np.float16
    v = load_catalog(p, "video")
    d = distances(v, a, "btrace-mean")
    assert d.dtype == np.float64 and np.mean(ground_truth_ranks(d) <= 1) > 0.5


def test_collection_without_embeddings(tmp_path):
    from vmtool.store import CollectionWriter, Item

    p = tmp_path / "plain.h5"
    with CollectionWriter(p, config={}) as w:
        w.add(Item("a", "a.mp4", "0" * 64, 1.0, True, True), {})
    with pytest.raises(FormatError, match="has no embeddings"):
        load_catalog(p, "audio")
    with pytest.raises(FormatError, match="has no embeddings"):
        load_item(p, "a", "audio")
