"""Untrusted files: HDF5 content that lives outside the file is refused by every reader.

vmtool files are self-contained (docs/format.md); an external link, a soft link, a
virtual dataset or external storage would make a reader open other files, or read
zeros where a mapped file is missing.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool.cli import app
from vmtool.synth import synth_features

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _external_link(f, tmp_path):
    del f["features/synth_audio/data"]
    f["features/synth_audio/data"] = h5py.ExternalLink(str(tmp_path / "elsewhere.h5"), "/x")
    return "features/synth_audio/data", "is an external link (to"


def _soft_link(f, tmp_path):
    del f["features/synth_audio/rate"]
    f["features/synth_audio/rate"] = h5py.SoftLink("/features/synth_video/rate")
    return "features/synth_audio/rate", "is a soft link (to /features/synth_video/rate)"


def _virtual(f, tmp_path):
    data = f["features/synth_audio/data"]
    shape, dtype = data.shape, data.dtype
    with h5py.File(tmp_path / "secret.h5", "w") as g:
        g["x"] = np.ones(shape, dtype)
    layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
    layout[:] = h5py.VirtualSource(str(tmp_path / "secret.h5"), "x", shape=shape)
    del f["features/synth_audio/data"]
    f["features/synth_audio"].create_virtual_dataset("data", layout)
    return "dataset 'features/synth_audio/data'", "is a virtual dataset (mapped from other files)"


def _external_storage(f, tmp_path):
    n = f["features/synth_audio/rate"].shape[0]
    (tmp_path / "rates.bin").write_bytes(np.ones(n).tobytes())
    del f["features/synth_audio/rate"]
    f["features/synth_audio"].create_dataset("rate", shape=(n,), dtype="f8", external=[(str(tmp_path / "rates.bin"), 0, 8 * n)])
    return "dataset 'features/synth_audio/rate'", "keeps its data in external files"


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    p = tmp_path_factory.mktemp("untrusted") / "clean.h5"
    synth_features(p, 8)
    return p


@pytest.mark.parametrize("damage", [_external_link, _soft_link, _virtual, _external_storage])
@pytest.mark.parametrize("command", [["info"], ["merge", "-o", "{out}"], ["segment", "-m", "fixed", "--window", "2",
                                                                          "-q", "-o", "{out}"]])
def test_readers_refuse_content_outside_the_file(tmp_path, clean, damage, command):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(clean.read_bytes())
    with h5py.File(bad, "r+") as f:
        name, reason = damage(f, tmp_path)
    out = tmp_path / "out.h5"
    res = run(command[0], bad, *[a.format(out=out) for a in command[1:]])
    assert res.exit_code == 3, res.output
    # merge lists every input's problem, then one line saying nothing was written
    lines = [x for x in res.stderr.strip().splitlines() if not x.startswith(f"Error: {out}: not written")]
    assert len(lines) == 1 and lines[0].startswith(f"Error: {bad}: '{name}'" if "'" not in name else f"Error: {bad}: {name}")
    assert reason in lines[0]
    assert not out.exists()


def test_train_refuses_a_virtual_dataset(tmp_path, clean):
    """The zeros of an unmapped virtual dataset never reach training."""
    bad = tmp_path / "bad.h5"
    bad.write_bytes(clean.read_bytes())
    with h5py.File(bad, "r+") as f:
        _virtual(f, tmp_path)
    (tmp_path / "secret.h5").unlink()  # the mapped file is gone: h5py would read fill values
    res = run("train", bad, "-o", tmp_path / "m.pt", "--epochs", "1", "-q")
    assert res.exit_code == 3, res.output
    assert "is a virtual dataset" in res.stderr and res.stderr.count("\n") == 1
