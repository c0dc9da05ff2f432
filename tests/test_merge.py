"""``vmtool merge``: shards of features, segmentations and catalogs into one file."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool.cli import app
from vmtool.store import RAGGED_GROUPS, open_collection
from vmtool.synth import synth_features
from vmtool.training import DataConfig, TrainConfig, train

runner = CliRunner()


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def ragged_content(path):
    """Every item's rows of every element (and companions, presence), keyed by item id."""
    out = {}
    with open_collection(path) as col, h5py.File(path, "r") as f:
        for group in RAGGED_GROUPS:
            for name in col.names(group):
                rg = col.ragged(group, name)
                comps = [k for k in f[group][name] if f"{k}_offsets" in f[group][name]]
                for k, i in enumerate(col.ids):
                    out[(group, name, i)] = (np.asarray(rg.rows(k)), rg.present(k), rg.rate(k),
                                             {c: np.asarray(rg.companion(c, k)) for c in comps})
    return out


def assert_same_content(a, b):
    ca, cb = ragged_content(a), ragged_content(b)
    assert sorted(ca) == sorted(cb)
    for key in ca:
        ra, pa, rta, cpa = ca[key]
        rb, pb, rtb, cpb = cb[key]
        np.testing.assert_array_equal(ra, rb, err_msg=str(key))
        assert pa == pb and (rta == rtb or (np.isnan(rta) and np.isnan(rtb))), key
        assert cpa.keys() == cpb.keys()
        for c in cpa:
            np.testing.assert_array_equal(cpa[c], cpb[c], err_msg=f"{key} {c}")


@pytest.fixture(scope="module")
def shards(tmp_path_factory, music_wav, audio_files):
    """Three audio files extracted and segmented one per file, and all together."""
    d = tmp_path_factory.mktemp("merge")
    files = [music_wav, audio_files["wav"], audio_files["flac"]]
    opts = ["-a", "handcrafted", "-v", "none", "-q"]
    seg = ["-m", "beats", "-m", "bars", "-m", "fixed", "--window", "2", "-q"]
    out = []
    for k, f in enumerate(files):
        p = d / f"shard{k}.h5"
        assert run("extract", f, *opts, "-o", p).exit_code == 0
        assert run("segment", p, *seg, "-o", p).exit_code == 0
        out.append(p)
    whole = d / "whole.h5"
    assert run("extract", *files, *opts, "-o", whole).exit_code == 0
    assert run("segment", whole, *seg, "-o", whole).exit_code == 0
    return d, out, whole


def test_merged_shards_equal_one_extraction(shards, tmp_path):
    _, parts, whole = shards
    merged = tmp_path / "merged.h5"
    res = run("merge", *parts, "-o", merged, "--format", "json")
    assert res.exit_code == 0, res.stderr
    rep = json.loads(res.stdout)
    assert rep["items"] == 3 and rep["duplicates"] == 0 and not rep["catalog"]
    with open_collection(merged) as m, open_collection(whole) as w:
        assert m.ids == w.ids  # the clash music5s / music5s gets the same suffix as extract gives it
        assert m.sha256s == w.sha256s and m.config == w.config
        assert [it.duration for it in m.items()] == [it.duration for it in w.items()]
        assert json.loads(m._f.attrs["merged_from"])[1]["items"] == 1
    assert_same_content(merged, whole)
    # the result is a normal vmtool file for the next stage
    assert run("info", merged, "-q").exit_code == 0


def test_stdin_duplicates_and_output_among_the_inputs(shards, tmp_path):
    _, parts, _ = shards
    grown = tmp_path / "grown.h5"
    assert run("merge", parts[0], "-o", grown, "-q").exit_code == 0
    # grow it in place, paths from stdin; parts[0] again is a duplicate, kept once
    res = run("merge", grown, "-", "-o", grown, "--format", "json", input=f"{parts[0]}\n{parts[1]}\n\n")
    assert res.exit_code == 0, res.stderr
    rep = json.loads(res.stdout)
    assert rep["items"] == 2 and rep["duplicates"] == 1
    assert [r["added"] for r in rep["inputs"]] == [1, 0, 1]
    assert "1 duplicate(s) kept once" in res.stderr


def test_an_id_taken_by_other_content_is_renamed(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    synth_features(a, 4, seed=1)
    synth_features(b, 6, seed=2)  # same ids, other content... and another configuration
    res = run("merge", a, b, "-o", tmp_path / "m.h5")
    assert res.exit_code == 1 and "another configuration" in res.stderr and "synthetic.seed" in res.stderr
    with h5py.File(b, "r+") as f:  # same configuration, other content
        f.attrs["config"] = h5py.File(a, "r").attrs["config"]
    res = run("merge", a, b, "-o", tmp_path / "m.h5", "--format", "json")
    assert res.exit_code == 0, res.stderr
    rep = json.loads(res.stdout)
    with open_collection(b) as cb:
        want = [(i, f"{i}-{h[:8]}") for i, h in zip(cb.ids[:4], cb.sha256s[:4])]
    assert [(r["from"], r["to"]) for r in rep["renamed"]] == want
    assert rep["items"] == 10


def test_incompatible_inputs_are_all_reported_and_nothing_is_written(shards, tmp_path):
    d, parts, _ = shards
    other_seg = tmp_path / "other.h5"
    assert run("segment", parts[1], "-m", "fixed", "--window", "3", "-o", other_seg, "-q").exit_code == 0
    other_cfg = tmp_path / "cfg.h5"
    bad = run("extract", d / "shard2.h5", "-o", other_cfg, "-q")  # not media: fails, nothing written
    assert bad.exit_code == 1
    assert bad.stderr == f"Error: {d / 'shard2.h5'}: is an HDF5 file (a vmtool file?), not a media file\n"
    notvm = tmp_path / "notes.h5"
    notvm.write_text("hello")
    out = tmp_path / "out.h5"
    out.write_bytes(b"previous")
    res = run("merge", parts[0], other_seg, notvm, parts[0], "-o", out)
    assert res.exit_code == 3  # the worst problem: a file that is not a vmtool file
    lines = res.stderr.strip().splitlines()
    assert any(str(other_seg) in x and "segmentations/fixed" in x and "window" in x for x in lines), lines
    assert any(str(notvm) in x for x in lines)
    assert any("is given twice" in x for x in lines)
    assert lines[-1] == f"Error: {out}: not written (3 problem(s) with the inputs)"
    assert all(len(x) < 400 for x in lines)
    assert out.read_bytes() == b"previous"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".vmtool-tmp")]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("mmodel")
    feats = d / "feats.h5"
    synth_features(feats, 40, seed=3)
    res = train(feats, d / "m.pt", data=DataConfig(level="segment", segments="fixed"), model_layers={"audio": [32, 16], "video": [32, 16]},
                config=TrainConfig(batch_size=32, epochs=2, val_fraction=0.2, seed=1))
    return res.path


def test_merged_catalogs_equal_the_catalog_of_merged_features(model, tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    synth_features(a, 10, seed=3)
    synth_features(b, 16, seed=3)  # its first 10 items are a's
    for f in (a, b):
        assert run("embed", f, "--model", model, "-o", f.with_suffix(".cat.h5"), "-q").exit_code == 0
    res = run("merge", a.with_suffix(".cat.h5"), b.with_suffix(".cat.h5"), "-o", tmp_path / "cat.h5",
              "--format", "json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["catalog"] is True
    assert run("embed", b, "--model", model, "-o", tmp_path / "direct.h5", "-q").exit_code == 0
    assert_same_content(tmp_path / "cat.h5", tmp_path / "direct.h5")
    r1 = run("rank", f"{tmp_path / 'cat.h5'}#item-00012", tmp_path / "cat.h5", "-m", "nw-dtw", "--format", "json")
    r2 = run("rank", f"{tmp_path / 'direct.h5'}#item-00012", tmp_path / "direct.h5", "-m", "nw-dtw", "--format", "json")
    assert r1.exit_code == 0, r1.stderr
    assert json.loads(r1.stdout)["results"] == json.loads(r2.stdout)["results"]

    # a catalog with a features file, or with another model: refused
    res = run("merge", tmp_path / "cat.h5", a, "-o", tmp_path / "bad.h5")
    assert res.exit_code == 1 and "has no model" in res.stderr
    other = tmp_path / "other.pt"
    train(a, other, data=DataConfig(level="segment", segments="fixed"), model_layers={"audio": [32, 16], "video": [32, 16]},
          config=TrainConfig(batch_size=8, epochs=1, val_fraction=0.2, seed=2))
    assert run("embed", a, "--model", other, "-o", tmp_path / "o.cat.h5", "-q").exit_code == 0
    res = run("merge", tmp_path / "cat.h5", tmp_path / "o.cat.h5", "-o", tmp_path / "bad.h5")
    assert res.exit_code == 1 and "another model" in res.stderr
    assert not (tmp_path / "bad.h5").exists()


def test_a_group_merge_cannot_combine_is_refused(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    synth_features(a, 3, seed=1)
    synth_features(b, 3, seed=1)
    with h5py.File(b, "r+") as f:  # e.g. the /structure table of vmtool analyze-structure
        f.create_group("structure").attrs["element"] = "table"
    res = run("merge", a, b, "-o", tmp_path / "m.h5")
    assert res.exit_code == 1
    assert f"Error: {b}: holds '/structure', which vmtool merge cannot combine" in res.stderr
    assert not (tmp_path / "m.h5").exists()


def test_embed_resume_keeps_unchanged_items_and_equals_a_full_embedding(model, tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    synth_features(a, 10, seed=3)
    synth_features(b, 16, seed=3)  # a's 10 items and 6 new ones
    cat = tmp_path / "cat.h5"
    assert run("embed", a, "--model", model, "-o", cat, "-q").exit_code == 0
    res = run("embed", b, "--model", model, "-o", cat, "--resume")
    assert res.exit_code == 0, res.stderr
    assert "10 kept from the previous catalog" in res.stderr
    assert run("embed", b, "--model", model, "-o", tmp_path / "direct.h5", "-q").exit_code == 0
    assert_same_content(cat, tmp_path / "direct.h5")
    # another storage type, or another model: nothing is kept
    res = run("embed", b, "--model", model, "-o", cat, "--resume", "--dtype", "float16")
    assert res.exit_code == 0 and "kept" not in res.stderr
    # changed boundaries of one item: that item is embedded again
    with h5py.File(b, "r+") as f:
        d = f["segmentations/fixed/data"]
        d[0] = d[0] - 0.5
    res = run("embed", b, "--model", model, "-o", cat, "--resume", "--dtype", "float16")
    assert res.exit_code == 0 and "15 kept" in res.stderr


def test_ids_keep_a_subset(tmp_path):
    a = tmp_path / "a.h5"
    synth_features(a, 8, seed=1)
    keep = tmp_path / "keep.txt"
    keep.write_text("item-00002\nitem-00005\n")
    res = run("merge", a, "--ids", keep, "-o", a, "--format", "json")  # in place
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["dropped"] == 6 and "6 left out" in res.stderr
    with open_collection(a) as col:
        assert col.ids == ["item-00002", "item-00005"]
        col.validate()
    keep.write_text("item-00002\nitem-00099\n")
    res = run("merge", a, "--ids", keep, "-o", tmp_path / "b.h5")
    assert res.exit_code == 1
    assert f"Error: {a}: 1 id(s) of --ids not in the file: item-00099" in res.stderr
    assert not (tmp_path / "b.h5").exists()
    res = run("merge", "-", "--ids", "-", "-o", tmp_path / "b.h5", input=f"{a}\n")
    assert res.exit_code == 2 and "either the input paths or the ids" in res.stderr
