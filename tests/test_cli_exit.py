"""How the ``vmtool`` process ends: the command's exit code and all of its output.

The console entry point (:func:`vmtool.cli.console_main`) ends the process as soon as the
interpreter's exit handlers have run, without its teardown (docs/performance.md,
"Start-up"). These run real processes: what a shell or a Makefile sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import vmtool

DATA = Path(__file__).parent / "data"
ROOT = str(Path(vmtool.__file__).resolve().parents[1])


def _run(args: list[str], *, code: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [env.get("PYTHONPATH")])])
    cmd = [sys.executable, "-c", code] if code is not None else [sys.executable, "-m", "vmtool", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_a_command_ends_with_code_0_and_all_of_its_output():
    proc = _run(["info", str(DATA / "catalog-1.1.h5"), "--format", "json"])
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # the whole document, flushed before the process ended
    assert doc["kind"] == "collection" and doc["n_items"] > 0 and doc["embeddings"]


def test_a_failing_command_ends_with_its_documented_code_and_one_line():
    proc = _run(["info", "/no/such/file.h5"])
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", "Error: /no/such/file.h5: no such file\n")
    proc = _run(["rank", "clip.mp4", str(DATA / "catalog-1.1.h5"), "-k", "0"])
    assert proc.returncode == 2 and "-k" in proc.stderr and proc.stdout == ""


def test_the_process_ends_at_once_only_with_its_files_closed(tmp_path):
    """With the command's code, after stdout is flushed; not while an HDF5 file is open
    (HDF5's own exit handler closes it)."""
    quick = """
import sys
from vmtool.cli import _end_at_once
print("written before")
_end_at_once([])  # the command did not end with an exit code: nothing happens
print("still running")
_end_at_once([4])
print("never printed")
"""
    proc = _run([], code=quick)
    assert (proc.returncode, proc.stdout) == (4, "written before\nstill running\n")
    held = f"""
import h5py
from vmtool.cli import _end_at_once
f = h5py.File({str(tmp_path / 'open.h5')!r}, "w")
f["x"] = [1, 2, 3]
_end_at_once([4])
print("continued")
"""
    proc = _run([], code=held)
    assert (proc.returncode, proc.stdout) == (0, "continued\n"), proc.stderr
    import h5py

    with h5py.File(tmp_path / "open.h5", "r") as f:
        assert list(f["x"][()]) == [1, 2, 3]


def test_an_exit_handler_registered_before_the_command_still_runs():
    # e.g. coverage measuring the process: the teardown is then not skipped
    code = f"""
import atexit, sys
atexit.register(lambda: print("handler ran", flush=True))
sys.argv = ["vmtool", "info", {str(DATA / 'collection-1.1.h5')!r}, "--format", "json"]
from vmtool.cli import console_main
console_main()
"""
    proc = _run([], code=code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith("handler ran\n")


def test_the_command_line_registers_no_exit_handler_of_its_own():
    # the quick end is armed only as the first exit handler: an import of the command line
    # that registered one would silently give the teardown back to every command
    proc = _run([], code="import atexit, vmtool.cli, vmtool.__main__; print(atexit._ncallbacks())")
    assert (proc.returncode, proc.stdout) == (0, "0\n"), proc.stderr


def test_a_program_calling_main_keeps_its_own_exit(tmp_path):
    """vmtool.cli.main in another program: its SystemExit caught, that program goes on,
    writes its file and exits with its own code."""
    out = tmp_path / "out.txt"
    code = f"""
import sys
from vmtool.cli import main
sys.argv = ["vmtool", "--version"]
try:
    main()
except SystemExit:
    pass
f = open({str(out)!r}, "w")
f.write("data")  # flushed by the interpreter's teardown
sys.exit(5)
"""
    proc = _run([], code=code)
    assert proc.returncode == 5, proc.stderr
    assert out.read_text() == "data"
