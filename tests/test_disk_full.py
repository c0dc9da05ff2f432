"""A full disk: one line "no space left on device writing OUT", exit 1, no temporary file left.

HDF5 used to crash the process at exit (segmentation fault, exit 139) after a write
failed for lack of space; vmtool now discards the file handle without writing again.
The end-to-end tests fill a small tmpfs (they need root and ``mount``, and are skipped
with the reason otherwise); the unit tests inject ENOSPC at the write layer.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from vmtool.errors import VmtoolError
from vmtool.synth import synth_features


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    p = tmp_path_factory.mktemp("full") / "f.h5"
    synth_features(p, 30, frames=(40, 60))
    return p


@pytest.fixture(scope="module")
def model(features):
    from typer.testing import CliRunner

    from vmtool.cli import app

    out = features.parent / "m.pt"
    res = CliRunner().invoke(app, ["train", str(features), "-o", str(out), "--epochs", "1", "-q",
                                   "--audio-layers", "64,16", "--video-layers", "64,16"])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture
def full_dir(tmp_path):
    """A 1 MiB tmpfs, filled up to *free* KiB by the test (see ``fill``)."""
    d = tmp_path / "small"
    d.mkdir()
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip() or r.returncode}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def fill(d, free_kib):
    st = os.statvfs(d)
    avail = st.f_bavail * st.f_frsize
    with open(d / "filler", "wb") as f:
        f.write(b"\0" * max(0, avail - free_kib * 1024))


def vmtool(*args):
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "vmtool", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600)


COMMANDS = {
    "extract": lambda f, m, wav, out: ["extract", wav, "-a", "handcrafted", "-v", "none", "-q", "-o", out],
    "segment": lambda f, m, wav, out: ["segment", f, "-m", "fixed", "--window", "2", "-q", "-o", out],
    "merge": lambda f, m, wav, out: ["merge", f, "-q", "-o", out],
    "embed": lambda f, m, wav, out: ["embed", f, "--model", m, "-q", "-o", out],
    "train": lambda f, m, wav, out: ["train", f, "-o", out, "--epochs", "1", "-q"],
}


@pytest.mark.parametrize("free_kib", [24, pytest.param(0, marks=pytest.mark.slow)])  # full mid-write / at once
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_full_disk_is_one_line_and_exit_1(full_dir, features, model, music_wav, command, free_kib):
    fill(full_dir, free_kib)
    out = full_dir / ("out.pt" if command == "train" else "out.h5")
    res = vmtool(*COMMANDS[command](features, model, music_wav, out))
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert res.stderr == f"Error: no space left on device writing {out}\n"
    # the whole items of the checkpoint may stay, for --resume once space is freed (docs/cluster.md)
    assert sorted(os.listdir(full_dir)) in (["filler"], ["filler", "out.h5.vmtool-partial"])


def test_an_existing_output_survives_a_full_disk(full_dir, features):
    from vmtool.synth import synth_features

    out = full_dir / "out.h5"
    synth_features(out, 2, frames=(2, 3))
    before = out.read_bytes()
    fill(full_dir, 0)
    res = vmtool("merge", out, features, "-q", "-o", out)
    assert res.returncode == 1 and res.stderr == f"Error: no space left on device writing {out}\n"
    assert out.read_bytes() == before
    assert sorted(os.listdir(full_dir)) == ["filler", "out.h5"]


# --- injected at the write layer (no mount needed) -----------------------------------------


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_enospc_from_the_hdf5_writer(tmp_path, features, monkeypatch):
    from vmtool import store
    from vmtool.merge import merge

    monkeypatch.setattr(store.CollectionWriter, "flush", _enospc)
    out = tmp_path / "out.h5"
    with pytest.raises(VmtoolError) as e:
        merge([features], out)
    assert str(e.value) == f"no space left on device writing {out}"
    assert e.value.exit_code == 1
    assert sorted(os.listdir(tmp_path)) == []


def test_a_write_error_that_is_not_enospc_keeps_its_own_message(tmp_path, features, monkeypatch):
    from vmtool import atomic, store
    from vmtool.merge import merge

    def eio(*args, **kwargs):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(store.CollectionWriter, "flush", eio)
    monkeypatch.setattr(atomic, "_no_space_left", lambda d: False)
    with pytest.raises(OSError, match="Input/output error"):
        merge([features], tmp_path / "out.h5")
    assert sorted(os.listdir(tmp_path)) == []


def test_enospc_from_torch_save(tmp_path, features, monkeypatch):
    """torch.save reports "file write failed" without errno: the full file system is checked."""
    from vmtool import atomic

    def failed(*args, **kwargs):
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    import torch

    monkeypatch.setattr(torch, "save", failed)
    monkeypatch.setattr(atomic, "_no_space_left", lambda d: True)
    from vmtool.training import DataConfig, TrainConfig, train

    out = tmp_path / "m.pt"
    with pytest.raises(VmtoolError, match=f"^no space left on device writing {out}$"):
        train(features, out, data=DataConfig(), config=TrainConfig(epochs=1), model_layers={"audio": [16], "video": [16]})
    assert [p for p in os.listdir(tmp_path)] == []
