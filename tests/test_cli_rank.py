"""``vmtool rank``, ``vmtool align`` and ``vmtool evaluate`` through the real command line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vmtool.cli import app
from vmtool.synth import synth_catalog

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(res) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    """A synthetic catalog: 60 items, 32-d, 8 to 16 segments each."""
    return synth_catalog(tmp_path_factory.mktemp("rank") / "cat.h5", 60, seed=1, dim=32)


@pytest.fixture(scope="module")
def cat16(tmp_path_factory):
    """Another catalog, 16-d embeddings stored as float16."""
    return synth_catalog(tmp_path_factory.mktemp("rank16") / "cat16.h5", 20, seed=2, dim=16, dtype="float16")


# --- rank --------------------------------------------------------------------------------------------


def test_rank_table(cat):
    res = run("rank", f"{cat}#item00007", cat, "-k", "5", "-q")
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["rank", "id", "distance", "start", "end", "section", "source"]
    first = lines[1].split()
    assert first[:2] == ["1", "item00007"] and first[-1] == "synthetic/item00007.mp4"
    assert len(lines) == 6 and res.stderr == ""


def test_rank_json_and_exclude_self(cat):
    res = run("rank", f"{cat}#item00007", cat, "-m", "nw-dtw:0.1", "-k", "3", "--exclude-self",
              "--format", "json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["method"] == "nw-dtw:0.1" and out["indel"] == 0.1 and out["direction"] == "v2m"
    assert out["excluded"] == 1 and out["candidates"] == 59 and out["targets"] == 60
    assert [r["rank"] for r in out["results"]] == [1, 2, 3]
    assert "item00007" not in [r["id"] for r in out["results"]]
    r = out["results"][0]
    assert r["start"] is not None and r["end"] > r["start"] and len(r["segments"]) == 2
    assert "59 tracks ranked with nw-dtw:0.1" in res.stderr and "(1 excluded)" in res.stderr


def test_rank_tsv_prefilter_m2v_and_clip(cat):
    res = run("rank", f"{cat}#item00011", cat, "-m", "sw-dtw", "--prefilter", "10", "-d", "m2v",
              "--format", "tsv", "-q")
    assert res.exit_code == 0, res.stderr
    rows = [line.split("\t") for line in res.stdout.splitlines()]
    assert rows[0] == ["rank", "id", "distance", "start", "end", "source", "title", "artist", "section_start",
                       "section_end"]
    assert len(rows) == 11 and rows[1][1] == "item00011" and float(rows[1][4]) > float(rows[1][3])
    res = run("rank", f"{cat}#item00011", cat, "-m", "clip", "-k", "2", "--format", "tsv", "-q")
    assert res.exit_code == 0, res.stderr
    row = res.stdout.splitlines()[1].split("\t")
    assert row[3] == row[4] == ""  # no span for a method that does not align


def test_several_queries_in_one_run(cat):
    q = [f"{cat}#item{i:05d}" for i in (3, 7, 11)]
    res = run("rank", *q, cat, "-k", "4", "-m", "nw-dtw", "--format", "tsv", "-q")
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split("\t") == ["query", "rank", "id", "distance", "start", "end", "source", "title", "artist",
                                     "section_start", "section_end"]
    assert len(lines) == 1 + 3 * 4
    for k, query in enumerate(q):  # each block equals that query ranked alone
        alone = run("rank", query, cat, "-k", "4", "-m", "nw-dtw", "--format", "tsv", "-q").stdout.splitlines()[1:]
        assert [f"{query}\t{x}" for x in alone] == lines[1 + 4 * k:5 + 4 * k]
    out = json.loads(run("rank", *q, cat, "-k", "2", "--format", "json", "-q").stdout)
    assert [o["query"] for o in out] == q and all(len(o["results"]) == 2 for o in out)
    table = run("rank", *q[:2], cat, "-k", "2", "-q").stdout
    assert q[0] in table and q[1] in table


def test_a_failing_query_does_not_stop_the_others(cat, tmp_path):
    q = [f"{cat}#item00003", f"{cat}#no-such-item", str(tmp_path / "missing.mp4"), f"{cat}#item00011"]
    res = run("rank", *q, cat, "-k", "2", "--format", "tsv", "-q")
    assert res.exit_code == 1
    assert [x.split("\t")[0] for x in res.stdout.splitlines()[1:]] == [q[0]] * 2 + [q[3]] * 2
    errors = [x for x in res.stderr.splitlines() if x.startswith("Error: ")]
    assert len(errors) == 2 and "no-such-item" in errors[0] and "missing.mp4" in errors[1]
    assert "2 of 4 queries failed" in res.stderr
    res = run("rank", q[1], cat, "--format", "tsv")  # one query that fails: no header without data
    assert res.exit_code == 1 and res.stdout == ""


def test_rank_float16_catalog(cat16):
    res = run("rank", f"{cat16}#item00003", cat16, "-k", "1", "--format", "json", "-q")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["results"][0]["id"] == "item00003"


# --- align -------------------------------------------------------------------------------------------


def test_align_table_and_plot(cat, tmp_path):
    png = tmp_path / "align.png"
    res = run("align", f"{cat}#item00004", f"{cat}#item00004", "--plot", png)
    assert res.exit_code == 0, res.stderr
    assert "edit list" in res.stdout and "target start" in res.stdout and "nw-dtw (indel 0.05)" in res.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}" in res.stderr


def test_align_json(cat):
    res = run("align", f"{cat}#item00004", f"{cat}#item00009", "-m", "btrace", "--format", "json", "-q")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["method"] == "btrace" and isinstance(out["offset"], int)
    assert len(out["edits"]) == len(out["similarity"]) and out["distance"] == pytest.approx(-out["score"])
    matched = [e for e in out["edits"] if e["target_segments"] is not None]
    assert len(matched) == len(out["path"])


def test_align_rejects_a_method_that_does_not_align(cat):
    res = run("align", f"{cat}#item00004", f"{cat}#item00009", "-m", "centroid")
    assert res.exit_code == 1
    assert "does not align sequences" in one_error_line(res)


# --- evaluate ----------------------------------------------------------------------------------------


def test_evaluate_table(cat):
    res = run("evaluate", cat, "-m", "clip,trace,btrace,nw-dtw", "-q")
    assert res.exit_code == 0, res.stderr
    out = res.stdout
    assert "V2M, vanilla: 60 queries, 60 candidates" in out
    header = next(line for line in out.splitlines() if line.startswith("method"))
    assert header.split() == ["method", "R@1", "R@10", "R@25", "mean", "rank", "median", "time"]
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:6]}
    assert set(rows) == {"clip", "trace", "btrace", "nw-dtw"} and "±" in rows["nw-dtw"]


def test_evaluate_json_scenarios(cat):
    res = run("evaluate", cat, "-m", "centroid,sw-dtw:0.02", "-s", "all", "-d", "both", "--format", "json",
              "--ranks", "-q")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["items"] == 60 and out["methods"] == ["centroid", "sw-dtw:0.02"]
    assert out["indel"] == {"sw-dtw:0.02": 0.02}
    assert len(out["results"]) == 2 * 4 * 2
    r = out["results"][0]
    assert set(r) >= {"method", "direction", "scenario", "r1", "r10", "r25", "mean_rank", "ci95", "median_rank",
                      "seconds", "ranks"}
    assert len(r["ranks"]) == 60 and 0 <= r["r1"] <= r["r10"] <= r["r25"] <= 100


def test_evaluate_ids_restricts_queries_and_candidates(cat, tmp_path):
    import h5py

    with h5py.File(cat, "r") as f:
        ids = [x.decode() if isinstance(x, bytes) else str(x) for x in f["items/id"][:]]
    lst = tmp_path / "ids.txt"
    lst.write_text("\n".join(ids[10:25]) + "\n\n")
    res = run("evaluate", cat, "--method", "centroid,btrace", "--ids", lst, "--format", "json", "--ranks", "-q")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["items"] == 15 and all(len(r["ranks"]) == 15 for r in out["results"])
    # the same numbers as evaluating the library's subset directly
    from vmtool.ranking import load_catalog
    from vmtool.ranking.evaluate import evaluate_sets

    v, a = load_catalog(cat, "video"), load_catalog(cat, "audio")
    keep = list(range(10, 25))
    ev = evaluate_sets(v.subset(keep), a.subset(keep), "centroid,btrace")
    assert out["results"][1]["ranks"] == ev.to_dict(ranks=True)["results"][1]["ranks"]
    # --methods is kept as an alias of --method
    assert run("evaluate", cat, "--methods", "centroid", "--ids", lst, "-q").exit_code == 0


def test_evaluate_unknown_ids(cat, tmp_path):
    lst = tmp_path / "ids.txt"
    lst.write_text("nope-1\nnope-2\n")
    res = run("evaluate", cat, "--ids", lst, "-q")
    assert res.exit_code == 1
    assert one_error_line(res) == f"Error: {cat}: 2 id(s) not in the catalog: nope-1, nope-2"
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    res = run("evaluate", cat, "--ids", empty, "-q")
    assert res.exit_code == 1 and one_error_line(res) == f"Error: {empty}: holds no id"


def test_evaluate_plot(cat, tmp_path):
    png = tmp_path / "hist.png"
    res = run("evaluate", cat, "-m", "btrace,nw-dtw", "-s", "vanilla", "-s", "crop-query", "--plot", png)
    assert res.exit_code == 0, res.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}" in res.stderr and "V2M, crop-query" in res.stdout


# --- a catalog written by vmtool embed ------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """A catalog from the real chain: synthetic features, train (2 epochs, tiny), embed."""
    from vmtool.synth import synth_features

    d = tmp_path_factory.mktemp("embedded")
    synth_features(d / "feats.h5", 30, seed=3)
    res = run("train", d / "feats.h5", "-o", d / "m.pt", "--epochs", "2", "--level", "segment", "--segments", "fixed",
              "--audio-layers", "24,16", "--video-layers", "24,16", "-b", "32", "-q")
    assert res.exit_code == 0, res.output
    res = run("embed", d / "feats.h5", "--model", d / "m.pt", "-o", d / "cat.h5", "-q")
    assert res.exit_code == 0, res.output
    return d / "cat.h5"


def test_rank_align_evaluate_on_an_embedded_catalog(embedded):
    from vmtool.store import open_collection

    with open_collection(embedded) as c:
        first = c.ids[0]
    res = run("rank", f"{embedded}#{first}", embedded, "-m", "nw-dtw", "-k", "3", "--format", "json", "-q")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["targets"] == 30 and len(out["results"]) == 3 and out["results"][0]["end"] is not None
    res = run("align", f"{embedded}#{first}", f"{embedded}#{first}", "--format", "json", "-q")
    assert res.exit_code == 0, res.stderr
    assert len(json.loads(res.stdout)["edits"]) >= 1
    res = run("evaluate", embedded, "-d", "both", "--format", "json", "-q")
    assert res.exit_code == 0, res.stderr
    assert {r["method"] for r in json.loads(res.stdout)["results"]} == {
        "clip", "centroid", "single", "complete", "trace", "btrace", "nw-dtw", "sw-dtw",
        "centroid-unit", "trace-mean", "btrace-mean"}


# --- errors ------------------------------------------------------------------------------------------


def test_catalog_without_embeddings(tmp_path, cat):
    from vmtool.store import CollectionWriter, Item

    plain = tmp_path / "plain.h5"
    with CollectionWriter(plain, config={}) as w:
        w.add(Item("a", "a.mp4", "0" * 64, 1.0, True, True), {})
    for args in (["evaluate", plain], ["rank", f"{cat}#item00001", plain]):
        res = run(*args)
        assert res.exit_code == 3
        assert one_error_line(res) == (f"Error: {plain}: has no embeddings (group 'embeddings' is missing or "
                                       "empty); it is not a catalog: run vmtool embed first")


def test_unknown_item(cat):
    res = run("rank", f"{cat}#nope", cat)
    assert res.exit_code == 1
    assert one_error_line(res) == f"Error: {cat}: no item 'nope' in the collection"


def test_dimension_mismatch(cat, cat16):
    res = run("rank", f"{cat16}#item00001", cat)
    assert res.exit_code == 1
    line = one_error_line(res)
    assert line.startswith(f"Error: {cat}: dimension mismatch: the query has 16-d video embeddings, this file 32-d")
    res = run("align", f"{cat16}#item00001", f"{cat}#item00002")
    assert res.exit_code == 1 and "dimension mismatch" in one_error_line(res)


@pytest.mark.parametrize("cmd", ["rank", "evaluate", "align"])
def test_unknown_method_is_a_usage_error(cat, cmd):
    args = {"rank": ["rank", f"{cat}#item00001", cat, "-m", "dtw"],
            "evaluate": ["evaluate", cat, "-m", "trace,dtw"],
            "align": ["align", f"{cat}#item00001", f"{cat}#item00001", "-m", "dtw"]}[cmd]
    res = run(*args)
    assert res.exit_code == 2
    assert "unknown method 'dtw'" in res.stderr and "nw-dtw" in res.stderr


def test_bad_scenario_and_direction(cat):
    """A choice outside its list is a usage error (exit 2), like every other choice."""
    def usage_text(res) -> str:  # typer draws the message in a box, possibly wrapped
        return " ".join(res.stderr.replace("│", " ").split())

    res = run("evaluate", cat, "-s", "upside-down")
    assert res.exit_code == 2 and "unknown scenario 'upside-down'" in usage_text(res)
    res = run("evaluate", cat, "-d", "sideways")
    assert res.exit_code == 2 and "unknown direction 'sideways'" in usage_text(res)


def test_media_queries(cat, tmp_path):
    res = run("rank", tmp_path / "missing.mp4", cat)
    assert res.exit_code == 1
    assert one_error_line(res) == (f"Error: {tmp_path / 'missing.mp4'}: no such file "
                                   "(a query is a media file or file.h5#item-id)")
    res = run("rank", cat, cat)
    assert res.exit_code == 1 and "is a vmtool file: name one of its items as FILE.h5#ITEM-ID" in one_error_line(res)
    # a synthetic catalog stores no model: it cannot process a media query
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not really a video")
    res = run("rank", clip, cat)
    assert res.exit_code == 3
    assert "holds no model" in one_error_line(res)
