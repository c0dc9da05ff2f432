"""``vmtool demo``: the whole pipeline on generated data, and the corpus for examples/Makefile."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vmtool.cli import app


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_corpus_only_writes_media_and_id_lists(tmp_path):
    d = tmp_path / "c"
    r = run("demo", "--dir", d, "--corpus-only", "--clips", "5", "--held-out", "2", "--duration", "3",
            "-j", "1", "-q", "--format", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [p.rsplit("/", 1)[1] for p in out["media"]] == [f"clip_{i:04d}.mp4" for i in range(5)]
    assert (d / "train-ids.txt").read_text().split() == ["clip_0000", "clip_0001", "clip_0002"]
    assert (d / "test-ids.txt").read_text().split() == ["clip_0003", "clip_0004"]
    assert (d / "media" / "truth.json").exists()
    # the same seed gives the same corpus
    d2 = tmp_path / "c2"
    assert run("demo", "--dir", d2, "--corpus-only", "--clips", "5", "--held-out", "2", "--duration", "3",
               "-j", "2", "-q").exit_code == 0
    for i in range(5):
        assert (d / "media" / f"clip_{i:04d}.mp4").read_bytes() == (d2 / "media" / f"clip_{i:04d}.mp4").read_bytes()


@pytest.mark.parametrize("args, message, code", [
    (["--clips", "6", "--held-out", "5"], "--held-out must be between 2 and clips - 2", 1),  # checked by the library
    (["--clips", "3"], "--clips", 2),  # option ranges: usage errors
    (["--duration", "1"], "--duration", 2),
])
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, args, message, code):
    d = tmp_path / "d"
    r = run("demo", "--dir", d, *args, "-q")
    assert r.exit_code == code
    assert message in r.output
    assert not (d / "media").exists()


def test_whole_demo_small(tmp_path):
    from vmtool.info import describe

    d = tmp_path / "demo"
    r = run("demo", "--dir", d, "--clips", "6", "--held-out", "2", "--duration", "12", "--epochs", "2",
            "-j", "1")
    assert r.exit_code == 0, r.output
    out = r.stdout
    # the query's top results, the evaluation table, the alignment and the files
    assert "Top 5 tracks for the held-out video" in out and "clip_0004.mp4" in out
    # the showcase: the first held-out video, ranked as vmtool rank does by default with nw-dtw
    assert "(the first held-out video; nw-dtw with CSLS (csls:10), vmtool rank's default for nw-dtw)" in out
    assert (d / "catalog.h5.csls").exists()
    assert "V2M, vanilla: 2 queries, 2 candidates" in out and "btrace" in out and "nw-dtw" in out
    # both views, each with and without CSLS: held-out among held-out, and among the whole catalog
    assert "V2M, vanilla: 2 queries, 6 candidates" in out and "btrace (csls:10)" in out
    assert "edit list" in out and "Files:" in out
    assert "[8/8] aligning" in r.stderr
    # every intermediate file is a normal vmtool file
    assert describe(d / "features.h5")["kind"] == "collection"
    assert "olda" in json.dumps(describe(d / "segments.h5"))
    assert describe(d / "model.pt")["kind"] == "vmtool-model"
    cat = describe(d / "catalog.h5")
    assert cat["kind"] == "collection" and cat["n_items"] == 6
    assert (d / "plots" / "evaluation.png").stat().st_size > 1000
    assert (d / "plots" / "alignment.png").stat().st_size > 1000
    res = json.loads((d / "results.json").read_text())
    assert res["query"]["id"] == "clip_0004"
    assert 1 <= res["query"]["own_track_rank"] <= 6
    assert 1 <= res["query"]["own_track_rank_csls"] <= 6 and 1 <= res["query"]["own_track_rank_none"] <= 6
    assert res["query"]["own_track_rank"] == res["query"]["own_track_rank_csls"]  # nw-dtw: CSLS by default
    assert res["query"]["ranking"]["hubness"] == "csls:10" and res["query"]["ranking"]["method"] == "nw-dtw"
    assert f"its own music is number {res['query']['own_track_rank']} of 6" in out.replace("Its", "its")
    assert res["evaluation_whole_catalog"]["candidates"] == 6 and res["evaluation_whole_catalog"]["items"] == 2
    assert len(res["query"]["ranking"]["results"]) == 5
    assert res["alignment"]["target"] == res["query"]["ranking"]["results"][0]["id"]
    assert res["training"]["epochs"] >= 1
    # the catalog answers the other commands: its test ids evaluate
    r2 = run("evaluate", d / "catalog.h5", "--ids", d / "test-ids.txt", "-m", "centroid", "--format", "json", "-q")
    assert r2.exit_code == 0, r2.output
    assert json.loads(r2.stdout)["items"] == 2
