"""``rank --prefilter`` with a sketch: the in-place kernel, the candidates by sketch centroid, a cheap open."""

from __future__ import annotations

import hashlib
import shutil

import h5py
import numpy as np
import pytest

from vmtool.ranking import load_catalog
from vmtool.ranking.batched import distances
from vmtool.ranking.index import _largest, build_index, fingerprint, open_index, rank_with_index
from vmtool.ranking.segments import SegmentSet
from vmtool.synth import synth_catalog


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    """200 items, 16-d, float16 (8 to 16 segments each)."""
    return synth_catalog(tmp_path_factory.mktemp("sketch") / "cat.h5", 200, seed=4, dim=16, dtype="float16")


@pytest.mark.parametrize("method", ["nw-dtw", "sw-dtw:0.1", "btrace", "trace", "btrace-mean", "single", "complete"])
def test_the_sketch_kernel_equals_distances_on_the_gathered_rows(method):
    from vmtool.ranking._sketch_kernels import sketch_distances

    rng = np.random.default_rng(3)
    lens = rng.integers(1, 9, size=700)
    lens[[5, 600]] = 0  # items without segment rows
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    sketch = rng.normal(size=(int(offsets[-1]), 6)).astype(np.float16)
    q = rng.normal(size=(5, 6)).astype(np.float32)
    cands = np.concatenate([[600], rng.permutation(np.delete(np.arange(700), [5, 600]))[:648], [5]])  # any order;
    # more than two groups of candidates per thread
    cands[10] = cands[11]  # a candidate twice
    got = sketch_distances(q, sketch, offsets, cands, method)
    rows = [sketch[offsets[i]:offsets[i + 1]].astype(np.float32) for i in cands]
    ts = SegmentSet(np.concatenate(rows), np.concatenate([[0], np.cumsum([len(r) for r in rows])]))
    want = distances(SegmentSet(q, np.array([0, 5])), ts, method)[0]
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.isnan(got).sum() == 2
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_largest_equals_a_full_partition():
    rng = np.random.default_rng(0)
    score = rng.normal(size=200_000).astype(np.float32)
    score[rng.integers(0, len(score), 5000)] = -np.inf  # items without rows
    for n in (1, 10, 3000, 24_000, 190_000, 300_000):
        got = _largest(score, n)
        finite = np.flatnonzero(np.isfinite(score))
        want = finite[np.argsort(-score[finite], kind="stable")[:n]]
        assert len(got) == len(want) == len(set(got.tolist()))
        assert np.sort(score[got]).tolist() == np.sort(score[want]).tolist()


def test_sketch_candidates_are_the_nearest_sketch_centroids(tmp_path, cat):
    c = tmp_path / "cat.h5"
    shutil.copy(cat, c)
    build_index(c, kind="flat", sketch_dim=8)
    idx = open_index(c, "audio")
    whole = load_catalog(c, "audio")
    rows = idx.sketch.astype(np.float64)
    means = np.stack([rows[idx.offsets[i]:idx.offsets[i + 1]].mean(0) for i in range(200)])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    q = whole.segments(11).astype(np.float32) @ idx.projection
    qc = q.mean(0) / np.linalg.norm(q.mean(0))
    want = np.argsort(-(means @ qc), kind="stable")[:25]
    got = idx.sketch_candidates(q, 25)
    assert list(got) == sorted(got)  # catalog order
    assert set(got) == set(want)


def test_prefilter_of_the_whole_catalog_by_sketch_equals_the_exact_ranking(tmp_path, cat):
    from vmtool.ranking import rank
    from vmtool.ranking.catalog import load_item

    c = tmp_path / "cat.h5"
    shutil.copy(cat, c)
    build_index(c, kind="flat", sketch_dim=16, rerank=20)  # 16 of 16 directions: the sketch loses nothing
    idx = open_index(c, "audio")
    whole = load_catalog(c, "audio")
    q = load_item(c, "item00042", "video")
    exact = rank(q, whole, "nw-dtw", k=5)
    for how in ("sketch", "centroid"):
        steps = {}
        got = rank_with_index(q, c, idx, "nw-dtw", k=5, prefilter=200, candidates=how, timings=steps)
        assert [(r.index, r.id) for r in got.results] == [(r.index, r.id) for r in exact.results]
        np.testing.assert_allclose([r.distance for r in got.results], [r.distance for r in exact.results])
        assert set(steps) == {"candidates", "sketch", "read", "rank"}
    with pytest.raises(Exception, match="unknown candidate score 'best'; use sketch or centroid"):
        rank_with_index(q, c, idx, "nw-dtw", k=5, prefilter=20, candidates="best")


def test_an_ivf_index_with_a_sketch_opens_without_loading_faiss_lists(tmp_path, cat):
    pytest.importorskip("faiss")
    c = tmp_path / "cat.h5"
    shutil.copy(cat, c)
    build_index(c, kind="ivf", nlist=4)
    idx = open_index(c, "audio")
    assert callable(idx._ivf) and idx.n_indexed == 200  # not deserialised by open_index
    assert len(idx.search(load_catalog(c, "audio").centroids[3], 10)) == 10  # loaded on first use
    assert idx.ivf.ntotal == 200


def test_the_fingerprint_digest_is_unchanged(cat):
    """Indexes built before keep matching their catalog: the digest is a SHA-256 over every
    id then NUL, every content hash then NUL, then the offsets as little-endian int64."""
    h = hashlib.sha256()
    with h5py.File(cat, "r") as f:
        for col in ("items/id", "items/sha256"):
            for s in f[col].asstr()[()]:
                h.update(s.encode() + b"\0")
        h.update(f["embeddings/audio_segments/offsets"][()].astype("<i8").tobytes())
    assert fingerprint(cat, "audio")["digest"] == h.hexdigest()


def test_read_items_from_a_contiguous_catalog_in_any_order(tmp_path, cat):
    from vmtool.ranking.index import read_items

    c = tmp_path / "c.h5"
    shutil.copy(cat, c)
    with h5py.File(c, "a") as f:
        g = f["embeddings/audio_segments"]
        for name in ("data", "spans"):
            x = g[name][()]
            del g[name]
            g.create_dataset(name, data=x)  # contiguous: read through a memory map
            assert g[name].chunks is None
    whole = load_catalog(cat, "audio")
    idx = np.array([150, 3, 77, 3, 199, 0])
    for offsets in (None, whole.offsets):
        sub = read_items(c, "audio", idx, offsets=offsets)
        assert sub.ids == [whole.ids[i] for i in idx] and sub.sha256s == [whole.sha256s[i] for i in idx]
        for j, i in enumerate(idx):
            assert np.array_equal(sub.segments(j), whole.segments(i))
            assert np.array_equal(sub.spans_of(j), whole.spans_of(i))


def test_the_fingerprint_reads_the_model_from_the_root_attribute(tmp_path, cat):
    import json

    from vmtool.errors import FormatError

    c = tmp_path / "c.h5"
    shutil.copy(cat, c)
    with h5py.File(c, "r") as f:
        model = json.loads(f.attrs["model"])
    assert fingerprint(c, "audio")["model_sha256"] == model["sha256"]
    with h5py.File(c, "a") as f:
        f.attrs["model"] = "{not json"
    with pytest.raises(FormatError, match=r"root attribute 'model' is not valid JSON"):
        fingerprint(c, "audio")


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_an_index_without_a_sketch_gives_its_centroid_candidates(tmp_path, cat, kind):
    from vmtool.ranking import rank
    from vmtool.ranking.catalog import load_item

    if kind == "ivf":
        pytest.importorskip("faiss")
    c = tmp_path / "cat.h5"
    shutil.copy(cat, c)
    build_index(c, kind=kind, nlist=4 if kind == "ivf" else None, sketch_dim=0)
    idx = open_index(c, "audio")
    assert idx.sketch is None and not callable(idx._ivf) and idx.n_indexed == 200
    q = load_item(c, "item00042", "video")
    exact = rank(q, load_catalog(c, "audio"), "nw-dtw", k=5)
    got = rank_with_index(q, c, idx, "nw-dtw", k=5, prefilter=200)  # every item a candidate, read in full
    assert [(r.index, r.id) for r in got.results] == [(r.index, r.id) for r in exact.results]


def test_the_stored_sketch_centroids_are_those_computed_from_the_sketch(tmp_path, cat, monkeypatch):
    """Built chunk by chunk (here 10 rows at a time) and stored, the sketch centroids equal
    those computed from the whole sketch, which an index written without them falls back to."""
    from vmtool.ranking import index
    from vmtool.ranking._kernels import item_means

    c = tmp_path / "cat.h5"
    shutil.copy(cat, c)
    monkeypatch.setattr(index, "CHUNK_ROWS", 40)
    build_index(c, kind="flat", sketch_dim=8)
    idx = open_index(c, "audio")
    assert isinstance(idx._sketch_centroids, np.memmap)  # read from the file, not computed
    want = index.unit_rows(item_means(np.asarray(idx.sketch), idx.offsets))
    np.testing.assert_array_equal(np.asarray(idx.sketch_centroids), want)
    q = load_catalog(c, "audio").segments(7).astype(np.float32) @ idx.projection
    stored = idx.sketch_candidates(q, 30)
    with h5py.File(index.index_path(c), "a") as f:  # an index of before: no stored centroids
        del f["audio/sketch_centroids"]
    older = open_index(c, "audio")
    assert older._sketch_centroids is None
    assert older.sketch_candidates(q, 30).tolist() == stored.tolist()


def test_a_query_without_segments_is_refused_in_one_line(tmp_path, cat):
    import warnings

    from vmtool.errors import ParameterError

    c = tmp_path / "cat.h5"
    shutil.copy(cat, c)
    build_index(c, kind="flat", sketch_dim=8)
    idx = open_index(c, "audio")
    empty = SegmentSet(np.zeros((0, 16), dtype=np.float32), np.array([0, 0]), ids=["q"], modality="video")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning about an empty mean before the error
        with pytest.raises(ParameterError, match="the query has no segment embeddings; method 'nw-dtw' needs them"):
            rank_with_index(empty, c, idx, "nw-dtw", k=5, prefilter=50)
