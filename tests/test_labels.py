"""Per-item labels and known negatives in a collection (``vmtool label``, ``import --labels``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool.cli import app
from vmtool.errors import ParameterError
from vmtool.labels import label_column
from vmtool.store import CollectionWriter, Item, open_collection
from vmtool.synth import synth_features

runner = CliRunner()
DATA = Path(__file__).parent / "data"


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def feats(tmp_path):
    p = tmp_path / "f.h5"
    synth_features(p, 4, clip_level=True, seed=3)
    return p


def test_frozen_1_1_still_reads():
    """The committed example of schema 1.1 (labels, negatives) must keep reading."""
    with open_collection(DATA / "collection-1.1.h5") as col:
        assert col.schema_version == "1.1"
        assert col.label_names() == ["music_emotion", "polarity", "video_emotion"]
        assert col.label("video_emotion").tolist() == ["happy", "sad"]
        assert col.label("music_emotion").tolist() == ["", "sad"]
        pol = col.label("polarity")
        assert pol[0] == 1.0 and math.isnan(pol[1])
        assert col.label_kind("polarity") == "numeric" and col.label_kind("video_emotion") == "categorical"
        assert col.negatives() == [("sécond clip", "first")]
        assert col.feature("toy").rows(1).tolist() == [[-1, -1, -1]]


def test_frozen_1_0_has_no_labels():
    with open_collection(DATA / "collection-1.0.h5") as col:
        assert col.label_names() == [] and col.negatives() == []


def test_label_command_joins_on_ids_and_keeps_other_columns(feats, tmp_path):
    ids = open_collection(feats).ids
    csv1 = write(tmp_path / "l.csv", "id,emotion,polarity\n" + "".join(
        f"{i},{'calm' if k % 2 else 'tense'},{k - 1}\n" for k, i in enumerate(ids[:3])))
    res = run("label", feats, "--labels", csv1, "-q")
    assert res.exit_code == 0, res.stderr
    with open_collection(feats) as col:
        assert col.label("emotion").tolist() == ["tense", "calm", "tense", ""]
        np.testing.assert_array_equal(col.label("polarity")[:3], [-1, 0, 1])
        assert math.isnan(col.label("polarity")[3])
    csv2 = write(tmp_path / "t.csv", f"id,track\n{ids[3]},song-b\n")
    assert run("label", feats, "--labels", csv2, "-q").exit_code == 0
    with open_collection(feats) as col:  # a second file adds a column, keeps the others
        assert col.label_names() == ["emotion", "polarity", "track"]
        assert col.label("track").tolist() == ["", "", "", "song-b"]
        assert col.schema_version == "1.1"


def test_join_on_source_file_name(tmp_path):
    p = tmp_path / "c.h5"
    with CollectionWriter(p, config={}) as w:
        for k, src in enumerate(["media/a clip.mp4", "other/b.mp4"]):
            w.add(Item(f"x{k}", src, str(k) * 64, 1.0, True, True, 25.0, 44100), {})
    csv = write(tmp_path / "l.csv", "file,video_emotion\nb.mp4,sad\na clip.mp4,happy\n")
    assert run("label", p, "--labels", csv, "-q").exit_code == 0
    assert label_column(p, "video_emotion").tolist() == ["happy", "sad"]


def test_label_column_api_names_file_and_column(feats):
    with pytest.raises(ParameterError, match=r"f\.h5: no label column 'emotion' \(label columns: none"):
        label_column(feats, "emotion")


def test_labels_survive_resume_embed_and_merge(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    synth_features(a, 3, clip_level=True, seed=1)
    synth_features(b, 5, clip_level=True, seed=1)  # its first 3 items are a's: kept once
    ia, ib = open_collection(a).ids, open_collection(b).ids
    assert run("label", a, "--labels", write(tmp_path / "a.csv", "id,emotion,polarity\n" + "".join(
        f"{i},e{k},{k}\n" for k, i in enumerate(ia))), "--negatives",
        write(tmp_path / "n.csv", f"video_id,music_id\n{ia[0]},{ia[1]}\n"), "-q").exit_code == 0
    assert run("label", b, "--labels", write(tmp_path / "b.csv", f"id,track\n{ib[3]},t\n"), "-q").exit_code == 0
    res = run("merge", a, b, "-o", tmp_path / "m.h5", "-q")
    assert res.exit_code == 0, res.stderr
    with open_collection(tmp_path / "m.h5") as m:
        assert m.label("emotion").tolist() == ["e0", "e1", "e2", "", ""]
        assert m.label("track").tolist() == ["", "", "", "t", ""]
        np.testing.assert_array_equal(m.label("polarity")[:3], [0, 1, 2])
        assert np.isnan(m.label("polarity")[3:]).all()
        assert m.negatives() == [(ia[0], ia[1])]
    # a writer appending items (extract --resume) gives them no value
    with CollectionWriter(a) as w:
        w.add(Item("new", "new.mp4", "9" * 64, 1.0, True, True, 25.0, 44100), {})
    with open_collection(a) as col:
        assert col.label("emotion").tolist() == ["e0", "e1", "e2", ""]
        assert np.isnan(col.label("polarity")[3])


def test_import_with_labels(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.normal(size=(3, 4)).astype("f4"))
    np.save(tmp_path / "v.npy", rng.normal(size=(3, 5)).astype("f4"))
    write(tmp_path / "ids.txt", "p\nq\nr\n")
    write(tmp_path / "l.csv", "id,video_emotion,music_emotion\np,joy,joy\nr,fear,joy\n")
    write(tmp_path / "n.csv", "video_id,music_id\np,r\n")
    out = tmp_path / "f.h5"
    res = run("import", "--audio", tmp_path / "a.npy", "--video", tmp_path / "v.npy", "--ids", tmp_path / "ids.txt",
              "--labels", tmp_path / "l.csv", "--negatives", tmp_path / "n.csv", "-o", out)
    assert res.exit_code == 0, res.stderr
    assert "labels/video_emotion: categorical, 2 item(s), 2 classes" in res.stderr
    with open_collection(out) as col:
        assert col.label("music_emotion").tolist() == ["joy", "", "joy"]
        assert col.negatives() == [("p", "r")]
    res = run("info", out)
    assert "video_emotion  categorical  2      fear 1, joy 1" in res.stdout
    assert "negatives: 1 known mismatched pair(s)" in res.stdout


def test_label_match_at_k_by_hand():
    from vmtool.ranking.evaluate import label_match

    d = np.array([[0.1, 0.5, 0.2, 0.9],
                  [0.3, 0.0, 0.8, 0.4],
                  [0.5, 0.5, 0.5, 0.5],
                  [0.2, 0.1, np.nan, 0.3]])
    q = np.array(["a", "b", "", "a"], dtype=object)   # query 2 has no label: left out
    t = np.array(["a", "b", "b", ""], dtype=object)   # target 3 has none: never matches
    got = label_match(d, q, t, ks=(1, 2, 4))
    # nearest first: q0 -> 0(a) 2(b) 1(b) 3 ; q1 -> 1(b) 0(a) 3 2(b) ; q3 -> 1(b) 0(a) 3 2(NaN last)
    assert got["label_match1"] == pytest.approx(100 * (1 + 1 + 0) / 3)
    assert got["label_match2"] == pytest.approx(100 * (1 / 2 + 1 / 2 + 1 / 2) / 3)
    assert got["label_match4"] == pytest.approx(100 * (1 / 4 + 2 / 4 + 1 / 4) / 3)
    assert got["label_chance"] == pytest.approx(100 * (1 / 4 + 2 / 4 + 1 / 4) / 3)
