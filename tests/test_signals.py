"""Killed runs: worker processes die with their parent; SIGTERM behaves like Ctrl-C.

A real ``vmtool extract -j 2`` runs in a subprocess. A ``sitecustomize`` module on its
``PYTHONPATH`` (loaded by every Python process, the spawned workers included) replaces
the per-item extraction with a one-hour sleep that first leaves a marker named after
the worker's pid: the test waits for both markers (so both workers are busy), kills
the parent, then waits for the workers to disappear. Every wait polls for a
condition with a generous deadline; no fixed sleep decides an outcome.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 120.0  # seconds; a loaded 2-core machine needs a while to start three Pythons with torch

HANG = '''
import os
if os.environ.get("VMTOOL_TEST_HANG_DIR"):
    import time
    import vmtool.extract as _ex

    def _hang(*args, **kwargs):
        open(os.path.join(os.environ["VMTOOL_TEST_HANG_DIR"], str(os.getpid())), "w").close()
        time.sleep(3600)

    _ex.extract_item = _hang
'''


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent has not reaped it


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(d.name))
    return out


def _wait_for(condition, what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"not within {DEADLINE:.0f} s: {what}")
        time.sleep(0.1)


@pytest.fixture
def busy_run(tmp_path, audio_files):
    """A ``vmtool extract -j 2`` whose two workers are inside an item; yields (process, worker pids)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HANG)
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]),
           "VMTOOL_TEST_HANG_DIR": str(markers), "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    inputs = [audio_files[e] for e in ("wav", "flac", "mp3", "ogg")]
    proc = subprocess.Popen([sys.executable, "-m", "vmtool", "extract", *map(str, inputs), "-a", "handcrafted",
                             "-v", "none", "-j", "2", "-q", "-o", str(tmp_path / "out.h5")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: len(list(markers.iterdir())) >= 2 or proc.poll() is not None, "two busy workers")
        assert proc.poll() is None, proc.communicate()
        workers = [int(p.name) for p in markers.iterdir()]
        assert set(workers) <= set(_children(proc.pid))
        yield proc, workers
    finally:  # never leave a process behind, whatever the outcome (workers first: they hold the pipes)
        for pid in _children(proc.pid) + [int(p.name) for p in markers.iterdir()]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=DEADLINE)


def test_sigterm_stops_the_workers_and_exits_143(busy_run, tmp_path):
    proc, workers = busy_run
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=DEADLINE) == 143
    _wait_for(lambda: not any(_alive(p) for p in workers), "workers gone after SIGTERM")
    _, err = proc.communicate(timeout=DEADLINE)
    assert err.strip().splitlines()[-1] == "Error: terminated (SIGTERM); no output was written or changed"
    # no output, no temporary file
    assert [p.name for p in tmp_path.iterdir() if p.name not in ("markers", "numba", "site")] == []


def test_sigkill_of_the_parent_takes_the_workers_along(busy_run):
    proc, workers = busy_run
    proc.kill()
    proc.wait(timeout=DEADLINE)
    _wait_for(lambda: not any(_alive(p) for p in workers), "workers gone after SIGKILL of their parent")
