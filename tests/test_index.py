"""``vmtool index`` and ``rank --prefilter`` through the index: same answers, stale indexes refused."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool.cli import app
from vmtool.ranking import load_catalog
from vmtool.ranking.segments import SegmentSet
from vmtool.ranking.index import build_index, index_path, open_index, read_items, stream_centroids
from vmtool.synth import synth_catalog

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    """200 items, 16-d, float16 (8 to 16 segments each)."""
    return synth_catalog(tmp_path_factory.mktemp("index") / "cat.h5", 200, seed=4, dim=16, dtype="float16")


def ranking(catalog, *extra):
    res = run("rank", f"{catalog}#item00007", catalog, "-m", "nw-dtw", "-k", "5", "--format", "json", "-q", *extra)
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    return [(r["id"], r["distance"], r["start"], r["end"]) for r in out["results"]], out


def test_streamed_centroids_equal_the_in_memory_ones(cat):
    whole = load_catalog(cat, "audio")
    # a few items per chunk: the chunk boundaries fall everywhere
    np.testing.assert_allclose(stream_centroids(cat, "audio", chunk_rows=37), whole.centroids, atol=1e-6)


def test_read_items_reads_exactly_the_candidates(cat):
    whole = load_catalog(cat, "audio")
    idx = np.array([150, 3, 77, 3, 199])
    sub = read_items(cat, "audio", idx)
    assert sub.ids == [whole.ids[i] for i in idx]
    for j, i in enumerate(idx):
        assert np.array_equal(sub.segments(j), whole.segments(i))
        assert np.array_equal(sub.spans_of(j), whole.spans_of(i))


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_prefilter_through_the_index_equals_the_exact_ranking(tmp_path, cat, kind):
    if kind == "ivf":
        pytest.importorskip("faiss")
    c = tmp_path / "cat.h5"
    shutil.copy(cat, c)
    exact, _ = ranking(c, "--hubness", "none")  # --prefilter means no CSLS (auto)
    res = run("index", c, "--kind", kind, "-q")
    assert res.exit_code == 0, res.stderr
    assert index_path(c).exists()
    # every item a candidate: the index path must give the exact answer
    got, out = ranking(c, "--prefilter", 200)
    assert got == exact
    assert out["prefilter"] == 200 and out["targets"] == 200
    # fewer candidates: the best match (the item's own track) is still first
    got, out = ranking(c, "--prefilter", 20)
    assert got[0] == exact[0] and out["prefilter"] == 20


def test_flat_index_candidates_are_the_nearest_centroids(tmp_path, cat):
    c = tmp_path / "cat.h5"
    shutil.copy(cat, c)
    build_index(c, kind="flat")
    idx = open_index(c, "audio")
    whole = load_catalog(c, "audio")
    q = whole.centroids[11] + 0.1
    d = -(whole.centroids @ (q / np.linalg.norm(q)))
    assert list(idx.search(q, 10)) == list(np.argsort(d, kind="stable")[:10])


def test_a_changed_catalog_refuses_its_index(tmp_path, cat):
    c = tmp_path / "cat.h5"
    shutil.copy(cat, c)
    build_index(c, kind="flat")
    # items added since (as embed --resume or merge would): another catalog of 210 items
    synth_catalog(c, 210, seed=4, dim=16, dtype="float16")
    res = run("rank", f"{c}#item00007", c, "-m", "nw-dtw", "--prefilter", 20, "-q")
    assert res.exit_code == 1
    assert res.stderr.strip() == (f"Error: {c}.index: is stale: built for a catalog of 200 items, this one has 210 "
                                  f"(items added or removed since: embed --resume, merge); "
                                  f"rebuild it with: vmtool index {c}")
    # the same items embedded by another model
    shutil.copy(cat, c)
    with h5py.File(c, "a") as f:
        model = json.loads(f.attrs["model"])
        old = model["sha256"]
        model["sha256"] = "f" * 64
        f.attrs["model"] = json.dumps(model)
    res = run("rank", f"{c}#item00007", c, "-m", "nw-dtw", "--prefilter", 20, "-q")
    assert res.exit_code == 1
    assert f"is stale: built for embeddings of another model (model {old[:12]}, the catalog's ffffffffffff)" \
        in res.stderr
    # rebuilt: served again
    assert run("index", c, "--kind", "flat", "-q").exit_code == 0
    assert run("rank", f"{c}#item00007", c, "-m", "nw-dtw", "--prefilter", 20, "-q").exit_code == 0


def test_index_of_a_file_without_segment_embeddings(tmp_path, music_wav):
    feats = tmp_path / "f.h5"
    assert run("extract", music_wav, "-a", "handcrafted", "-v", "none", "-o", feats, "-q").exit_code == 0
    res = run("index", feats)
    assert res.exit_code == 3
    assert res.stderr.strip() == (f"Error: {feats}: has no segment embeddings (embeddings/audio_segments or "
                                  "video_segments): nothing to index; run vmtool embed with a segmentation")
    assert not index_path(feats).exists()


def test_an_index_file_of_another_catalog_is_refused(tmp_path, cat):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    shutil.copy(cat, a)
    synth_catalog(b, 200, seed=5, dim=16, dtype="float16")
    build_index(a, kind="flat")
    shutil.copy(index_path(a), index_path(b))
    with pytest.raises(Exception, match=r"is stale: built for another catalog \(its items or their segments differ\)"):
        open_index(b, "audio")


def test_merge_into_an_indexed_catalog_says_the_index_is_stale(tmp_path, cat):
    a = tmp_path / "a.h5"
    shutil.copy(cat, a)
    build_index(a, kind="flat")
    keep = tmp_path / "keep.txt"
    keep.write_text("\n".join(f"item{i:05d}" for i in range(190)) + "\n")
    res = run("merge", a, "--ids", keep, "-o", a, "-q")  # tracks removed from the catalog
    assert res.exit_code == 0, res.stderr
    assert res.stderr.strip() == (f"Warning: {a}.index: the prefilter index is now stale (built for a catalog "
                                  f"of 200 items, this one has 190 (items added or removed since: embed "
                                  f"--resume, merge)); rebuild it with: vmtool index {a}")


def test_streamed_exact_ranking_equals_the_in_memory_one(cat):
    from vmtool.ranking import rank
    from vmtool.ranking.catalog import load_item
    from vmtool.ranking.index import rank_streamed

    q = load_item(cat, "item00007", "video")
    whole = rank(q, load_catalog(cat, "audio"), "btrace", k=5)
    streamed = rank_streamed(q, cat, "audio", "btrace", k=5, chunk_rows=101)  # many chunks
    assert [(r.index, r.id, r.distance, r.span) for r in streamed.results] == \
        [(r.index, r.id, r.distance, r.span) for r in whole.results]
    assert streamed.n_targets == 200


def _contiguous(src, dst):
    """A copy of catalog *src* whose segment rows are one contiguous dataset (as bench_catalog_1m writes)."""
    shutil.copy(src, dst)
    with h5py.File(dst, "a") as f:
        for mod in ("audio", "video"):
            g = f[f"embeddings/{mod}_segments"]
            data = g["data"][()]
            del g["data"]
            g.create_dataset("data", data=data)  # no chunks, no compression
            assert g["data"].chunks is None
    return dst


@pytest.mark.parametrize("layout", ["chunked", "contiguous"])
def test_streamed_rank_through_the_cli_equals_the_in_memory_one(tmp_path, cat, layout):
    c = cat if layout == "chunked" else _contiguous(cat, tmp_path / "c.h5")
    extra = ("-m", "nw-dtw", "--exclude-self", "--where", "id != item00011")
    mem, out_mem = ranking(c, *extra, "--in-memory", "--hubness", "none")  # streamed: no correction (auto is none)
    streamed, out = ranking(c, *extra, "--stream")
    assert streamed == mem
    assert (out["targets"], out["candidates"], out["excluded"]) == \
        (out_mem["targets"], out_mem["candidates"], out_mem["excluded"]) == (200, 198, 2)
    res = run("rank", f"{c}#item00007", c, "--stream", "--hubness", "csls", "-q")
    assert res.exit_code == 1
    assert res.stderr.strip() == ("Error: --hubness needs the catalog in memory; it cannot be streamed from disk "
                                  "(--in-memory)")


@pytest.mark.parametrize("method", ["btrace", "trace", "btrace-mean", "centroid"])
def test_streamed_ranking_equals_the_in_memory_one(tmp_path, cat, method):
    """The fused float16 kernel over memory-mapped chunks (a few items each) gives the
    in-memory ranking: the same top-k, the same distances within float32 rounding of the
    float32 similarity-block path."""
    from vmtool.ranking import rank
    from vmtool.ranking.catalog import load_item
    from vmtool.ranking.index import rank_streamed

    c = _contiguous(cat, tmp_path / "c.h5")
    q = load_item(c, "item00007", "video")
    whole = load_catalog(c, "audio")  # float16, as stored
    as32 = SegmentSet(whole.data.astype(np.float32), whole.offsets, spans=whole.spans, ids=whole.ids)
    streamed = rank_streamed(q, c, "audio", method, k=10, chunk_rows=37)
    for ref in (rank(q, whole, method, k=10), rank(q, as32, method, k=10)):
        assert [r.id for r in streamed.results] == [r.id for r in ref.results]
        np.testing.assert_allclose([r.distance for r in streamed.results], [r.distance for r in ref.results],
                                   rtol=1e-5, atol=1e-6)


def test_prefetched_chunks_equal_the_stored_rows(tmp_path, cat):
    from vmtool.ranking.index import iter_chunks

    c = _contiguous(cat, tmp_path / "c.h5")
    whole = load_catalog(c, "audio")
    got = list(iter_chunks(c, "audio", chunk_rows=101))
    assert len(got) > 10
    assert np.array_equal(np.concatenate([s.data for _, s in got]), whole.data)
    assert [a for a, _ in got] == list(np.cumsum([0] + [len(s) for _, s in got[:-1]]))


@pytest.mark.parametrize("cached", [True, False])
def test_chunks_from_the_page_cache_or_around_it_equal_the_stored_rows(tmp_path, cat, monkeypatch, cached):
    """reuse=True (one pass): ranges in the page cache are mapped, the others read with
    O_DIRECT into two buffers used in turn; each chunk holds its rows until the next."""
    from vmtool.ranking import index as index_module
    from vmtool.ranking.index import iter_chunks

    c = _contiguous(cat, tmp_path / "c.h5")
    monkeypatch.setattr(index_module, "_resident", lambda address, length: 1.0 if cached else 0.0)
    whole = load_catalog(c, "audio")
    firsts = []
    for a, s in iter_chunks(c, "audio", chunk_rows=101, reuse=True):
        assert np.array_equal(s.data, whole.data[whole.offsets[a]:whole.offsets[a + len(s)]])
        firsts.append(a)
    assert len(firsts) > 10 and firsts[0] == 0


@pytest.mark.parametrize("args", [(), ("--against", "all"), ("--against", "ids")])
def test_streamed_evaluation_equals_the_in_memory_one(tmp_path, cat, args):
    c = _contiguous(cat, tmp_path / "c.h5")
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(f"item{i:05d}" for i in range(0, 200, 7)) + "\n")
    sel = ("--ids", ids, *args) if args else ()
    base = ("evaluate", c, "-m", "btrace,nw-dtw", "-s", "vanilla,crop-stretch", "-d", "both", "--format", "json",
            "--ranks", "-q", *sel)
    mem = run(*base, "--in-memory")
    streamed = run(*base, "--stream")
    assert mem.exit_code == 0, mem.stderr
    assert streamed.exit_code == 0, streamed.stderr
    a, b = json.loads(mem.stdout), json.loads(streamed.stdout)
    for x in (a, b):
        for r in x["results"]:
            r.pop("seconds", None)
    assert a == b


def test_streamed_evaluation_over_many_chunks(cat):
    from vmtool.ranking.evaluate import evaluate
    from vmtool.ranking.index import evaluate_streamed

    whole = evaluate(str(cat), "btrace-mean,sw-dtw", directions=["v2m", "m2v"])
    streamed = evaluate_streamed(str(cat), "btrace-mean,sw-dtw", directions=["v2m", "m2v"], chunk_rows=53)
    for s, w in zip(streamed.scores, whole.scores):
        assert (s.method, s.direction) == (w.method, w.direction)
        assert np.array_equal(s.ranks, w.ranks)
        assert s.metrics == w.metrics
    res = run("evaluate", cat, "-m", "clip,nw-dtw", "--stream")
    assert res.exit_code == 1
    assert res.stderr.strip() == ("Error: a catalog streamed from disk is evaluated with segment methods only, "
                                  "not clip (choose them with -m, or --in-memory)")


def test_the_sketch_ranking_keeps_the_exact_top_k_on_a_planted_catalog(tmp_path):
    """Rows in a 4-d subspace of 16-d: a 4-d sketch keeps every dot product, so ranking the
    candidates on it and only the best k on their full rows gives the exact top-k."""
    from vmtool.ranking import rank
    from vmtool.ranking.catalog import load_item
    from vmtool.ranking.index import rank_with_index

    c = synth_catalog(tmp_path / "planted.h5", 300, seed=9, dim=16, intrinsic_dim=4)
    rep = build_index(c, kind="flat", sketch_dim=4, rerank=5)
    assert rep.modalities["audio"]["sketch_dim"] == 4
    idx = open_index(c, "audio")
    assert idx.sketch.shape == (idx.offsets[-1], 4)
    whole = load_catalog(c, "audio")
    for item in ("item00003", "item00120", "item00299"):
        q = load_item(c, item, "video")
        exact = rank(q, whole, "nw-dtw", k=5)
        got = rank_with_index(q, c, idx, "nw-dtw", k=5, prefilter=300)  # the sketch ranks all 300, 5 re-ranked
        assert [(r.index, r.id) for r in got.results] == [(r.index, r.id) for r in exact.results]
        np.testing.assert_allclose([r.distance for r in got.results], [r.distance for r in exact.results])
    # rows outside the subspace: the sketch error bound covers them
    sk = h5py.File(index_path(c), "r")["audio/sketch_error"][()]
    assert sk.shape == (300, 2) and (sk[:, 0] < 1e-3).all()


def test_embed_resume_onto_an_indexed_catalog_says_the_index_is_stale_and_rank_refuses_it(tmp_path):
    from vmtool.synth import synth_features
    from vmtool.training import DataConfig, TrainConfig, train

    a, b, cat = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "cat.h5"
    synth_features(a, 12, seed=3)
    synth_features(b, 16, seed=3)  # a's 12 items and 4 new ones
    model = train(a, tmp_path / "m.pt", data=DataConfig(level="segment", segments="fixed"),
                  model_layers={"audio": [16], "video": [16]},
                  config=TrainConfig(batch_size=12, epochs=1, val_fraction=0.2, seed=1)).path
    assert run("embed", a, "--model", model, "-o", cat, "-q").exit_code == 0
    assert run("index", cat, "--kind", "flat", "--sketch-dim", "4", "-q").exit_code == 0
    res = run("embed", b, "--model", model, "-o", cat, "--resume", "-q")
    assert res.exit_code == 0, res.stderr
    assert res.stderr.strip() == (f"Warning: {cat}.index: the prefilter index is now stale (built for a catalog "
                                  f"of 12 items, this one has 16 (items added or removed since: embed --resume, "
                                  f"merge)); rebuild it with: vmtool index {cat}")
    res = run("rank", f"{cat}#item-00014", cat, "-m", "nw-dtw", "--prefilter", 5, "-q")
    assert res.exit_code == 1 and "is stale" in res.stderr
    # rebuilt: the new items are found through it
    assert run("index", cat, "--kind", "flat", "--sketch-dim", "4", "-q").exit_code == 0
    res = run("rank", f"{cat}#item-00014", cat, "-m", "nw-dtw", "--prefilter", 16, "--format", "json", "-q")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["targets"] == 16


def test_streamed_catalog_ranks_without_the_default_hubness_correction(tmp_path):
    """rank's default (--hubness auto) needs the catalog in memory for CSLS: streamed, it is none, not an error."""
    from vmtool.synth import synth_catalog

    c = synth_catalog(tmp_path / "cat.h5", 20, seed=1, dim=16)
    streamed = run("rank", f"{c}#item00001", c, "--stream", "-m", "nw-dtw", "--format", "tsv")
    plain = run("rank", f"{c}#item00001", c, "--in-memory", "-m", "nw-dtw", "--hubness", "none", "--format", "tsv")
    assert streamed.exit_code == 0, streamed.output
    cols = lambda out: [line.split("\t")[:3] for line in out.splitlines()]  # rank, id, distance (no sections streamed)
    assert cols(streamed.stdout) == cols(plain.stdout)


def test_a_catalog_whose_two_sides_do_not_fit_is_streamed_when_csls_needs_both(tmp_path, monkeypatch):
    """CSLS's terms hold the catalog's other side as well: the memory check counts it (only
    when the terms are not stored yet), so the default correction never loads twice what
    memory can hold."""
    import h5py

    from vmtool.query import CatalogRanker
    from vmtool.ranking import index
    from vmtool.synth import synth_catalog

    c = synth_catalog(tmp_path / "cat.h5", 20, seed=1, dim=16)
    with h5py.File(c, "r") as f:
        one_side = int(np.prod(f["embeddings/audio_segments/data"].shape)) * 4
    # room for one side (below half the memory), not for both
    monkeypatch.setattr(index, "available_memory", lambda: int(3.2 * one_side))
    csls_default = CatalogRanker(c, method="nw-dtw", k=3, hubness="auto")
    assert csls_default.streamed and csls_default.hubness.label == "none"
    plain = CatalogRanker(c, method="btrace", k=3, hubness="auto")  # auto is none for btrace: one side only
    assert not plain.streamed and plain.targets is not None
    monkeypatch.setattr(index, "available_memory", lambda: int(5 * one_side))
    both_fit = CatalogRanker(c, method="nw-dtw", k=3, hubness="auto")
    assert not both_fit.streamed and both_fit.hubness.label == "csls:10"
    both_fit.rank(f"{c}#item00001")  # stores the tracks' terms in the catalog's sidecar
    monkeypatch.setattr(index, "available_memory", lambda: int(3.2 * one_side))
    stored = CatalogRanker(c, method="nw-dtw", k=3, hubness="auto")  # the other side is not needed now
    assert not stored.streamed and stored.hubness.label == "csls:10"


def test_a_streamed_rank_shows_the_tracks_tags(tmp_path):
    """Streamed, the catalog's metadata is read without its item table: the titles and
    artists printed are the in-memory rank's."""
    from vmtool.metadata import set_values
    from vmtool.synth import synth_catalog

    c = synth_catalog(tmp_path / "cat.h5", 20, seed=1, dim=16)
    with h5py.File(c, "a") as f:
        set_values(f, {i: {"title": f"Song {i}", "artist": f"Band {i % 3}"} for i in range(0, 20, 2)}, 20,
                   origin="tag")
    args = (f"{c}#item00001", c, "-m", "btrace", "--hubness", "none", "--format", "tsv")
    streamed, plain = run("rank", *args, "--stream"), run("rank", *args, "--in-memory")
    assert streamed.exit_code == 0 and plain.exit_code == 0, streamed.output + plain.output
    cols = lambda out: [(line.split("\t")[1], *line.split("\t")[6:8]) for line in out.splitlines()[1:]]
    assert cols(streamed.stdout) == cols(plain.stdout)
    assert sum(bool(t) for _, t, _ in cols(plain.stdout)) >= 3  # some results carry tags
