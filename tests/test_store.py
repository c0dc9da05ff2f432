"""The HDF5 collection store: layout, ragged reads, versions, atomic writes."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from vmtool.atomic import atomic_output
from vmtool.errors import FormatError, ParameterError, VmtoolError
from vmtool.store import (
    SCHEMA_VERSION,
    Collection,
    CollectionWriter,
    Item,
    RaggedArray,
    open_collection,
    read_kind,
    unique_ids,
)

DATA = Path(__file__).parent / "data"


def _item(i: int, *, video: bool = True) -> Item:
    return Item(f"item{i}", f"/media/item{i}.mp4", f"{i:064x}", 2.0 + i, True, video, 25.0 if video else math.nan, 44100)


def _write(path: Path, n: int, dim: int = 4, config=None) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(0)
    rows = {}
    with CollectionWriter(path, config=config or {"rate": 1.0}, command="test", flush_items=7) as w:
        w.declare("features", "f", dim=dim, attrs={"modality": "audio", "extractor": "f", "columns": [f"c{k}" for k in range(dim)]})
        w.declare("curves", "lik", dim=None, attrs={"modality": "video"})
        for i in range(n):
            r = rng.standard_normal((1 + i % 5, dim)).astype(np.float32)
            rows[i] = r
            arrays = {("features", "f"): RaggedArray(r, 1.0)}
            if i % 2 == 0:
                arrays[("curves", "lik")] = RaggedArray(np.full(3 + i, i, np.float32), 25.0)
            w.add(_item(i), arrays)
    return rows


def test_roundtrip_items_and_ragged_rows(tmp_path):
    path = tmp_path / "c.h5"
    rows = _write(path, 23)
    with open_collection(path) as col:
        assert len(col) == 23
        assert col.ids[:3] == ["item0", "item1", "item2"]
        it = col.item(5)
        assert it.sha256 == f"{5:064x}" and it.duration == 7.0 and it.modalities == "audio+video"
        f = col.feature("f")
        assert f.dim == 4 and f.rate_summary() == 1.0 and f.attrs["columns"][0] == "c0"
        for i in (0, 6, 22):
            np.testing.assert_array_equal(f.rows(i), rows[i])
        lik = col.curve("lik")
        assert lik.rows(1).shape == (0,)  # items without a curve have no rows
        np.testing.assert_array_equal(lik.rows(4), np.full(7, 4, np.float32))
        assert lik.rate(4) == 25.0 and math.isnan(lik.rate(1))
        assert col.index("item7") == 7
        with pytest.raises(ParameterError, match="no item 'nope'"):
            col.index("nope")
        col.validate()


def test_layout_is_columnar_and_chunked(tmp_path):
    """Many items add no groups, and one item's rows are read without the whole dataset."""
    path = tmp_path / "many.h5"
    _write(path, 500, dim=64)
    with h5py.File(path) as f:
        names = []
        f.visit(names.append)
        # items/8 columns + features/f/{data,offsets,rate} + curves/lik/{...} + 5 groups
        assert len(names) == 19
        data = f["features/f/data"]
        assert data.chunks is not None and data.compression == "gzip"
        assert data.chunks[0] < data.shape[0]  # an item's rows touch a few chunks, not all
    with open_collection(path) as col:
        assert col.feature("f").rows(499).shape[1] == 64


def test_root_attributes(tmp_path):
    path = tmp_path / "c.h5"
    _write(path, 2, config={"rate": 1.0, "audio": {"x": {"name": "x"}}})
    with open_collection(path) as col:
        a = col.attrs
    assert a["vmtool_kind"] == "collection" and a["vmtool_schema"] == SCHEMA_VERSION
    assert a["vmtool_version"] and a["created"].endswith("Z") and a["command"] == "test"
    assert a["config"]["audio"]["x"]["name"] == "x"
    assert a["history"][0]["command"] == "test"


def test_append_keeps_items_and_checks_config(tmp_path):
    path = tmp_path / "c.h5"
    _write(path, 3)
    with CollectionWriter(path, config={"rate": 1.0}, command="again") as w:
        w.declare("features", "f", dim=4)
        w.add(_item(10), {("features", "f"): RaggedArray(np.ones((2, 4), np.float32), 1.0)})
    with open_collection(path) as col:
        assert col.ids == ["item0", "item1", "item2", "item10"]
        assert col.feature("f").rows(3).shape == (2, 4)
        assert col.curve("lik").rows(3).shape == (0,)
        assert [h["command"] for h in col.attrs["history"]] == ["test", "again"]
    with pytest.raises(ParameterError, match="different extraction configuration"):
        CollectionWriter(path, config={"rate": 2.0})


def test_writer_rejects_bad_rows_and_duplicate_ids(tmp_path):
    with CollectionWriter(tmp_path / "c.h5", config={}) as w:
        w.declare("features", "f", dim=3)
        with pytest.raises(ParameterError, match=r"expected \(n, 3\)"):
            w.add(_item(0), {("features", "f"): RaggedArray(np.ones((2, 4)), 1.0)})
        with pytest.raises(ParameterError, match="was not declared"):
            w.add(_item(0), {("features", "g"): RaggedArray(np.ones((2, 3)), 1.0)})
        w.add(_item(0), {})
        with pytest.raises(ParameterError, match="already in the collection"):
            w.add(_item(0), {})


def test_frozen_1_0_still_reads():
    """The committed example of schema 1.0 must keep reading with every vmtool."""
    with open_collection(DATA / "collection-1.0.h5") as col:
        assert col.schema_version == "1.0"
        assert col.ids == ["first", "sécond clip"]
        first, second = col.items()
        assert first.source == "media/first.wav" and first.has_audio and not first.has_video
        assert math.isnan(first.fps) and first.sample_rate == 22050 and first.duration == 2.5
        assert second.sha256 == "f" * 64 and second.fps == 25.0
        toy = col.feature("toy")
        np.testing.assert_array_equal(toy.rows(0), np.arange(9, dtype=np.float32).reshape(3, 3))
        np.testing.assert_array_equal(toy.rows(1), np.full((1, 3), -1, np.float32))
        assert toy.attrs["columns"] == ["a", "b", "c"]
        lik = col.curve("likelihood")
        assert lik.rows(0).size == 0 and lik.rows(1).size == 25 and lik.rate(1) == 25.0
        assert col.config["audio"]["toy"]["version"] == "1"


def _copy_frozen(tmp_path) -> Path:
    p = tmp_path / "x.h5"
    shutil.copyfile(DATA / "collection-1.0.h5", p)
    return p


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda f: f.attrs.__setitem__("vmtool_schema", "2.0"), "schema version 2.0 .*'vmtool_schema'"),
        (lambda f: f.attrs.__setitem__("vmtool_kind", "model"), "is a vmtool 'model' file, expected a 'collection'"),
        (lambda f: f.attrs.__delitem__("vmtool_kind"), "not a vmtool file: root attribute 'vmtool_kind'"),
        (lambda f: f.__delitem__("items/sha256"), "dataset 'items/sha256' is missing"),
        (lambda f: f["features/toy/offsets"].resize((2,)), "'features/toy/offsets' has 2 entries for 2 items"),
    ],
)
def test_readers_refuse_bad_files_naming_file_and_key(tmp_path, edit, match):
    p = _copy_frozen(tmp_path)
    with h5py.File(p, "r+") as f:
        edit(f)
    with pytest.raises(FormatError, match=match) as info:
        with open_collection(p) as col:
            col.validate()
    assert str(p) in str(info.value)
    assert info.value.exit_code == 3


def test_not_hdf5_and_missing(tmp_path):
    txt = tmp_path / "notes.h5"
    txt.write_text("hello")
    with pytest.raises(FormatError, match="not an HDF5 file"):
        read_kind(txt)
    with pytest.raises(VmtoolError, match="no such file"):
        read_kind(tmp_path / "absent.h5")


def test_atomic_output_leaves_target_untouched_on_failure(tmp_path):
    target = tmp_path / "out.h5"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"previous"
    assert sorted(os.listdir(tmp_path)) == ["out.h5"]
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target, seed=target) as tmp:
            assert tmp.read_bytes() == b"previous"
            raise KeyboardInterrupt
    assert sorted(os.listdir(tmp_path)) == ["out.h5"]
    with atomic_output(target) as tmp:
        assert tmp.suffix == ".part"  # never picked up by a glob on the target's extension
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"


def test_atomic_output_missing_directory(tmp_path):
    with pytest.raises(VmtoolError, match="output directory .* does not exist"):
        with atomic_output(tmp_path / "missing" / "out.h5"):
            pass


def test_unique_ids():
    assert unique_ids(["a", "a", "b"], ["1" * 64, "2" * 64, "3" * 64], taken=["b"]) == ["a", "a-22222222", "b-33333333"]


def test_info_json_lists_every_group(tmp_path):
    from vmtool.info import describe

    p = tmp_path / "c.h5"
    _write(p, 4)
    d = describe(p, items=True)
    assert d["kind"] == "collection" and d["n_items"] == 4
    assert d["modalities"] == {"audio+video": 4}
    (feat,) = d["features"]
    assert feat == {"name": "f", "element": "frames", "modality": "audio", "dim": 4, "rate": 1.0,
                    "rows": feat["rows"], "items_with_data": 4, "extractor": "f", "version": None}
    assert d["curves"][0]["items_with_data"] == 2 and d["curves"][0]["rate"] == 25.0
    assert d["segmentations"] == [] and len(d["items"]) == 4
    json.dumps(d)  # JSON-ready


def test_write_element_for_stored_items(tmp_path):
    path = tmp_path / "c.h5"
    _write(path, 3)
    with CollectionWriter(path, config={"rate": 1.0}) as w:
        w.write_element("segmentations", "foote", [np.array([1.0, 2.5]), None, np.array([0.5])],
                        dtype=np.float64, attrs={"method": "foote"})
        with pytest.raises(ParameterError, match="already exists"):
            w.write_element("segmentations", "foote", [None] * 3)
        w.write_element("segmentations", "foote", [np.array([1.0]), np.array([2.0]), None], dtype=np.float64,
                        replace=True)
        with pytest.raises(ParameterError, match="2 row sets for 3 items"):
            w.write_element("events", "beats", [None] * 2)
    with open_collection(path) as col:
        seg = col.ragged("segmentations", "foote")
        assert [seg.rows(i).tolist() for i in range(3)] == [[1.0], [2.0], []]
        assert seg.rows(0).dtype == np.float64


def test_write_element_present_flags_and_companions(tmp_path):
    path = tmp_path / "c.h5"
    _write(path, 3)
    with CollectionWriter(path, config={"rate": 1.0}) as w:
        w.write_element("segmentations", "olda", [np.array([4.0]), np.zeros(0), None], dtype=np.float64,
                        present=[True, True, False],
                        companions={"labels": [np.array([0, 1]), np.array([0]), None]})
    with open_collection(path) as col:
        seg = col.ragged("segmentations", "olda")
        assert [seg.present(i) for i in range(3)] == [True, True, False]
        assert seg.companion("labels", 0).tolist() == [0, 1] and seg.companion("labels", 2).tolist() == []
        assert seg.companion("nothing", 0) is None
        assert col.feature("f").present(0)
