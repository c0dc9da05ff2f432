"""``vmtool segment --resume``: only new or changed items are segmented again."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool.cli import app
from vmtool.store import open_collection

runner = CliRunner()
METHODS = ("-m", "olda", "-m", "bars", "-m", "fixed", "--window", "6")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def boundaries(path, method):
    with open_collection(path) as col:
        rg = col.ragged("segmentations", method)
        return {i: np.asarray(rg.rows(k)) for k, i in enumerate(col.ids)}, \
            {i: rg.companion("beat_times", k) for k, i in enumerate(col.ids)} if method == "bars" else None


@pytest.fixture(scope="module")
def tracks(tmp_path_factory):
    from vmtool.synth import synth_music, write_media

    d = tmp_path_factory.mktemp("resume")
    for k, (tempo, sections) in enumerate([(100.0, "ABA"), (128.0, "AB"), (90.0, "ABC")]):
        y, truth = synth_music(duration=24.0, tempo=tempo, sections=sections, seed=10 + k)
        write_media(d / f"t{k}.wav", audio=y, sr=truth.sr)
    return d


def test_resume_segments_only_the_new_track(tracks, tmp_path):
    music, seg = tmp_path / "music.h5", tmp_path / "seg.h5"
    assert run("extract", tracks / "t0.wav", tracks / "t1.wav", "-a", "handcrafted", "-o", music, "-q").exit_code == 0
    res = run("segment", music, *METHODS, "-o", seg, "-q")
    assert res.exit_code == 0, res.stderr
    before = {m: boundaries(seg, m) for m in ("olda", "bars", "fixed")}

    # a third track arrives; the first one's source disappears: kept items need no decoding
    assert run("extract", tracks / "t2.wav", "-a", "handcrafted", "--resume", "-o", music, "-q").exit_code == 0
    (tracks / "t0.wav").rename(tmp_path / "t0-moved.wav")
    try:
        res = run("segment", music, *METHODS, "-o", seg, "--resume", "--format", "json")
    finally:
        (tmp_path / "t0-moved.wav").rename(tracks / "t0.wav")
    assert res.exit_code == 0, res.stderr
    rep = json.loads(res.stdout)
    assert rep["reused"] == {"olda": 2, "bars": 2, "fixed": 2}
    assert "2 kept from the previous run" in res.stderr
    with open_collection(seg) as col:
        assert col.ids == ["t0", "t1", "t2"]
    for m in ("olda", "bars", "fixed"):
        now, old = boundaries(seg, m), before[m]
        for i in ("t0", "t1"):
            np.testing.assert_array_equal(now[0][i], old[0][i])
            if m == "bars":
                np.testing.assert_array_equal(now[1][i], old[1][i])
        assert now[0]["t2"].size > 0 or m == "olda"

    # the same as segmenting all three from scratch
    fresh = tmp_path / "fresh.h5"
    assert run("segment", music, *METHODS, "-o", fresh, "-q").exit_code == 0
    for m in ("olda", "bars", "fixed"):
        a, b = boundaries(seg, m)[0], boundaries(fresh, m)[0]
        for i in a:
            np.testing.assert_allclose(a[i], b[i])
    with open_collection(seg) as c1, open_collection(fresh) as c2:
        for k in range(3):
            assert c1.ragged("segmentations", "bars").companion("tempo", k)[0] == pytest.approx(
                c2.ragged("segmentations", "bars").companion("tempo", k)[0])


def test_resume_recomputes_a_method_whose_parameters_changed(tracks, tmp_path):
    music, seg = tmp_path / "music.h5", tmp_path / "seg.h5"
    assert run("extract", tracks / "t0.wav", tracks / "t1.wav", "-a", "handcrafted", "-o", music, "-q").exit_code == 0
    assert run("segment", music, "-m", "fixed", "--window", "6", "-m", "bars", "-o", seg, "-q").exit_code == 0
    res = run("segment", music, "-m", "fixed", "--window", "4", "-m", "bars", "-o", seg, "--resume",
              "--format", "json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["reused"] == {"fixed": 0, "bars": 2}
    np.testing.assert_allclose(boundaries(seg, "fixed")[0]["t0"], [4, 8, 12, 16, 20])


def test_resume_on_a_file_of_another_kind_fails_and_keeps_it(tracks, tmp_path):
    music = tmp_path / "music.h5"
    assert run("extract", tracks / "t0.wav", "-a", "handcrafted", "-o", music, "-q").exit_code == 0
    model = tmp_path / "m.h5"
    model.write_bytes(b"not a vmtool file")
    res = run("segment", music, "-m", "fixed", "--window", "6", "-o", model, "--resume")
    assert res.exit_code == 3
    assert res.stderr == f"Error: {model}: not an HDF5 file (or damaged)\n"
    assert model.read_bytes() == b"not a vmtool file"


def test_growing_one_file_in_place(tracks, tmp_path):
    """extract --resume on a segmented file, then segment --resume in place (docs/index.md)."""
    music = tmp_path / "music.h5"
    assert run("extract", tracks / "t0.wav", tracks / "t1.wav", "-a", "handcrafted", "-o", music, "-q").exit_code == 0
    assert run("segment", music, *METHODS, "--labels", "fmc2d", "-o", music, "-q").exit_code == 0
    res = run("extract", tracks / "t0.wav", tracks / "t1.wav", tracks / "t2.wav", "-a", "handcrafted",
              "--resume", "-o", music, "-q")
    assert res.exit_code == 0, res.stderr
    with open_collection(music) as col:
        col.validate()  # presence flags and companion offsets grew with the new item
        for m in ("olda", "bars", "fixed"):
            rg = col.ragged("segmentations", m)
            assert [rg.present(k) for k in range(3)] == [True, True, False]
        assert col.ragged("segmentations", "olda").companion("labels", 2).size == 0
    res = run("segment", music, *METHODS, "--labels", "fmc2d", "-o", music, "--resume", "--format", "json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["reused"] == {"olda": 2, "bars": 2, "fixed": 2}
    with open_collection(music) as col:
        assert all(col.ragged("segmentations", "fixed").present(k) for k in range(3))
        assert col.ragged("segmentations", "bars").companion("beat_times", 2).size > 0
