"""CSLS hubness correction: the formula by hand, evaluation views, and rank agreeing with evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool.cli import app
from vmtool.errors import ParameterError
from vmtool.ranking import load_catalog
from vmtool.ranking.batched import distances
from vmtool.ranking.evaluate import evaluate, evaluate_sets, ground_truth_ranks
from vmtool.ranking.hubness import Hubness, csls, knn_mean, parse_hubness
from vmtool.ranking.methods import DEFAULT_METHOD
from vmtool.synth import synth_catalog, synth_embeddings

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_csls_by_hand():
    # 2 queries x 3 targets, k = 2
    d = np.array([[0.1, 0.5, 0.3],
                  [0.4, 0.2, 0.6]])
    # m_q: row means of the 2 smallest: (0.1 + 0.3) / 2 = 0.2, (0.2 + 0.4) / 2 = 0.3
    # m_t: column means of the 2 smallest (only 2 rows): 0.25, 0.35, 0.45
    want = 2 * d - np.array([[0.2], [0.3]]) - np.array([[0.25, 0.35, 0.45]])
    np.testing.assert_allclose(csls(d, 2), want)
    np.testing.assert_allclose(knn_mean(d, 2, axis=1), [0.2, 0.3])
    np.testing.assert_allclose(knn_mean(d, 2, axis=0), [0.25, 0.35, 0.45])


def test_csls_demotes_a_hub():
    # target 0 is the nearest of every query: a hub; CSLS hands query 1 its own target back
    d = np.array([[0.10, 0.50, 0.50],
                  [0.20, 0.25, 0.60],
                  [0.20, 0.60, 0.30]])
    assert ground_truth_ranks(d).tolist() == [1, 2, 2]
    assert ground_truth_ranks(csls(d, 1)).tolist() == [1, 1, 1]


def test_knn_mean_skips_nan_and_clips_k():
    d = np.array([[np.nan, 1.0, 3.0], [np.nan, np.nan, np.nan]])
    out = knn_mean(d, 5)
    assert out[0] == pytest.approx(2.0) and np.isnan(out[1])


@pytest.mark.parametrize("text, want", [("none", Hubness()), ("csls", Hubness("csls", 10)),
                                        ("CSLS:3", Hubness("csls", 3)), (None, Hubness())])
def test_parse_hubness(text, want):
    assert parse_hubness(text) == want


@pytest.mark.parametrize("text", ["csls:0", "csls:x", "mnn", "none:3"])
def test_parse_hubness_rejects(text):
    with pytest.raises(ParameterError):
        parse_hubness(text)


def test_evaluate_sets_csls_and_held_out_against_all():
    sets = synth_embeddings(40, seed=5, dim=16)
    v, a = sets["video"], sets["audio"]
    ev = evaluate_sets(v, a, "btrace", hubness=["none", "csls:5"])
    d = distances(v, a, "btrace").astype(np.float64)
    assert ev.score("btrace").ranks.tolist() == ground_truth_ranks(d).tolist()
    assert ev.score("btrace", hubness="csls:5").ranks.tolist() == ground_truth_ranks(csls(d, 5)).tolist()
    rows = np.arange(30, 40)  # 10 held-out queries ranked among all 40 targets
    held = evaluate_sets(v, a, "btrace", hubness=["none", "csls:5"], query_rows=rows)
    assert held.n_items == 10 and held.n_candidates == 40
    assert held.score("btrace").ranks.tolist() == ground_truth_ranks(d)[rows].tolist()
    assert held.score("btrace", hubness="csls:5").ranks.tolist() == ground_truth_ranks(csls(d, 5))[rows].tolist()
    assert held.to_dict()["candidates"] == 40 and held.to_dict()["results"][1]["hubness"] == "csls:5"


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    return synth_catalog(tmp_path_factory.mktemp("hub") / "cat.h5", 30, seed=6, dim=16)


def test_rank_with_csls_matches_the_evaluation_matrix(cat):
    res = run("rank", f"{cat}#item00004", cat, "-k", "30", "--hubness", "csls:4", "--format", "json", "-q")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["hubness"] == "csls:4"
    v, a = load_catalog(cat, "video"), load_catalog(cat, "audio")
    row = csls(distances(v, a, DEFAULT_METHOD).astype(np.float64), 4)[4]
    order = np.lexsort((np.arange(30), row))
    assert [r["id"] for r in out["results"]] == [a.ids[i] for i in order]
    np.testing.assert_allclose([r["distance"] for r in out["results"]], row[order], rtol=1e-4, atol=1e-5)


def test_evaluate_cli_against_all_with_hubness(cat, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"item{i:05d}\n" for i in range(20, 30)))
    res = run("evaluate", cat, "-m", "btrace", "--ids", ids, "--against", "all", "--hubness", "none,csls:4",
              "--format", "json", "-q")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["items"] == 10 and out["candidates"] == 30 and out["hubness"] == ["none", "csls:4"]
    ev = evaluate(str(cat), "btrace", ids=[f"item{i:05d}" for i in range(20, 30)], against="all",
                  hubness=["csls:4"])
    assert out["results"][1]["mean_rank"] == pytest.approx(ev.score("btrace", hubness="csls:4").metrics["mean_rank"])
    table = run("evaluate", cat, "-m", "btrace", "--ids", ids, "--against", "all", "--hubness", "none,csls:4", "-q")
    assert "10 queries, 30 candidates" in table.stdout and "btrace (csls:4)" in table.stdout


# --- rank's default and the catalog's stored terms -------------------------------------------
def test_auto_is_csls_only_for_the_measured_methods():
    from vmtool.ranking.hubness import RANK_DEFAULTS, resolve_hubness

    assert resolve_hubness("auto", "nw-dtw") == Hubness("csls", 10)
    assert resolve_hubness("auto", "sw-dtw:0.2") == Hubness("csls", 10)
    assert resolve_hubness("auto", "btrace-mean") == Hubness("csls", 10)
    assert resolve_hubness("auto", "btrace") == Hubness()  # Seg-VM-Net's best trace loses with it
    assert resolve_hubness("auto", "nw-dtw", prefilter=50) == Hubness()  # large catalogs: none
    assert resolve_hubness("csls:3", "btrace", prefilter=50) == Hubness("csls", 3)  # asked for: kept
    # rank --help names the methods auto corrects
    text = run("rank", "--help").stdout
    for name in RANK_DEFAULTS:
        assert name in text


def test_parse_hubness_refuses_auto_for_evaluation():
    with pytest.raises(ParameterError, match="use none, csls or csls:K"):
        parse_hubness("auto", allow_auto=False)


def test_blocked_terms_equal_the_whole_matrix(monkeypatch):
    from vmtool.ranking import hubness
    from vmtool.ranking.methods import parse_method

    sets = synth_embeddings(25, seed=2, dim=16)
    v, a = sets["video"], sets["audio"]
    want = knn_mean(distances(v, a, "btrace").astype(np.float64), 4, axis=0)
    monkeypatch.setattr(hubness, "TERMS_BLOCK_MB", 1e-5)  # one reference row... at least k = 4 per block
    np.testing.assert_allclose(hubness.target_terms(v, a, parse_method("btrace"), 4), want, rtol=1e-6)


def _rank_json(cat, method, *extra):
    res = run("rank", f"{cat}#item00003", cat, "-m", method, "-k", "30", "--format", "json", *extra)
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout), res.stderr


def test_rank_default_stores_the_terms_once_and_reads_them_back(tmp_path):
    from vmtool.ranking.hubness import terms_path

    cat = synth_catalog(tmp_path / "cat.h5", 30, seed=6, dim=16)
    first, err = _rank_json(cat, "nw-dtw")
    assert first["hubness"] == "csls:10"
    assert f"CSLS terms of the catalog's tracks: computed, stored in {terms_path(cat)}" in err
    stamp = terms_path(cat).stat().st_mtime_ns
    again, err = _rank_json(cat, "nw-dtw")
    assert "CSLS terms" not in err and terms_path(cat).stat().st_mtime_ns == stamp  # read back, said nothing
    assert again["results"] == first["results"]
    # the same ranking as CSLS over the whole matrix (the query's term taken from its own row)
    v, a = load_catalog(cat, "video"), load_catalog(cat, "audio")
    row = csls(distances(v, a, "nw-dtw").astype(np.float64), 10)[3]
    order = np.lexsort((np.arange(30), row))
    assert [r["id"] for r in first["results"]] == [a.ids[i] for i in order]
    np.testing.assert_allclose([r["distance"] for r in first["results"]], row[order], rtol=1e-4, atol=1e-5)
    # methods auto leaves alone are not corrected, and need no terms
    plain, err = _rank_json(cat, "btrace")
    assert plain["hubness"] == "none" and "CSLS" not in err


def test_terms_of_another_catalog_are_never_served(tmp_path):
    from vmtool.ranking.hubness import terms_path

    a = synth_catalog(tmp_path / "a.h5", 30, seed=6, dim=16)
    _rank_json(a, "sw-dtw")
    # the catalog replaced by another (as a re-embedding or a merge does): its old sidecar is stale
    b = synth_catalog(tmp_path / "b.h5", 30, seed=7, dim=16)
    a.unlink()
    b.rename(a)
    out, err = _rank_json(a, "sw-dtw")
    assert f"computed, stored in {terms_path(a)}" in err
    v, t = load_catalog(a, "video"), load_catalog(a, "audio")
    row = csls(distances(v, t, "sw-dtw").astype(np.float64), 10)[3]
    np.testing.assert_allclose(sorted(r["distance"] for r in out["results"]), np.sort(row), rtol=1e-4, atol=1e-5)


def test_terms_are_keyed_by_method_k_and_direction(tmp_path):
    import h5py

    from vmtool.ranking.hubness import terms_path

    cat = synth_catalog(tmp_path / "cat.h5", 12, seed=1, dim=16)
    _rank_json(cat, "nw-dtw")
    _rank_json(cat, "btrace", "--hubness", "csls:3")
    res = run("rank", f"{cat}#item00003", cat, "-m", "nw-dtw", "--direction", "m2v", "-q")
    assert res.exit_code == 0, res.stderr
    with h5py.File(terms_path(cat), "r") as f:
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        assert f.attrs["vmtool_kind"] == "csls-terms"
    assert sorted(names) == ["audio/btrace/k3", "audio/nw-dtw/k10", "video/nw-dtw/k10"]


def test_terms_that_cannot_be_stored_still_rank(tmp_path):
    from vmtool.ranking.hubness import terms_path

    cat = synth_catalog(tmp_path / "cat.h5", 12, seed=1, dim=16)
    terms_path(cat).mkdir()  # the sidecar's name is taken (a read-only directory fails the same way)
    out, err = _rank_json(cat, "nw-dtw")
    assert out["hubness"] == "csls:10" and "computed (not stored:" in err and "output path is a directory" in err
    assert len(out["results"]) == 12


def test_a_catalog_rewritten_in_place_gets_new_terms(tmp_path):
    from vmtool.ranking.hubness import terms_path

    cat = synth_catalog(tmp_path / "cat.h5", 30, seed=6, dim=16)
    _rank_json(cat, "nw-dtw")
    keep = tmp_path / "keep.txt"
    keep.write_text("".join(f"item{i:05d}\n" for i in range(20)))
    res = run("merge", cat, "--ids", keep, "-o", cat, "-q")  # drops removed tracks, in place
    assert res.exit_code == 0, res.stderr
    out, err = _rank_json(cat, "nw-dtw")
    assert f"computed, stored in {terms_path(cat)}" in err and len(out["results"]) == 20
    v, a = load_catalog(cat, "video"), load_catalog(cat, "audio")
    row = csls(distances(v, a, "nw-dtw").astype(np.float64), 10)[3]
    np.testing.assert_allclose(sorted(r["distance"] for r in out["results"]), np.sort(row), rtol=1e-4, atol=1e-5)


def test_a_damaged_terms_file_is_computed_again_and_replaced(tmp_path):
    from vmtool.ranking.hubness import terms_path

    cat = synth_catalog(tmp_path / "cat.h5", 12, seed=1, dim=16)
    terms_path(cat).write_bytes(b"not an HDF5 file")
    out, err = _rank_json(cat, "nw-dtw")
    assert f"computed, stored in {terms_path(cat)}" in err and len(out["results"]) == 12
    again, err = _rank_json(cat, "nw-dtw")
    assert "CSLS terms" not in err and again["results"] == out["results"]


def test_auto_is_none_for_a_catalog_without_the_query_modality(tmp_path):
    import h5py

    from vmtool.ranking.hubness import resolve_hubness, terms_path

    cat = synth_catalog(tmp_path / "cat.h5", 12, seed=1, dim=16)
    assert resolve_hubness("auto", "nw-dtw", catalog=cat, query_modality="video") == Hubness("csls", 10)
    with h5py.File(cat, "r+") as f:  # no item has a video any more: a catalog of music alone
        f["embeddings/video_segments/present"][...] = False
    assert resolve_hubness("auto", "nw-dtw", catalog=cat, query_modality="video") == Hubness()
    assert resolve_hubness("auto", "nw-dtw", catalog=cat, query_modality="audio") == Hubness("csls", 10)
    res = run("rank", f"{cat}#item00003", cat, "-m", "nw-dtw", "--format", "json", "-q")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["hubness"] == "none" and not terms_path(cat).exists()


def test_two_ranks_storing_terms_at_once_keep_both(tmp_path, monkeypatch):
    """A rank that computes its terms while another stores its own (another method) adds
    to the sidecar: neither entry is lost, whatever the order they finish in."""
    import h5py

    from vmtool.ranking import hubness
    from vmtool.ranking.methods import parse_method

    cat = synth_catalog(tmp_path / "cat.h5", 12, seed=1, dim=16)
    v, a = load_catalog(cat, "video"), load_catalog(cat, "audio")
    real = hubness.target_terms
    other = []

    def meanwhile(*args, **kwargs):  # the other run stores its entry while this one computes
        if not other:
            other.append(None)
            other[0] = hubness.catalog_target_terms(cat, a, parse_method("btrace"), 3, load_reference=lambda: v)
        return real(*args, **kwargs)

    monkeypatch.setattr(hubness, "target_terms", meanwhile)
    terms, how = hubness.catalog_target_terms(cat, a, parse_method("nw-dtw"), 10, load_reference=lambda: v)
    assert how.startswith("computed, stored") and other[0][1].startswith("computed, stored")
    with h5py.File(hubness.terms_path(cat), "r") as f:
        np.testing.assert_array_equal(f["audio/nw-dtw/k10"][()], terms)
        np.testing.assert_array_equal(f["audio/btrace/k3"][()], other[0][0])
