"""Today's vmtool reads yesterday's files: the frozen catalog, segmented collection and study.

``tests/data/make_frozen.py`` wrote each file once, with the schema version in its name,
and stored what the commands answered on it that day in ``NAME.expected.json``. These
tests run today's commands on the same bytes and compare: a change of format or of
results that breaks users' existing files fails here. The files are never regenerated
for an existing schema version (see make_frozen.py); a new version adds new files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool.cli import app
from vmtool.store import open_collection

DATA = Path(__file__).parent / "data"
VERSION = "1.1"
CATALOG, SEGMENTS, STUDY = (f"{k}-{VERSION}.h5" for k in ("catalog", "segments", "study"))
runner = CliRunner()


def expected(name: str) -> dict:
    return json.loads((DATA / name.replace(".h5", ".expected.json")).read_text())


@pytest.fixture
def in_data(monkeypatch):
    """Run from tests/data, so the file names are given (and echoed) as on the day they were made."""
    monkeypatch.chdir(DATA)


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_same(got, want, where="", skip=("seconds",)):
    """Equal, floats to 1e-6 relative (another BLAS may round the last bits differently)."""
    if isinstance(want, dict):
        assert isinstance(got, dict), where
        keys = set(want) - set(skip)
        assert set(got) - set(skip) == keys, (where, sorted(set(got) ^ set(want)))
        for k in sorted(keys):
            assert_same(got[k], want[k], f"{where}/{k}", skip)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), (where, got, want)
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{where}[{i}]", skip)
    elif isinstance(want, float) and not isinstance(got, bool):
        assert isinstance(got, (int, float)), (where, got)
        if math.isnan(want):
            assert math.isnan(got), where
        else:
            assert got == pytest.approx(want, rel=1e-6, abs=1e-9), where
    else:
        assert got == want, (where, got, want)


# --- the catalog with its model ------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(expected(CATALOG)["rank"]))
def test_ranking_the_frozen_catalog_gives_the_stored_results(in_data, case):
    want = expected(CATALOG)["rank"][case]
    # recorded without hubness correction, before rank's default became --hubness auto
    # (CSLS for nw-dtw and sw-dtw); that default is checked in tests/test_hubness.py
    res = run("rank", *want["args"], "--hubness", "none", "-q")
    assert res.exit_code == 0, res.stderr
    assert_same(json.loads(res.stdout), want["output"])


def test_the_frozen_catalog_ranks_in_a_table(in_data):
    res = run("rank", f"{CATALOG}#clip_0005", CATALOG, "-k", "3", "--hubness", "none", "-q")
    assert res.exit_code == 0, res.stderr
    want = expected(CATALOG)["rank"]["default"]["output"]["results"][:3]
    rows = [line.split()[:3] for line in res.stdout.splitlines()[1:]]
    assert rows == [[str(r["rank"]), r["id"], f"{r['distance']:.4f}"] for r in want]


def test_evaluating_the_frozen_catalog_gives_the_stored_scores(in_data):
    want = expected(CATALOG)["evaluate"]
    res = run(*want["args"])
    assert res.exit_code == 0, res.stderr
    assert_same(json.loads(res.stdout)["results"], want["results"])


def test_info_reads_the_frozen_catalog_and_its_model(in_data):
    res = run("info", CATALOG, "-f", "json")
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert (info["kind"], info["schema_version"], info["n_items"]) == ("collection", VERSION, 6)
    assert {(e["name"], e["dim"], e["rows"]) for e in info["embeddings"]} == {
        ("audio", 16, 6), ("video", 16, 6), ("audio_segments", 16, 18), ("video_segments", 16, 18)}
    assert [s["name"] for s in info["segmentations"]] == ["fixed"]  # the model's segmentation
    assert [lab["name"] for lab in info["labels"]] == ["music_emotion", "polarity", "video_emotion"]
    assert info["negatives"] == 6


def test_a_media_query_is_processed_with_the_frozen_catalogs_recipe_and_model(in_data, tmp_path):
    """The clip the catalog's clip_0005 was made from, as a media query: the catalog's
    extractors, segmentation and embedded model (16-d) give the item's stored ranking."""
    res = run("demo", "--dir", tmp_path, "--corpus-only", "--clips", "6", "--held-out", "2", "--duration", "12",
              "--seed", "0", "-j", "1", "-q")
    assert res.exit_code == 0, res.stderr
    clip = tmp_path / "media" / "clip_0005.mp4"
    res = run("rank", clip, CATALOG, "-f", "json", "--hubness", "none", "-q")
    assert res.exit_code == 0, res.stderr
    got = json.loads(res.stdout)
    want = expected(CATALOG)["rank"]["default"]["output"]
    assert [r["id"] for r in got["results"]] == [r["id"] for r in want["results"]]
    assert [r["distance"] for r in got["results"]] == pytest.approx([r["distance"] for r in want["results"]],
                                                                    abs=1e-5)
    # naming the catalog's own method (fixed windows) keeps its recorded window length
    for spec in ("fixed", "fixed:window=4"):
        res = run("rank", clip, CATALOG, "-f", "json", "--hubness", "none", "-q", "--query-segments", spec)
        assert res.exit_code == 0, res.stderr
        assert json.loads(res.stdout)["results"] == got["results"]
    res = run("rank", clip, CATALOG, "-f", "json", "--hubness", "none", "-q", "--query-segments", "fixed:window=3")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["results"] != got["results"]


# --- the segmented collection --------------------------------------------------------------------

def test_the_frozen_segmentations_read_as_stored():
    want = expected(SEGMENTS)["segmentations"]
    with open_collection(DATA / SEGMENTS) as col:
        assert col.schema_version == VERSION
        assert sorted(col.names("segmentations")) == sorted(want) == ["bars", "beats", "fixed", "foote", "olda",
                                                                       "transnet"]
        for method, rows in want.items():
            r = col.ragged("segmentations", method)
            for i, item in enumerate(col.ids):
                if rows[item] is None:
                    assert not r.present(i), (method, item)
                else:
                    np.testing.assert_array_equal(r.rows(i), rows[item], err_msg=f"{method} {item}")


def test_info_lists_the_frozen_segmentations(in_data):
    res = run("info", SEGMENTS, "-f", "json")
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    want = expected(SEGMENTS)["segmentations"]
    assert (info["schema_version"], info["n_items"]) == (VERSION, 4)
    assert {s["name"]: s["rows"] for s in info["segmentations"]} == {
        m: sum(len(b) for b in rows.values() if b is not None) for m, rows in want.items()}


def test_the_frozen_segmentation_is_kept_when_a_method_is_added(tmp_path):
    """segment on yesterday's file: the new method is added, every stored one stays."""
    out = tmp_path / "more.h5"
    res = run("segment", DATA / SEGMENTS, "-m", "fixed", "--window", "5", "-o", out, "-q")
    assert res.exit_code == 0, res.stderr
    want = expected(SEGMENTS)["segmentations"]
    with open_collection(out) as col:
        r = col.ragged("segmentations", "olda")
        for i, item in enumerate(col.ids):
            np.testing.assert_array_equal(r.rows(i), want["olda"][item])
        assert col.ragged("segmentations", "fixed").rows(0).tolist() == [5.0, 10.0, 15.0, 20.0]  # 24 s clips


# --- the structure study -------------------------------------------------------------------------

def test_the_frozen_study_table_reads_as_stored():
    from vmtool.structure import read_structure

    want = expected(STUDY)
    table = read_structure(DATA / STUDY)
    assert table["ids"] == want["ids"]
    assert_same({k: [x if isinstance(x, str) else float(x) for x in v.tolist()] for k, v in table["columns"].items()},
                want["columns"])
    assert [h.tolist() for h in table["histograms"]] == want["histograms"]


def test_reanalysing_the_frozen_study_gives_its_stored_report_and_plots(in_data, tmp_path):
    want = expected(STUDY)["reanalysis"]
    args = [str(tmp_path / "again.h5") if a == "again.h5" else a for a in want["args"]]
    res = run("analyze-structure", *args, "--plot", tmp_path / "plots")
    assert res.exit_code == 0, res.stderr
    assert_same(json.loads(res.stdout), want["output"], skip=("seconds", "output"))  # output: where it was written
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == sorted([f"{i}.structure.png" for i in expected(STUDY)["ids"]]
                          + ["summary.music_genre.png", "summary.video_genre.png"])
    assert all((tmp_path / "plots" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_info_reads_the_frozen_study(in_data):
    res = run("info", STUDY, "-f", "json")
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert (info["schema_version"], info["n_items"]) == (VERSION, 4)
    assert info["structure"]["n_clips"] == 4 and info["structure"]["downbeats"] == "librosa"
