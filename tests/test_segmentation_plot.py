"""Tests of vmtool.segmentation.plot.plot_segmentation."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vmtool.errors import ParameterError, VmtoolError
from vmtool.segmentation.base import Segmentation
from vmtool.segmentation.plot import MAX_CURVE_POINTS, plot_segmentation

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path) -> tuple[int, int]:
    """(width, height) in pixels from the IHDR chunk; checks the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _seg(**kw) -> Segmentation:
    t = np.arange(0, 30, 0.05)
    base = dict(
        boundaries=np.array([8.0, 16.0, 22.0]),
        duration=30.0,
        curve=np.abs(np.sin(t)).astype(np.float32),
        curve_rate=20.0,
    )
    base.update(kw)
    return Segmentation(**base)


def _no_leftovers(directory) -> None:
    assert [p.name for p in directory.iterdir() if p.name.startswith(".vmtool-tmp-")] == []


def test_curve_boundaries_reference(tmp_path):
    out = tmp_path / "seg.png"
    plot_segmentation(out, _seg(), title="foote on music.wav", reference=[0.0, 8.2, 15.0, 30.0])
    assert out.stat().st_size > 1000
    assert _png_size(out) == (1200, 300)
    _no_leftovers(tmp_path)


def test_labels_as_spans(tmp_path):
    out = tmp_path / "labels.png"
    plot_segmentation(out, _seg(labels=np.array([0, 1, 0, 2])), title="labelled", width=6, height=2, dpi=50)
    assert _png_size(out) == (300, 100)


def test_without_curve_or_boundaries(tmp_path):
    out = tmp_path / "bare.png"
    plot_segmentation(out, Segmentation(boundaries=np.zeros(0), duration=5.0), title="")
    assert out.stat().st_size > 0 and _png_size(out)[0] > 0


def test_long_curve_is_reduced(tmp_path):
    from vmtool.segmentation.plot import _reduce

    n = 5 * MAX_CURVE_POINTS + 7
    curve = np.zeros(n)
    curve[54_321] = 1.0  # a one-sample peak survives the reduction (block maxima)
    t, v = _reduce(curve, 25.0)
    assert len(t) == len(v) <= MAX_CURVE_POINTS and v.max() == 1.0
    assert t[np.argmax(v)] == pytest.approx(54_321 / 25.0, abs=6 / 25.0)
    out = tmp_path / "long.png"
    plot_segmentation(out, _seg(curve=curve, curve_rate=25.0, duration=n / 25.0), title="long")
    assert out.stat().st_size > 0


def test_overwrites_atomically(tmp_path):
    out = tmp_path / "seg.png"
    out.write_bytes(b"old")
    plot_segmentation(out, _seg(), title="new")
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    _no_leftovers(tmp_path)


def test_errors(tmp_path):
    with pytest.raises(VmtoolError, match="does not exist"):
        plot_segmentation(tmp_path / "absent" / "x.png", _seg(), title="t")
    with pytest.raises(ParameterError, match="width, height and dpi must be positive"):
        plot_segmentation(tmp_path / "x.png", _seg(), title="t", dpi=0)
    assert not (tmp_path / "x.png").exists()


def test_pyplot_is_never_imported(tmp_path):
    # in a fresh interpreter: other tests' imports (msaf, librosa.display) may load pyplot
    code = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from vmtool.segmentation.base import Segmentation
        from vmtool.segmentation.plot import plot_segmentation
        seg = Segmentation(boundaries=np.array([1.0]), duration=2.0, curve=np.ones(10), curve_rate=5.0)
        plot_segmentation({str(tmp_path / 'p.png')!r}, seg, title="t", reference=[0.5])
        assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    assert (tmp_path / "p.png").stat().st_size > 0
