"""The best section of a track for a video: placed by the alignment, kept inside the track, on a beat."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool import metadata as md
from vmtool.cli import app
from vmtool.ranking.align import align
from vmtool.ranking.section import beat_times, place_section
from vmtool.store import open_collection
from vmtool.synth import synth_catalog

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _unit(rng, n, d=8):
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def spans(n, width=10.0):
    return np.stack([np.arange(n) * width, (np.arange(n) + 1) * width], axis=1)


@pytest.fixture
def pair():
    """A 3-segment query equal to target segments 2..4 of a 6-segment target (10 s segments)."""
    rng = np.random.default_rng(0)
    target = _unit(rng, 6)
    return target[2:5].copy(), target


def test_section_starts_where_the_video_starts_on_the_path(pair):
    q, t = pair
    al = align(q, t, "btrace", query_spans=spans(3), target_spans=spans(6))
    assert al.offset == 2
    sec = place_section(al, spans(3), 30.0, 60.0)
    assert (sec.start, sec.end, sec.snap) == (20.0, 50.0, "none")


def test_section_snaps_to_the_nearest_beat_and_stays_inside_the_track(pair):
    q, t = pair
    al = align(q, t, "btrace", query_spans=spans(3), target_spans=spans(6))
    beats = np.array([0.0, 19.4, 20.7, 41.0])
    assert place_section(al, spans(3), 30.0, 60.0, beats, "beats").start == 19.4
    # a 45-s cut cannot start at 20 s in a 60-s track: moved back to 15 s, then to a beat at or before it
    sec = place_section(al, spans(3), 45.0, 60.0, beats, "beats")
    assert (sec.start, sec.end) == (0.0, 45.0)
    sec = place_section(al, spans(3), 45.0, 60.0, np.arange(0, 60, 2.0), "measured-grid")
    assert (sec.start, sec.end, sec.snap) == (14.0, 59.0, "measured-grid")
    # a track shorter than the cut: the whole track
    sec = place_section(al, spans(3), 90.0, 60.0)
    assert (sec.start, sec.end) == (0.0, 60.0)


def test_local_alignment_moves_the_start_back_by_the_unmatched_query_start():
    t = np.eye(8)  # orthogonal target segments
    q = np.vstack([-np.ones(8) / np.sqrt(8), t[4:7]])  # the first query segment is unlike every target one
    al = align(q, t, "sw-dtw", query_spans=spans(4), target_spans=spans(8))
    assert tuple(al.path[0]) == (1, 4)
    sec = place_section(al, spans(4), 40.0, 80.0)
    assert sec.start == 30.0  # target 40 s matches query 10 s: the video starts at 30 s


def test_bad_length(pair):
    q, t = pair
    al = align(q, t, "btrace", query_spans=spans(3), target_spans=spans(6))
    with pytest.raises(Exception, match="--length must be a positive number of seconds"):
        place_section(al, spans(3), 0.0, 60.0)


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    path = synth_catalog(tmp_path_factory.mktemp("section") / "cat.h5", 12, seed=3, dim=16)
    with h5py.File(path, "r+") as f:
        md.set_values(f, {i: {"measured_bpm": 120.0, "measured_beat_offset": 0.2} for i in range(0, 12, 2)}, 12,
                      origin="measured")
    return path


def test_beat_times_from_the_measured_grid(cat):
    with open_collection(cat) as col:
        beats, kind = beat_times(col, 0)
        assert kind == "measured-grid" and beats[:3] == pytest.approx([0.2, 0.7, 1.2])
        assert beats[-1] >= float(col.column("duration")[0]) - 0.5
        assert beat_times(col, 1) == (None, "none")


def test_rank_prints_each_results_section(cat):
    res = run("rank", f"{cat}#item00002", cat, "-k", "12", "--length", "30", "--format", "json", "-q")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)["results"]
    for r in out:
        sec = r["section"]
        assert sec["end"] - sec["start"] == pytest.approx(30.0, abs=1e-3)
        idx = int(r["id"][4:])
        assert sec["snap"] == ("measured-grid" if idx % 2 == 0 else "none")
        if idx % 2 == 0:  # on the 120-BPM grid starting at 0.2 s
            assert ((sec["start"] - 0.2) / 0.5) == pytest.approx(round((sec["start"] - 0.2) / 0.5), abs=1e-6)
    tsv = run("rank", f"{cat}#item00002", cat, "-k", "2", "-m", "centroid", "--format", "tsv", "-q").stdout
    head, first = tsv.splitlines()[:2]
    assert head.split("\t")[-2:] == ["section_start", "section_end"]
    s0, s1 = (float(x) for x in first.split("\t")[-2:])
    from vmtool.ranking import load_catalog

    video_length = float(load_catalog(cat, "video").spans_of(2)[-1, 1])  # the default: the query's length
    with open_collection(cat) as col:
        track = float(col.column("duration")[col.index(first.split("\t")[1])])
    assert s1 - s0 == pytest.approx(min(video_length, track), abs=1e-3)
