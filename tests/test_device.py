"""Device choice: ``auto`` agrees with torch, and numpy-only commands do not import torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vmtool import device as dev
from vmtool.errors import ParameterError


def test_auto_without_a_gpu_driver_is_the_cpu_without_torch(monkeypatch):
    monkeypatch.setattr(dev, "gpu_driver_present", lambda: False)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert dev.resolve_device("auto") == "cpu"
    assert "torch" not in sys.modules


def test_auto_agrees_with_torch():
    import torch

    assert dev.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        assert dev.gpu_driver_present()  # the shortcut never hides a usable GPU


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "tpu", "cpu0"])
def test_bad_device_names(bad):
    with pytest.raises(ParameterError, match="invalid device"):
        dev.validate_device(bad)


def test_numpy_only_commands_do_not_import_torch(tmp_path):
    """``vmtool info`` on a collection and device resolution stay torch-free (fast start-up)."""
    from vmtool.store import CollectionWriter, Item

    path = tmp_path / "c.h5"
    with CollectionWriter(path, config={"config_version": 1, "rate": 1.0}) as w:
        w.add(Item("a", "a.wav", "0" * 64, 1.0, True, False), {})
    code = (
        "import sys, json\n"
        "from vmtool.device import resolve_device, gpu_driver_present\n"
        "from typer.testing import CliRunner\n"
        "from vmtool.cli import app\n"
        f"r = CliRunner().invoke(app, ['info', {str(path)!r}, '--format', 'json'])\n"
        "d = resolve_device('auto')\n"
        "print(json.dumps({'code': r.exit_code, 'torch': 'torch' in sys.modules, 'gpu': gpu_driver_present(), 'dev': d}))\n"
    )
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                    timeout=120).stdout.strip().splitlines()[-1])
    assert out["code"] == 0
    if not out["gpu"]:
        assert out == {"code": 0, "torch": False, "gpu": False, "dev": "cpu"}
