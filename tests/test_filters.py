"""``rank --where``: the filter syntax, its meaning on metadata, and the command line."""

from __future__ import annotations

import json
import re

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool import metadata as md
from vmtool.cli import app
from vmtool.errors import UsageError
from vmtool.filters import Filter, parse_filter, select
from vmtool.synth import synth_catalog

runner = CliRunner()

KEYS = ["Am", "C", "Bb", "F#m", "E", None]
GENRES = ["Rock", "Indie rock", "Jazz", "Pop", None]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("text, want", [
    ("bpm 90..120", Filter("bpm 90..120", "bpm", "range", low=90.0, high=120.0)),
    ("duration ..180", Filter("duration ..180", "duration", "range", high=180.0)),
    ("bpm 90..", Filter("bpm 90..", "bpm", "range", low=90.0)),
    ("key Am,C", Filter("key Am,C", "key", "in", ("Am", "C"))),
    ("genre ~ rock", Filter("genre ~ rock", "genre", "~", ("rock",))),
    ("artist != The Sines", Filter("artist != The Sines", "artist", "!=", ("The Sines",))),
    ("tempo>=100", Filter("tempo>=100", "bpm", ">=", ("100.0",))),
    ("Loudness < -12", Filter("Loudness < -12", "measured_loudness_lufs", "<", ("-12.0",))),
])
def test_parse_filter(text, want):
    assert parse_filter(text) == want


@pytest.mark.parametrize("text, message", [
    ("bpm", "expected FIELD [OP] VALUE"),
    ("bpm 90..1x0", "'1x0' is not a number"),
    ("bpm ..", "a range is LOW..HIGH, ..HIGH or LOW.."),
    ("bpm 1..2..3", "a range is LOW..HIGH"),
    ("bpm 120..90", "the range is empty (120 > 90)"),
    ("bpm > fast", "'fast' is not a number"),
    ("9bpm 1..2", "expected FIELD [OP] VALUE"),
])
def test_malformed_filter(text, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_filter(text)
    assert UsageError.exit_code == 2


def _meta() -> tuple[md.Metadata, dict]:
    cols = {
        "bpm": np.array([100.0, np.nan, 130.0, np.nan]),
        "measured_bpm": np.array([99.0, 110.0, 131.0, np.nan]),
        "key": np.array(["Bb", "", "C", ""], dtype=object),
        "measured_key": np.array(["A#", "Am", "C", "Cm"], dtype=object),
        "genre": np.array(["Indie Rock", "rock", "", "Jazz"], dtype=object),
        "artist": np.array(["X", "Y", "", "x"], dtype=object),
    }
    items = {"duration": np.array([100.0, 200.0, 180.0, 30.0]), "id": np.array(list("abcd"), dtype=object),
             "source": np.array(["a.mp3", "b.mp3", "c.flac", "d.wav"], dtype=object)}
    return md.Metadata(cols, {}, 4), items


@pytest.mark.parametrize("filters, keep", [
    (["bpm 90..120"], [1, 1, 0, 0]),  # item 1 has no tag: its measured 110 counts; item 3 has neither
    (["key A#,C"], [1, 0, 1, 0]),  # Bb is A#
    (["key Am"], [0, 1, 0, 0]),  # measured, where nothing is tagged
    (["genre ~ ROCK"], [1, 1, 0, 0]),
    (["genre !~ rock"], [0, 0, 0, 1]),  # item 2 has no genre: excluded although it contains no "rock"
    (["artist != x"], [0, 1, 0, 0]),  # text compares case-insensitively; missing excluded
    (["duration ..180"], [1, 0, 1, 1]),
    (["duration ..180", "bpm >= 100"], [1, 0, 1, 0]),
    (["source = c.flac"], [0, 0, 1, 0]),
    (["bpm 131"], [0, 0, 0, 0]),  # the tag (130) wins over the measured value (131)
])
def test_select(filters, keep):
    meta, items = _meta()
    sel = select(filters, meta, items)
    assert sel.keep.astype(int).tolist() == keep
    assert sel.excluded == 4 - sum(keep)


def test_select_reports_per_filter_counts():
    meta, items = _meta()
    sel = select(["duration ..180", "bpm >= 100"], meta, items)
    assert sel.excluded_by == {"duration ..180": 1, "bpm >= 100": 1}


@pytest.mark.parametrize("filters, message", [
    (["mood 1..2"], "unknown field 'mood' (fields: artist, bpm, duration, genre, id, key, measured_bpm"),
    (["genre 1..2"], "a range or comparison needs a number; 'genre' is text"),
    (["duration ~ 1"], "'~' needs a text field; 'duration' is a number"),
])
def test_select_bad_field(filters, message):
    meta, items = _meta()
    with pytest.raises(UsageError, match=re.escape(message)):
        select(filters, meta, items)


# --- the command line ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    """A synthetic 40-item catalog with tags on most items and measured values on all."""
    path = synth_catalog(tmp_path_factory.mktemp("where") / "cat.h5", 40, seed=4, dim=16)
    rng = np.random.default_rng(0)
    rows = {}
    for i in range(40):
        r = {"title": f"Song {i}", "artist": f"Artist {i % 3}", "measured_bpm": float(rng.uniform(70, 160)),
             "measured_key": md.key_name(int(rng.integers(12)), bool(rng.integers(2)))}
        if KEYS[i % 6] is not None:
            r["key"] = md.normalize_key(KEYS[i % 6])
        if GENRES[i % 5] is not None:
            r["genre"] = GENRES[i % 5]
        if i % 4:
            r["bpm"] = float(rng.uniform(70, 160))
        rows[i] = r
    with h5py.File(path, "r+") as f:
        md.set_values(f, rows, 40, origin="sheet")
    return path


def test_rank_where_keeps_only_matching_items(cat):
    res = run("rank", f"{cat}#item00003", cat, "--where", "genre ~ rock", "--where", "bpm 90..140", "-k", "40",
              "--format", "json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    from vmtool.store import open_collection

    with open_collection(cat) as col:
        m = col.metadata()
        bpm, genre = m.effective("bpm"), m.columns["genre"]
    want = {f"item{i:05d}" for i in range(40) if "rock" in genre[i].lower() and 90 <= bpm[i] <= 140}
    assert {r["id"] for r in out["results"]} == want and want
    assert out["candidates"] == len(want)
    assert f"--where: {40 - len(want)} of 40 items excluded (genre ~ rock: 24; bpm 90..140: " in res.stderr
    assert all(r["title"].startswith("Song ") and r["artist"].startswith("Artist ") for r in out["results"])


@pytest.mark.parametrize("hubness", ["none", "auto"])
def test_rank_where_gives_the_same_distances_as_unfiltered(cat, hubness):
    args = ("-k", "40", "--format", "json", "-q", "--hubness", hubness)
    full = json.loads(run("rank", f"{cat}#item00000", cat, *args).stdout)
    res = run("rank", f"{cat}#item00000", cat, *args, "--where", "key Am,C")
    assert res.exit_code == 0, res.stderr
    part = json.loads(res.stdout)
    kept = {r["id"] for r in part["results"]}
    want = [(r["id"], r["distance"]) for r in full["results"] if r["id"] in kept]
    got = [(r["id"], r["distance"]) for r in part["results"]]
    if hubness == "none":
        assert got == want
    else:  # CSLS: the query's term is taken among the kept tracks, a constant shift: same order
        assert full["hubness"] == "csls:10" and [i for i, _ in got] == [i for i, _ in want]
        shift = np.array([d for _, d in got]) - np.array([d for _, d in want])
        np.testing.assert_allclose(shift, shift[0], atol=1e-9)


def test_rank_where_computes_no_distance_for_excluded_items(cat, monkeypatch):
    import sys

    rank_mod = sys.modules["vmtool.ranking.rank"]
    seen = []
    real = rank_mod.distances

    def spy(query, catalog, *args, **kwargs):
        seen.append(len(catalog))
        return real(query, catalog, *args, **kwargs)

    monkeypatch.setattr(rank_mod, "distances", spy)
    res = run("rank", f"{cat}#item00000", cat, "-q", "--where", "key C", "--format", "tsv")
    assert res.exit_code == 0, res.stderr
    assert seen == [7] and res.stdout.count("\n") == 8  # only the 7 items in C are compared


def test_rank_table_and_tsv_show_title_and_artist(cat):
    res = run("rank", f"{cat}#item00002", cat, "-k", "3", "-q")
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["rank", "id", "title", "artist", "distance", "start", "end", "section", "source"]
    assert "Song 2" in lines[1] and "Artist 2" in lines[1]
    tsv = run("rank", f"{cat}#item00002", cat, "-k", "3", "-q", "--format", "tsv").stdout.splitlines()
    assert tsv[0].split("\t")[-4:] == ["title", "artist", "section_start", "section_end"]
    assert tsv[1].split("\t")[-4:-2] == ["Song 2", "Artist 2"]
