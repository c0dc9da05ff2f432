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
