"""Tests of vmtool.segmentation.reference: reading references, finding them, hit rates."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vmtool.errors import FormatError, ParameterError, VmtoolError
from vmtool.segmentation.reference import (
    HIT_RATE_KEYS,
    find_reference,
    hit_rates,
    mean_hit_rates,
    read_reference,
)

jams = pytest.importorskip("jams")

# jams validates with a jsonschema call that jsonschema deprecates (when the tests write files)
pytestmark = pytest.mark.filterwarnings("ignore:Passing a schema to Validator.iter_errors:DeprecationWarning")

SALAMI = (
    "0.0\tSilence\n"
    "0.464399092\tA, a, Intro\n"
    "12.5\tB, b, Verse\n"
    "\n"
    "40.25\tA, a', Chorus\n"
    "61.0\tSilence\n"
    "62.3\tEnd\n"
)

HARMONIX = "0.0 intro\n8.24 verse\n24.71 chorus\n41.18 verse\n57.65 outro\n66.1 end\n"


def _write(tmp_path, name: str, text: str):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _jams_file(tmp_path, name: str, annotations) -> str:
    jam = jams.JAMS()
    jam.file_metadata.duration = 30.0
    for namespace, rows in annotations:
        ann = jams.Annotation(namespace=namespace)
        for t, d, v in rows:
            ann.append(time=t, duration=d, value=v)
        jam.annotations.append(ann)
    path = tmp_path / name
    jam.save(str(path))
    return path


# -- text files -------------------------------------------------------------------------


def test_salami_text(tmp_path):
    b, labels = read_reference(_write(tmp_path, "textfile1_uppercase.txt", SALAMI))
    assert b.dtype == np.float64
    np.testing.assert_allclose(b, [0.0, 0.464399092, 12.5, 40.25, 61.0, 62.3])
    assert labels == ["Silence", "A, a, Intro", "B, b, Verse", "A, a', Chorus", "Silence", "End"]


def test_harmonix_text_with_spaces_or_tabs(tmp_path):
    b, labels = read_reference(_write(tmp_path, "0001_song.txt", HARMONIX))
    np.testing.assert_allclose(b, [0.0, 8.24, 24.71, 41.18, 57.65, 66.1])
    assert labels == ["intro", "verse", "chorus", "verse", "outro", "end"]
    b2, labels2 = read_reference(_write(tmp_path, "tabs.txt", HARMONIX.replace(" ", "\t")))
    np.testing.assert_array_equal(b, b2)
    assert labels2 == labels


def test_text_without_labels_comments_and_bom(tmp_path):
    text = "\ufeff# a comment\n0\n  10.5  \n20 end\r\n"
    b, labels = read_reference(_write(tmp_path, "plain.txt", text))
    np.testing.assert_allclose(b, [0.0, 10.5, 20.0])
    assert labels == ["", "", "end"]


def test_lab_intervals(tmp_path):
    text = "0.000\t0.975\tsilence\n0.975\t12.2\tintro\n12.2\t30.5\tverse one\n"
    b, labels = read_reference(_write(tmp_path, "song.lab", text))
    np.testing.assert_allclose(b, [0.0, 0.975, 12.2, 30.5])
    assert labels == ["silence", "intro", "verse one", ""]


def test_text_errors_name_file_and_line(tmp_path):
    p = _write(tmp_path, "bad.txt", "0.0 intro\n10.0 verse\nabc chorus\n")
    with pytest.raises(FormatError, match=r"bad\.txt: line 3: cannot read a time in seconds from 'abc'$"):
        read_reference(p)
    p = _write(tmp_path, "back.txt", "0.0 a\n10.0 b\n\n5.0 c\n")
    with pytest.raises(FormatError, match=r"back\.txt: line 4: time 5 s comes before the previous line's 10 s"):
        read_reference(p)
    p = _write(tmp_path, "neg.txt", "-1.0 a\n")
    with pytest.raises(FormatError, match=r"line 1: time '-1.0' is not a non-negative finite number"):
        read_reference(p)
    p = _write(tmp_path, "empty.txt", "\n# nothing\n")
    with pytest.raises(FormatError, match="no segment lines"):
        read_reference(p)
    p = tmp_path / "binary.txt"
    p.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(FormatError, match="not a UTF-8 text file"):
        read_reference(p)
    p = _write(tmp_path, "inverted.lab", "0 5 a\n5 3 b\n")
    with pytest.raises(FormatError, match=r"line 2: segment ends \(3 s\) before it starts \(5 s\)"):
        read_reference(p)


def test_missing_file(tmp_path):
    with pytest.raises(VmtoolError, match="absent.txt: no such file"):
        read_reference(tmp_path / "absent.txt")
    with pytest.raises(VmtoolError, match="is a directory"):
        read_reference(tmp_path)


# -- JAMS -------------------------------------------------------------------------------


def test_jams_segment_open(tmp_path):
    p = _jams_file(tmp_path, "a.jams", [
        ("beat", [(0.5, 0.0, 1), (1.0, 0.0, 2)]),  # not a segment annotation: skipped
        ("segment_open", [(0.0, 10.0, "intro"), (10.0, 12.3, "verse"), (22.3, 7.7, "outro")]),
        ("segment_open", [(0.0, 30.0, "second annotation")]),  # only the first is used
    ])
    b, labels = read_reference(p)
    np.testing.assert_allclose(b, [0.0, 10.0, 22.3, 30.0])
    assert labels == ["intro", "verse", "outro", ""]


def test_jams_salami_and_gaps(tmp_path):
    p = _jams_file(tmp_path, "s.jams", [
        ("segment_salami_function", [(1.0, 9.0, "intro"), (12.0, 8.0, "verse")]),
    ])
    b, labels = read_reference(p)
    np.testing.assert_allclose(b, [1.0, 10.0, 12.0, 20.0])
    assert labels == ["intro", "", "verse", ""]


def test_jams_multi_segment_uses_the_coarsest_level(tmp_path):
    p = _jams_file(tmp_path, "m.jams", [
        ("multi_segment", [
            (0.0, 15.0, {"label": "A", "level": 0}),
            (15.0, 15.0, {"label": "B", "level": 0}),
            (0.0, 5.0, {"label": "a", "level": 1}),
            (5.0, 10.0, {"label": "b", "level": 1}),
        ]),
    ])
    b, labels = read_reference(p)
    np.testing.assert_allclose(b, [0.0, 15.0, 30.0])
    assert labels == ["A", "B", ""]


def test_jams_errors(tmp_path):
    p = _jams_file(tmp_path, "beats.jams", [("beat", [(0.5, 0.0, 1)])])
    with pytest.raises(FormatError, match=r"beats\.jams: no segment annotation .*namespaces found: \['beat'\]"):
        read_reference(p)
    p = _write(tmp_path, "broken.jams", '{"annotations": [')
    with pytest.raises(FormatError, match=r"broken\.jams: not a JAMS file jams can read"):
        read_reference(p)
    p = _write(tmp_path, "list.jams", json.dumps([1, 2, 3]))
    with pytest.raises(FormatError, match=r"list\.jams: not a JAMS file jams can read"):
        read_reference(p)


# -- find_reference ---------------------------------------------------------------------


def test_find_reference(tmp_path):
    assert find_reference(tmp_path, "song") is None
    (tmp_path / "song" / "parsed").mkdir(parents=True)
    salami2 = _write(tmp_path / "song" / "parsed", "textfile2_uppercase.txt", SALAMI)
    assert find_reference(tmp_path, "song") == salami2
    salami1 = _write(tmp_path / "song" / "parsed", "textfile1_uppercase.txt", SALAMI)
    assert find_reference(tmp_path, "song") == salami1
    lab = _write(tmp_path, "song.lab", "0 1 a\n")
    assert find_reference(tmp_path, "song") == lab
    txt = _write(tmp_path, "song.txt", HARMONIX)
    assert find_reference(tmp_path, "song") == txt
    jam = _write(tmp_path, "song.jams", "{}")
    assert find_reference(str(tmp_path), "song") == jam
    assert find_reference(tmp_path, "other") is None
    with pytest.raises(VmtoolError, match="no such directory"):
        find_reference(tmp_path / "absent", "song")


# -- hit rates --------------------------------------------------------------------------


def test_hit_rates_toy_example():
    # edges 0 and 40 count in both (trim=False):
    #   estimated 0, 10.2, 21.5, 30, 40      reference 0, 10, 20, 40
    # 0.5 s: hits 0, 10.2~10, 40 -> 3;  3 s: also 21.5~20 -> 4
    r = hit_rates([10.2, 21.5, 30.0], [10.0, 20.0], 40.0)
    assert list(r) == list(HIT_RATE_KEYS) == ["P@0.5", "R@0.5", "F@0.5", "P@3", "R@3", "F@3"]
    assert r["P@0.5"] == pytest.approx(3 / 5)
    assert r["R@0.5"] == pytest.approx(3 / 4)
    assert r["F@0.5"] == pytest.approx(2 * (3 / 5) * (3 / 4) / (3 / 5 + 3 / 4))
    assert r["P@3"] == pytest.approx(4 / 5)
    assert r["R@3"] == pytest.approx(1.0)
    assert r["F@3"] == pytest.approx(2 * 0.8 / 1.8)


def test_hit_rates_drop_edges_and_outside_times():
    # a reference read from a file includes 0 and its end; times past the duration are dropped
    a = hit_rates([10.2, 21.5, 30.0], [0.0, 10.0, 20.0, 40.0, 45.0], 40.0)
    assert a == hit_rates([10.2, 21.5, 30.0], [10.0, 20.0], 40.0)


def test_hit_rates_one_to_one_matching():
    # two estimates near one reference boundary: only one hit
    r = hit_rates([9.9, 10.1], [10.0], 20.0)
    assert r["P@0.5"] == pytest.approx(3 / 4) and r["R@0.5"] == pytest.approx(1.0)


def test_hit_rates_without_boundaries():
    r = hit_rates([], [10.0, 20.0], 40.0)
    assert r["P@0.5"] == 1.0 and r["R@0.5"] == pytest.approx(2 / 4)
    assert hit_rates([], [], 40.0)["F@3"] == 1.0


@pytest.mark.parametrize("duration", [0, -1, float("nan"), "long"])
def test_hit_rates_bad_duration(duration):
    with pytest.raises(ParameterError, match="duration must be positive"):
        hit_rates([1.0], [1.0], duration)


def test_mean_hit_rates():
    a = hit_rates([10.2, 21.5, 30.0], [10.0, 20.0], 40.0)
    b = hit_rates([10.0, 20.0], [10.0, 20.0], 40.0)
    m = mean_hit_rates([a, b])
    assert list(m) == list(HIT_RATE_KEYS)
    assert m["P@0.5"] == pytest.approx((0.6 + 1.0) / 2)
    assert m["R@3"] == pytest.approx(1.0)
    assert mean_hit_rates(iter([b])) == b
    with pytest.raises(ParameterError, match="no hit rates to average"):
        mean_hit_rates([])
    with pytest.raises(ParameterError, match=r"hit rates of item 1 have keys \['P@0.5'\], item 0 has"):
        mean_hit_rates([a, {"P@0.5": 1.0}])
