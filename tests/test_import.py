"""``vmtool import``: precomputed arrays and YouTube-8M shards into a features collection."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
import struct

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool.cli import app
from vmtool.errors import FormatError, ParameterError, VmtoolError
from vmtool.importers import ArraySource, import_arrays, import_yt8m, item_sha256
from vmtool.importers import tfrecord as tfr
from vmtool.importers import yt8m
from vmtool.store import open_collection

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(res) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# --- NPY ------------------------------------------------------------------------------------------


def test_npy_clip_level_with_shared_ids(tmp_path, rng):
    a, v = rng.normal(size=(4, 8)), rng.normal(size=(4, 5)).astype(np.float32)
    np.save(tmp_path / "audio.npy", a)
    np.save(tmp_path / "video.npy", v)
    (tmp_path / "ids.txt").write_text("w\nx\ny\nz\n\n")
    out = tmp_path / "feats.h5"
    res = run("import", "--audio", tmp_path / "audio.npy", "--video", tmp_path / "video.npy",
              "--ids", tmp_path / "ids.txt", "-o", out)
    assert res.exit_code == 0, res.stderr
    assert res.stdout == ""
    assert "4 item(s) imported" in res.stderr
    assert "4 audio-visual pair(s), 0 audio only, 0 video only" in res.stderr
    with open_collection(out) as col:
        assert col.ids == ["w", "x", "y", "z"]
        fa, fv = col.feature("imported_audio"), col.feature("imported_video")
        assert fa.attrs["level"] == fv.attrs["level"] == "clip"
        assert fa.attrs["extractor"] == "import" and fa.modality == "audio" and fv.modality == "video"
        assert fa.attrs["config"]["source"] == str(tmp_path / "audio.npy")
        assert np.all(np.isnan(fa.rates))
        for i in range(4):
            assert np.array_equal(fa.rows(i), a[i:i + 1].astype(np.float32))
            assert np.array_equal(fv.rows(i), v[i:i + 1])
            it = col.item(i)
            assert it.has_audio and it.has_video and math.isnan(it.duration) and math.isnan(it.fps)
            assert it.sample_rate == 0
            assert it.source == f"{tmp_path / 'audio.npy'}#{i};{tmp_path / 'video.npy'}#{i}"
            want = hashlib.sha256(a[i].astype("<f4").tobytes() + v[i].astype("<f4").tobytes()).hexdigest()
            assert it.sha256 == want == item_sha256(fa.rows(i), fv.rows(i))
        cfg = col.config
        assert cfg["config_version"] == 1 and cfg["imported"]["join"] == "id"
        assert cfg["imported"]["audio"]["ids"] == str(tmp_path / "ids.txt")
    info = run("info", out, "--format", "json")
    assert info.exit_code == 0, info.stderr
    d = json.loads(info.stdout)
    assert d["n_items"] == 4 and d["modalities"] == {"audio+video": 4}
    assert {f["name"]: f["dim"] for f in d["features"]} == {"imported_audio": 8, "imported_video": 5}
    assert run("info", out).exit_code == 0


def test_npy_frame_level_with_offsets(tmp_path, rng):
    frames = rng.normal(size=(10, 3))
    np.save(tmp_path / "a.npy", frames)
    np.save(tmp_path / "off.npy", np.array([0, 4, 4, 10]))
    out = tmp_path / "f.h5"
    rep = import_arrays(out, audio=ArraySource(tmp_path / "a.npy", offsets=tmp_path / "off.npy"), rate=2.0)
    assert (rep.n_items, rep.n_audio_only, rep.n_without, rep.join) == (3, 2, 1, "single")
    with open_collection(out) as col:
        f = col.feature("imported_audio")
        assert f.attrs["level"] == "frame" and f.rate_summary() == 2.0
        assert np.array_equal(f.offsets, [0, 4, 4, 10])
        assert np.array_equal(f.rows(2), frames[4:].astype(np.float32))
        assert [it.duration for it in col.items()][::2] == [2.0, 3.0]
        assert math.isnan(col.item(1).duration) and not col.item(1).has_audio
        assert np.isnan(f.rate(1))
        assert col.ids == ["0", "1", "2"]


def test_three_d_array_is_frame_level_and_rates_per_modality(tmp_path, rng):
    v = rng.normal(size=(2, 3, 4))
    a = rng.normal(size=(2, 6))
    np.save(tmp_path / "v.npy", v)
    np.save(tmp_path / "a.npy", a)
    res = run("import", "--video", tmp_path / "v.npy", "--video-rate", 0.5, "--audio", tmp_path / "a.npy",
              "--video-name", "clipvis", "--audio-name", "clipaud", "-o", tmp_path / "o.h5", "-q")
    assert res.exit_code == 0, res.stderr
    assert res.stderr == ""
    with open_collection(tmp_path / "o.h5") as col:
        fv = col.feature("clipvis")
        assert fv.attrs["level"] == "frame" and col.feature("clipaud").attrs["level"] == "clip"
        assert np.array_equal(fv.rows(1), v[1].astype(np.float32))
        assert col.item(0).duration == 6.0  # 3 rows at 0.5 Hz


# --- NPZ ------------------------------------------------------------------------------------------


def test_npz_keys_with_offsets_and_ids_siblings(tmp_path, rng):
    audio, video = rng.normal(size=(7, 4)), rng.normal(size=(3, 2))
    np.savez(tmp_path / "x.npz", audio=audio, audio_offsets=np.array([0, 3, 7]), video=video,
             video_ids=np.array(["b", "c", "a"]), ids=np.array(["a", "b"]))
    out = tmp_path / "x.h5"
    res = run("import", "--audio", f"{tmp_path / 'x.npz'}:audio", "--video", f"{tmp_path / 'x.npz'}:video",
              "--rate", 4, "-o", out)
    assert res.exit_code == 0, res.stderr
    assert "2 audio-visual pair(s), 0 audio only, 1 video only (joined on ids)" in res.stderr
    with open_collection(out) as col:
        assert col.ids == ["a", "b", "c"]
        fa, fv = col.feature("imported_audio"), col.feature("imported_video")
        assert np.array_equal(fa.rows(col.index("b")), audio[3:7].astype(np.float32))
        assert np.array_equal(fv.rows(col.index("a")), video[2:3].astype(np.float32))
        assert not col.item(col.index("c")).has_audio
        assert col.item(col.index("c")).source == f"{tmp_path / 'x.npz'}:video#1"
        cfg = fa.attrs["config"]
        assert cfg["offsets"].endswith("x.npz:audio_offsets") and cfg["ids"].endswith("x.npz:ids")


def test_npz_one_array_per_item_joined_on_ids(tmp_path, rng):
    per = {"v1": rng.normal(size=(2, 3)), "v2": rng.normal(size=(5, 3)), "v9": rng.normal(size=(1, 3))}
    np.savez(tmp_path / "video.npz", **per)
    np.save(tmp_path / "a.npy", rng.normal(size=(3, 2)))
    (tmp_path / "aids.txt").write_text("v2\nv1\nonly-audio\n")
    rep = import_arrays(tmp_path / "o.h5", video=ArraySource(tmp_path / "video.npz"),
                        audio=ArraySource(tmp_path / "a.npy", ids=tmp_path / "aids.txt"), rate=1)
    assert (rep.n_pairs, rep.n_audio_only, rep.n_video_only, rep.join) == (2, 1, 1, "id")
    with open_collection(tmp_path / "o.h5") as col:
        assert col.ids == ["v2", "v1", "only-audio", "v9"]
        fv = col.feature("imported_video")
        assert np.array_equal(fv.rows(col.index("v2")), per["v2"].astype(np.float32))
        assert col.item(3).source == f"{tmp_path / 'video.npz'}#v9"
        assert col.item(3).duration == 1.0 and col.item(3).has_video and not col.item(3).has_audio


def test_ids_on_one_side_only_pair_by_position(tmp_path, rng):
    np.savez(tmp_path / "a.npz", feats=rng.normal(size=(2, 3)), ids=np.array([7, 9]))
    np.save(tmp_path / "v.npy", rng.normal(size=(2, 4)))
    rep = import_arrays(tmp_path / "o.h5", audio=ArraySource(tmp_path / "a.npz"), video=ArraySource(tmp_path / "v.npy"))
    assert (rep.join, rep.n_pairs) == ("position", 2)
    with open_collection(tmp_path / "o.h5") as col:
        assert col.ids == ["7", "9"]
        assert col.item(1).source == f"{tmp_path / 'a.npz'}:feats#1;{tmp_path / 'v.npy'}#1"


def test_npz_per_item_vectors_are_clip_level(tmp_path, rng):
    np.savez(tmp_path / "a.npz", s1=rng.normal(size=4), s2=rng.normal(size=4))
    rep = import_arrays(tmp_path / "o.h5", audio=ArraySource(tmp_path / "a.npz"))
    assert rep.features[0]["level"] == "clip" and rep.features[0]["rows"] == 2


# --- HDF5 -----------------------------------------------------------------------------------------


def test_hdf5_dataset_with_siblings_group_per_item_and_root(tmp_path, rng):
    frames = rng.normal(size=(6, 4)).astype(np.float32)
    per = {"k1": rng.normal(size=(3,)), "k2": rng.normal(size=(3,))}
    with h5py.File(tmp_path / "in.h5", "w") as f:
        g = f.create_group("feats")
        g["audio"] = frames
        g["offsets"] = np.array([0, 2, 6])
        g["ids"] = np.array([b"k1", b"k2"], dtype=h5py.string_dtype())
        c = f.create_group("clips")
        for k, x in per.items():
            c[k] = x
    with h5py.File(tmp_path / "root.h5", "w") as f:
        f["only"] = frames
    src = tmp_path / "in.h5"
    res = run("import", "--audio", f"{src}:/feats/audio", "--video", f"{src}:clips", "--rate", 1,
              "-o", tmp_path / "o.h5")
    assert res.exit_code == 0, res.stderr
    with open_collection(tmp_path / "o.h5") as col:
        assert col.ids == ["k1", "k2"]
        fa, fv = col.feature("imported_audio"), col.feature("imported_video")
        assert np.array_equal(fa.rows(1), frames[2:])
        assert fv.attrs["level"] == "clip" and np.array_equal(fv.rows(0)[0], per["k1"].astype(np.float32))
        assert col.item(0).source == f"{src}:/feats/audio#0;{src}#/clips/k1"
        assert fa.attrs["config"]["key"] == "/feats/audio"
    rep = import_arrays(tmp_path / "r.h5", video=ArraySource(tmp_path / "root.h5"))
    assert rep.n_items == 6 and rep.features[0]["level"] == "clip"


# --- CSV ------------------------------------------------------------------------------------------


def test_csv_id_column_groups_frames(tmp_path):
    (tmp_path / "a.csv").write_text("id,loud,bright\n"
                                    "song1,1,2\nsong1,3,4\nsong2,5,6\n")
    (tmp_path / "v.tsv").write_text("# clip-level video vectors, no header\n1.5\t2\n3\t4.25\n")
    (tmp_path / "vids.txt").write_text("song2\nsong1\n")
    out = tmp_path / "o.h5"
    res = run("import", "--audio", tmp_path / "a.csv", "--video", tmp_path / "v.tsv", "--video-ids",
              tmp_path / "vids.txt", "--audio-rate", 10, "-o", out)
    assert res.exit_code == 0, res.stderr
    with open_collection(out) as col:
        assert col.ids == ["song1", "song2"]
        fa, fv = col.feature("imported_audio"), col.feature("imported_video")
        assert fa.attrs["columns"] == ["loud", "bright"] and fa.attrs["level"] == "frame"
        assert fa.rows(0).tolist() == [[1, 2], [3, 4]]
        assert fv.rows(col.index("song1")).tolist() == [[3, 4.25]]
        assert col.item(0).duration == pytest.approx(0.2)


def test_whitespace_csv_without_header(tmp_path, rng):
    x = rng.normal(size=(3, 4))
    np.savetxt(tmp_path / "a.txt", x)  # space separated
    rep = import_arrays(tmp_path / "o.h5", audio=ArraySource(tmp_path / "a.txt"))
    with open_collection(tmp_path / "o.h5") as col:
        assert np.array_equal(col.feature("imported_audio").rows(2)[0], x[2].astype(np.float32))
    assert rep.n_items == 3


# --- TFRecord and protobuf ------------------------------------------------------------------------


def test_crc32c_matches_the_reference_on_both_paths():
    assert tfr.crc32c(b"123456789") == 0xE3069283
    assert tfr.crc32c(b"") == 0
    data = np.random.default_rng(1).integers(0, 256, 70001, dtype=np.uint8).tobytes()
    want = tfr._crc_loop(data, 0xFFFFFFFF) ^ 0xFFFFFFFF
    assert tfr.crc32c(data) == want  # vectorised path
    assert tfr.crc32c(data[5000:], tfr.crc32c(data[:5000])) == want
    for n in (2047, 2048, 2049, 4100):
        assert tfr.crc32c(data[:n]) == tfr._crc_loop(data[:n], 0xFFFFFFFF) ^ 0xFFFFFFFF


def test_protobuf_round_trip_and_unpacked_fields():
    msg = tfr.encode_example({"b": tfr.bytes_feature([b"x", b""]), "f": tfr.float_feature([1.5, -2.25]),
                              "i": tfr.int64_feature([-1, 0, 2**40]), "e": tfr.float_feature([])})
    feats, lists = tfr.parse_example(msg)
    assert lists is None
    assert feats["b"].value == [b"x", b""]
    assert feats["f"].value.tolist() == [1.5, -2.25]
    assert feats["i"].value.tolist() == [-1, 0, 2**40]
    assert feats["e"].kind == "float" and len(feats["e"]) == 0
    # unpacked repeated float (wire type 5) and int64 (wire type 0) are valid encodings too
    flist = b"\x0d" + struct.pack("<f", 0.5) + b"\x0d" + struct.pack("<f", 2.0)
    ilist = b"\x08\x07\x08\x09"
    feature_f, feature_i = tfr._ld(2, flist), tfr._ld(3, ilist)
    feats, _ = tfr.parse_example(tfr.encode_example({"f": feature_f, "i": feature_i}))
    assert feats["f"].value.tolist() == [0.5, 2.0] and feats["i"].value.tolist() == [7, 9]
    seq = tfr.encode_sequence_example({"id": tfr.bytes_feature("v")}, {"rgb": [tfr.bytes_feature(b"\x01\x02")]})
    ctx, lists = tfr.parse_example(seq)
    assert ctx["id"].value == [b"v"] and lists["rgb"][0].value == [b"\x01\x02"]
    with pytest.raises(tfr.ProtoError, match="claims"):
        tfr.parse_example(msg[:-3])


def test_dequantize_is_youtube8m_formula():
    q = np.arange(256, dtype=np.uint8)
    got = yt8m.dequantize(q)
    assert got.dtype == np.float32
    assert np.array_equal(got, q.astype(np.float32) * np.float32(4 / 255) + np.float32(4 / 512 - 2))
    assert np.allclose(got, q.astype(np.float64) * 4 / 255 + 4 / 512 - 2, atol=1e-6)
    assert np.array_equal(yt8m.quantize(got), q)


@pytest.fixture
def frame_shards(tmp_path, rng):
    """Two frame-level shards (the second gzip-compressed) and the uint8 codes written."""
    d = tmp_path / "yt"
    d.mkdir()
    truth = {}
    recs = []
    for k, n in enumerate([3, 0, 2]):
        rgb = rng.integers(0, 256, (n, 1024), dtype=np.uint8)
        aud = rng.integers(0, 256, (n, 128), dtype=np.uint8)
        truth[f"vid{k}"] = (rgb, aud, [k, 100 + k])
        recs.append(yt8m.frame_level_example(f"vid{k}", [k, 100 + k], rgb, aud))
    tfr.write_tfrecord(d / "train0000.tfrecord", recs[:2])
    tfr.write_tfrecord(d / "train0001.tfrecord", recs[2:], compress=True)
    return d, truth


def test_yt8m_frame_level(tmp_path, frame_shards):
    d, truth = frame_shards
    out = tmp_path / "yt.h5"
    res = run("import", d / "train*.tfrecord", "-o", out)
    assert res.exit_code == 0, res.stderr
    assert "3 video(s) from 2 YouTube-8M shard(s)" in res.stderr
    assert "2 audio-visual pair(s), 0 audio only, 0 video only, 1 without features" in res.stderr
    with open_collection(out) as col:
        assert col.ids == ["vid0", "vid1", "vid2"]
        rgb, aud = col.feature("yt8m_rgb"), col.feature("yt8m_audio")
        assert rgb.modality == "video" and aud.modality == "audio"
        assert rgb.attrs["level"] == "frame" and rgb.rate_summary() == 1.0
        assert rgb.attrs["config"]["dequantize"]["min"] == -2.0
        for i, vid in enumerate(col.ids):
            q_rgb, q_aud, labels = truth[vid]
            want = q_rgb.astype(np.float32) * np.float32(4 / 255) + np.float32(4 / 512 - 2)
            assert np.array_equal(rgb.rows(i), want.reshape(-1, 1024))
            assert np.array_equal(aud.rows(i), yt8m.dequantize(q_aud).reshape(-1, 128))
            assert rgb.companion("labels", i).tolist() == labels
            assert aud.companion("labels", i).tolist() == labels
        assert col.item(0).duration == 3.0 and col.item(0).source == f"{d / 'train0000.tfrecord'}#0"
        assert col.item(2).source == f"{d / 'train0001.tfrecord'}#0"
        assert not col.item(1).has_video and math.isnan(col.item(1).duration)
        assert col.config["imported"]["format"] == "yt8m" and col.config["imported"]["records"] == 3


def test_yt8m_video_level(tmp_path, rng):
    mean_rgb, mean_audio = rng.normal(size=(2, 1024)).astype(np.float32), rng.normal(size=(2, 128)).astype(np.float32)
    recs = [yt8m.video_level_example("a", [5], mean_rgb[0], mean_audio[0]),
            yt8m.video_level_example("b", [], mean_rgb[1], None)]
    tfr.write_tfrecord(tmp_path / "v.tfrecord", recs)
    rep = import_yt8m(tmp_path / "o.h5", [tmp_path / "v.tfrecord"])
    assert (rep.n_pairs, rep.n_video_only) == (1, 1)
    with open_collection(tmp_path / "o.h5") as col:
        rgb = col.feature("yt8m_rgb")
        assert rgb.attrs["level"] == "clip" and np.all(np.isnan(rgb.rates))
        assert np.array_equal(rgb.rows(1), mean_rgb[1:2])
        assert np.array_equal(col.feature("yt8m_audio").rows(0), mean_audio[:1])
        assert rgb.companion("labels", 0).tolist() == [5] and rgb.companion("labels", 1).tolist() == []
        assert col.item(1).sha256 == hashlib.sha256(mean_rgb[1].tobytes()).hexdigest()
    assert [r.id for _, r in yt8m.read_yt8m(tmp_path / "v.tfrecord")] == ["a", "b"]


# --- errors ---------------------------------------------------------------------------------------


def _npy(p, x):
    np.save(p, x)
    return p


def case_ids_vs_rows(t):
    a = _npy(t / "a.npy", np.ones((4, 2)))
    (t / "ids.txt").write_text("x\ny\nz\n")
    return ["--audio", a, "--ids", t / "ids.txt"], lambda out: import_arrays(
        out, audio=ArraySource(a), ids=t / "ids.txt")


def case_offsets_vs_data(t):
    a, o = _npy(t / "a.npy", np.ones((10, 2))), _npy(t / "o.npy", np.array([0, 4, 9]))
    return ["--audio", a, "--audio-offsets", o, "--rate", 1], lambda out: import_arrays(
        out, audio=ArraySource(a, offsets=o), rate=1)


def case_counts_without_ids(t):
    a, v = _npy(t / "a.npy", np.ones((3, 2))), _npy(t / "v.npy", np.ones((4, 2)))
    return ["--audio", a, "--video", v], lambda out: import_arrays(out, audio=ArraySource(a), video=ArraySource(v))


def case_nan_row(t):
    x = np.ones((4, 2))
    x[2, 1] = np.nan
    a = _npy(t / "a.npy", x)
    return ["--audio", a], lambda out: import_arrays(out, audio=ArraySource(a))


def case_inf_frame(t):
    x = np.ones((5, 2))
    x[3, 0] = np.inf
    a, o = _npy(t / "a.npy", x), _npy(t / "o.npy", np.array([0, 2, 5]))
    return ["--audio", a, "--audio-offsets", o, "--rate", 1], lambda out: import_arrays(
        out, audio=ArraySource(a, offsets=o), rate=1)


def case_no_modality(t):
    return [], lambda out: import_arrays(out)


def case_unknown_npz_key(t):
    np.savez(t / "a.npz", feats=np.ones((2, 2)))
    return ["--audio", f"{t / 'a.npz'}:nope"], lambda out: import_arrays(out, audio=ArraySource(f"{t / 'a.npz'}:nope"))


def case_unknown_hdf5_key(t):
    with h5py.File(t / "a.h5", "w") as f:
        f["feats"] = np.ones((2, 2))
    spec = f"{t / 'a.h5'}:/group/nope"
    return ["--audio", spec], lambda out: import_arrays(out, audio=ArraySource(spec))


def case_ragged_csv(t):
    (t / "a.csv").write_text("1,2,3\n4,5,6\n7,8\n")
    return ["--audio", t / "a.csv"], lambda out: import_arrays(out, audio=ArraySource(t / "a.csv"))


def case_non_numeric_csv(t):
    (t / "a.csv").write_text("x,y\n1,2\n3,oops\n")
    return ["--video", t / "a.csv"], lambda out: import_arrays(out, video=ArraySource(t / "a.csv"))


def _shard(t, n=2):
    recs = [yt8m.video_level_example(f"v{i}", [i], np.full(1024, i, np.float32), np.zeros(128, np.float32))
            for i in range(n)]
    return tfr.write_tfrecord(t / "s.tfrecord", recs)


def case_bad_crc(t):
    p = _shard(t)
    b = bytearray(p.read_bytes())
    b[40] ^= 0xFF  # inside the first record's data
    p.write_bytes(bytes(b))
    return [p], lambda out: import_yt8m(out, [p])


def case_truncated(t):
    p = _shard(t)
    p.write_bytes(p.read_bytes()[:-10])
    return [p], lambda out: import_yt8m(out, [p])


def case_not_yt8m(t):
    p = tfr.write_tfrecord(t / "s.tfrecord", [tfr.encode_example({"x": tfr.int64_feature([1])})])
    return [p], lambda out: import_yt8m(out, [p])


def case_missing_rate(t):
    a, o = _npy(t / "a.npy", np.ones((4, 2))), _npy(t / "o.npy", np.array([0, 1, 4]))
    return ["--audio", a, "--audio-offsets", o], lambda out: import_arrays(out, audio=ArraySource(a, offsets=o))


def case_rate_for_clips(t):
    a = _npy(t / "a.npy", np.ones((4, 2)))
    return ["--audio", a, "--rate", 1], lambda out: import_arrays(out, audio=ArraySource(a), rate=1)


def case_duplicate_ids(t):
    a = _npy(t / "a.npy", np.ones((3, 2)))
    (t / "ids.txt").write_text("x\ny\nx\n")
    return ["--audio", a, "--audio-ids", t / "ids.txt"], lambda out: import_arrays(
        out, audio=ArraySource(a, ids=t / "ids.txt"))


def case_wrong_shape(t):
    a = _npy(t / "a.npy", np.ones(5))
    return ["--audio", a], lambda out: import_arrays(out, audio=ArraySource(a))


def case_no_such_file(t):
    return ["--video", t / "missing.npy"], lambda out: import_arrays(out, video=ArraySource(t / "missing.npy"))


def case_glob_matches_nothing(t):
    return [str(t / "none*.tfrecord")], lambda out: import_yt8m(out, [str(t / "none*.tfrecord")])


def case_csv_ids_not_consecutive(t):
    (t / "a.csv").write_text("id,a\nx,1\ny,2\nx,3\n")
    return ["--audio", t / "a.csv", "--rate", 1], lambda out: import_arrays(out, audio=ArraySource(t / "a.csv"), rate=1)


def case_ids_file_for_per_item_arrays(t):
    np.savez(t / "v.npz", a=np.ones((2, 2)), b=np.ones((3, 2)))
    (t / "ids.txt").write_text("x\ny\n")
    return ["--video", t / "v.npz", "--video-ids", t / "ids.txt", "--rate", 1], lambda out: import_arrays(
        out, video=ArraySource(t / "v.npz", ids=t / "ids.txt"), rate=1)


def case_object_npy(t):
    np.save(t / "a.npy", np.array([[1, None]], dtype=object), allow_pickle=True)
    return ["--audio", t / "a.npy"], lambda out: import_arrays(out, audio=ArraySource(t / "a.npy"))


ERRORS = {
    # name: (case, exception, exit code, message pattern)
    "ids_vs_rows": (case_ids_vs_rows, ParameterError, 1, r"ids\.txt has 3 ids for 4 items"),
    "offsets_vs_data": (case_offsets_vs_data, ParameterError, 1, r"a\.npy: offsets \(.*o\.npy\) end at 9, but the data has 10 rows"),
    "counts_without_ids": (case_counts_without_ids, ParameterError, 1, r"has 3 audio items and .*v\.npy has 4 video items.*counts must match"),
    "nan_row": (case_nan_row, ParameterError, 1, r"a\.npy: row 2 holds NaN or infinite values"),
    "inf_frame": (case_inf_frame, ParameterError, 1, r"a\.npy: row 3 \(item 1, frame 1\) holds NaN or infinite"),
    "no_modality": (case_no_modality, ParameterError, 1, r"nothing to import"),
    "unknown_npz_key": (case_unknown_npz_key, ParameterError, 1, r"a\.npz: no array 'nope' \(have: feats\)"),
    "unknown_hdf5_key": (case_unknown_hdf5_key, ParameterError, 1, r"a\.h5: no dataset or group '/group/nope'.*feats"),
    "ragged_csv": (case_ragged_csv, FormatError, 3, r"a\.csv: CSV line 3 has 2 fields, expected 3"),
    "non_numeric_csv": (case_non_numeric_csv, FormatError, 3, r"a\.csv: CSV line 3, column 2 \('y'\): 'oops' is not a number"),
    "bad_crc": (case_bad_crc, FormatError, 3, r"s\.tfrecord: record 0 at byte 0: CRC of the data does not match"),
    "truncated": (case_truncated, FormatError, 3, r"s\.tfrecord: truncated TFRecord: record 1"),
    "not_yt8m": (case_not_yt8m, FormatError, 3, r"s\.tfrecord: record 0: no 'id' bytes feature"),
    "missing_rate": (case_missing_rate, ParameterError, 1, r"a\.npy: holds frame-level audio features .*need a frame rate: give --rate"),
    "rate_for_clips": (case_rate_for_clips, ParameterError, 1, r"--rate was given, but every input is clip-level"),
    "duplicate_ids": (case_duplicate_ids, ParameterError, 1, r"id 'x' appears twice"),
    "wrong_shape": (case_wrong_shape, ParameterError, 1, r"a\.npy: has shape \(5,\); expected \(items, dim\)"),
    "no_such_file": (case_no_such_file, VmtoolError, 1, r"missing\.npy: no such file"),
    "glob_matches_nothing": (case_glob_matches_nothing, ParameterError, 1, r"no file matches the pattern"),
    "csv_ids_not_consecutive": (case_csv_ids_not_consecutive, FormatError, 3, r"a\.csv: id 'x' appears on CSV lines 2 and 4"),
    "ids_file_for_per_item_arrays": (case_ids_file_for_per_item_arrays, ParameterError, 1, r"v\.npz: the NPZ file holds one array per item, whose ids are the array names"),
    "object_npy": (case_object_npy, FormatError, 3, r"a\.npy: holds Python objects"),
}


@pytest.fixture
def existing_output(tmp_path):
    out = tmp_path / "out.h5"
    out.write_bytes(b"precious previous content")
    return out


def assert_untouched(out):
    assert out.read_bytes() == b"precious previous content"
    assert not [p for p in os.listdir(out.parent) if p.startswith(".vmtool-tmp")]


@pytest.mark.parametrize("name", list(ERRORS))
def test_errors_library_and_cli(name, tmp_path, existing_output):
    case, exc, code, pattern = ERRORS[name]
    args, call = case(tmp_path)
    with pytest.raises(exc, match=pattern):
        call(existing_output)
    assert_untouched(existing_output)
    res = run("import", *args, "-o", existing_output)
    assert res.exit_code == code, (res.exit_code, res.stderr)
    line = one_error_line(res)
    assert re.search(pattern, line), line
    assert_untouched(existing_output)


def test_cli_usage_errors(tmp_path, existing_output):
    p = _shard(tmp_path)
    a = _npy(tmp_path / "a.npy", np.ones((2, 2)))
    res = run("import", p, "--audio", a, "-o", existing_output)
    assert res.exit_code == 1 and "--audio apply to feature arrays, not to YouTube-8M shards" in one_error_line(res)
    res = run("import", a, "-o", existing_output)
    assert res.exit_code == 1 and "give feature arrays with --audio or --video" in one_error_line(res)
    res = run("import", "--video", a, "--audio-rate", 2, "-o", existing_output)
    assert res.exit_code == 1 and "--audio-rate is given without --audio" in one_error_line(res)
    res = run("import", "--video", a)
    assert res.exit_code == 2 and "output" in res.stderr
    res = run("import", "--audio", p, "-o", existing_output)
    assert res.exit_code == 1 and "is a TFRecord file" in one_error_line(res)
    assert_untouched(existing_output)


def test_yt8m_duplicate_ids_and_mixed_levels(tmp_path):
    frame = yt8m.frame_level_example("v0", [], np.zeros((1, 1024), np.uint8), None)
    video = yt8m.video_level_example("v0", [], np.zeros(1024, np.float32), None)
    tfr.write_tfrecord(tmp_path / "a.tfrecord", [video])
    tfr.write_tfrecord(tmp_path / "b.tfrecord", [frame])
    with pytest.raises(FormatError, match=r"b\.tfrecord: record 0 is a frame-level record, but .*a\.tfrecord#0 is video-level"):
        import_yt8m(tmp_path / "o.h5", [tmp_path / "a.tfrecord", tmp_path / "b.tfrecord"])
    tfr.write_tfrecord(tmp_path / "c.tfrecord", [video])
    with pytest.raises(ParameterError, match=r"c\.tfrecord: record 0: id 'v0' appears twice \(also .*a\.tfrecord#0\)"):
        import_yt8m(tmp_path / "o.h5", [tmp_path / "a.tfrecord", tmp_path / "c.tfrecord"])
    assert not (tmp_path / "o.h5").exists()


def test_damaged_gzip_shard(tmp_path):
    p = _shard(tmp_path)
    gz = tmp_path / "g.tfrecord"
    gz.write_bytes(gzip.compress(p.read_bytes())[:-12])
    with pytest.raises(FormatError, match=r"g\.tfrecord: (damaged compressed TFRecord|truncated TFRecord)"):
        import_yt8m(tmp_path / "o.h5", [gz])


def test_npz_several_arrays_and_ids_is_ambiguous(tmp_path):
    np.savez(tmp_path / "x.npz", audio=np.ones((2, 2)), video=np.ones((2, 3)), ids=np.array(["a", "b"]))
    with pytest.raises(ParameterError, match=r"several arrays \(audio, video\) and ids; name the array to read"):
        import_arrays(tmp_path / "o.h5", audio=ArraySource(tmp_path / "x.npz"))
    np.savez(tmp_path / "y.npz", a=np.ones((2, 2)), b=np.ones((2, 3)))
    with pytest.raises(ParameterError, match=r"array 'b' has width 3, array 'a' has 2"):
        import_arrays(tmp_path / "o.h5", audio=ArraySource(tmp_path / "y.npz"))
