"""NaN or inf in a catalog's embeddings: damaged items are named, never dropped silently."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool.cli import app
from vmtool.synth import synth_catalog

runner = CliRunner()
N = 6


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def damage(path, element, item, value=np.nan):
    """Put *value* into the first stored row of item number *item* of ``embeddings/<element>``."""
    with h5py.File(path, "r+") as f:
        g = f["embeddings"][element]
        row = int(g["offsets"][item])
        data = g["data"]
        data[row, 0] = value


@pytest.fixture
def cat(tmp_path):
    return synth_catalog(tmp_path / "cat.h5", N, seed=1, dim=16)


def ids(path):
    with h5py.File(path, "r") as f:
        return [x.decode() for x in f["items/id"][()]]


def test_rank_names_the_damaged_item_and_ranks_the_others(cat):
    bad = ids(cat)[3]
    damage(cat, "audio_segments", 3)
    res = run("rank", f"{cat}#{ids(cat)[0]}", cat, "-d", "v2m", "-k", str(N), "--format", "json", "-q")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["targets"] == N - 1 and bad not in [r["id"] for r in out["results"]]
    assert res.stderr == (f"Warning: {cat}: 1 item(s) have NaN or infinite audio embeddings "
                          f"('embeddings/audio_segments/data') and are left out: {bad}\n")


def test_evaluate_names_the_damaged_items(cat):
    bad = ids(cat)[2]
    damage(cat, "video", 2, np.inf)
    res = run("evaluate", cat, "-m", "clip", "--format", "json", "-q")
    assert res.exit_code == 0, res.output
    assert f"left out: {bad}" in res.stderr and "embeddings/video/data" in res.stderr


def test_a_damaged_query_item_is_a_format_error(cat):
    bad = ids(cat)[1]
    damage(cat, "video_segments", 1)
    for args in (["align", f"{cat}#{bad}", f"{cat}#{ids(cat)[0]}"], ["rank", f"{cat}#{bad}", cat]):
        res = run(*args, "-q")
        assert res.exit_code == 3, res.output
        assert res.stderr == (f"Error: {cat}: item '{bad}' has NaN or infinite values in "
                              "'embeddings/video_segments/data'\n")


def test_a_catalog_whose_every_item_is_damaged_is_unusable(cat):
    for i in range(N):
        damage(cat, "audio_segments", i)
    res = run("rank", f"{cat}#{ids(cat)[0]}", cat, "-d", "v2m", "-q")
    assert res.exit_code == 3, res.output
    assert res.stderr == (f"Error: {cat}: every item's audio embeddings hold NaN or infinite values "
                          "('embeddings/audio_segments/data'); embed the features again\n")


def test_align_refuses_nan_instead_of_failing_inside_the_dynamic_programme():
    from vmtool.errors import ParameterError
    from vmtool.ranking import align

    q = np.eye(3)
    t = np.eye(3)
    t[1, 1] = np.nan
    with pytest.raises(ParameterError, match="the target's embeddings hold NaN or infinite values"):
        align(q, t, "nw-dtw")
