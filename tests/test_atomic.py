"""Outputs: atomic replacement, the output lock, stale temporaries, -o equal to an input.

The lock tests run real vmtool processes against a lock held by the test process, so
their outcome never depends on which process the scheduler runs first.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from vmtool.atomic import atomic_output, output_lock, remove_stale_temporaries
from vmtool.errors import VmtoolError
from vmtool.store import CollectionWriter, Item, RaggedArray, open_collection


def write_collection(path, ids, *, dim=3, seed=0):
    """A tiny features collection: items *ids*, each with a few rows of feature ``f``."""
    rng = np.random.default_rng(seed)
    with CollectionWriter(path, config={"rate": 1.0}, command="test") as w:
        w.declare("features", "f", dim=dim, attrs={"modality": "audio"})
        for i in ids:
            w.add(Item(i, f"{i}.wav", i * 4, 3.0, True, False, float("nan"), 22050),
                  {("features", "f"): RaggedArray(rng.normal(size=(3, dim)).astype(np.float32), 1.0)})


def ids_of(path):
    with open_collection(path) as col:
        return sorted(col.ids)


def vmtool(*args, **kw):
    """Start the real command line in a child process."""
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "vmtool", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


# --- the lock ------------------------------------------------------------------------------


def test_a_held_lock_fails_after_wait_naming_the_holder(tmp_path):
    a, b, out = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "out.h5"
    write_collection(a, ["x"])
    write_collection(b, ["y"])
    with output_lock(out):
        p = vmtool("merge", a, b, "-o", out, "--wait", "0")
        stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 1
    assert stderr.splitlines()[-1] == (f"Error: {out}: is being written by another vmtool run (pid {os.getpid()}); "
                                       "gave up after waiting 0 s (--wait SECONDS waits longer)")
    assert not out.exists()


def test_a_waiting_run_sees_the_update_made_while_it_waited(tmp_path):
    """A merge into its own input waits for the holder, then reads what the holder wrote."""
    out, extra, mine = tmp_path / "out.h5", tmp_path / "extra.h5", tmp_path / "mine.h5"
    write_collection(out, ["a"])
    write_collection(extra, ["b"])
    write_collection(mine, ["c"])
    from vmtool.merge import merge

    with output_lock(out):
        p = vmtool("merge", out, extra, "-o", out, "--wait", "600", "-q")
        # the child says it waits only once it has found the lock held
        line = p.stderr.readline()
        assert "is being written by another vmtool run" in line and f"pid {os.getpid()}" in line, line
        merge([out, mine], out)  # our own read-modify-write, under the lock the child waits for
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stderr
    assert ids_of(out) == ["a", "b", "c"]


def test_two_concurrent_merges_into_one_file_keep_every_item(tmp_path):
    out = tmp_path / "out.h5"
    write_collection(out, ["a"])
    shards = []
    for k in range(2):
        shards.append(tmp_path / f"s{k}.h5")
        write_collection(shards[-1], [f"s{k}"])
    procs = [vmtool("merge", out, s, "-o", out, "--wait", "600", "-q") for s in shards]
    for p in procs:
        _, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr
    assert ids_of(out) == ["a", "s0", "s1"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no lock or temporary file left


def test_the_lock_is_reentrant_and_removed_on_release(tmp_path):
    out = tmp_path / "out.h5"
    with output_lock(out):
        assert (tmp_path / ".out.h5.vmtool-lock").read_text() == f"{os.getpid()}\n"
        with atomic_output(out) as tmp:  # the writer inside a held lock does not wait for itself
            tmp.write_bytes(b"x")
    assert sorted(os.listdir(tmp_path)) == ["out.h5"]


def test_a_lock_file_left_by_a_killed_run_does_not_block(tmp_path):
    out = tmp_path / "out.h5"
    (tmp_path / ".out.h5.vmtool-lock").write_text("999999999\n")  # no process holds a flock on it
    with atomic_output(out, wait=0) as tmp:
        tmp.write_bytes(b"x")
    assert out.read_bytes() == b"x"


# --- temporary files ---------------------------------------------------------------------


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid  # reaped: no process has this pid until it is reused


def test_temporaries_never_match_the_target_extension(tmp_path):
    out = tmp_path / "clip.mp4"
    with atomic_output(out) as tmp:
        assert tmp.name.startswith(".vmtool-tmp-clip.mp4.") and tmp.name.endswith(".part")
        tmp.write_bytes(b"x")


def test_the_next_run_removes_temporaries_of_dead_runs_only(tmp_path):
    out = tmp_path / "out.h5"
    dead = tmp_path / f".vmtool-tmp-out.h5.{_dead_pid()}.abc123.part"
    live = tmp_path / f".vmtool-tmp-out.h5.{os.getppid()}.def456.part"  # the pytest parent is alive
    other = tmp_path / f".vmtool-tmp-other.h5.{_dead_pid()}.abc123.part"  # another output's: not ours to judge
    for p in (dead, live, other):
        p.write_bytes(b"half")
    with atomic_output(out) as tmp:
        tmp.write_bytes(b"x")
    assert not dead.exists() and live.exists() and other.exists()
    assert remove_stale_temporaries(out) == []


# --- -o equal to an input ------------------------------------------------------------------


def test_extract_refuses_to_overwrite_its_input(tmp_path, short_clip):
    clip = tmp_path / "c.mp4"
    clip.write_bytes(short_clip.read_bytes())
    before = clip.read_bytes()
    from vmtool.extract import ExtractConfig, extract

    for out in (clip, tmp_path / "link.mp4"):
        if out != clip:
            out.symlink_to(clip)
        with pytest.raises(VmtoolError, match=r"is also an input .*writing it would destroy that input"):
            extract([clip], out, ExtractConfig(audio_features=("handcrafted",), video_features=()))
    assert clip.read_bytes() == before


def test_o_on_a_symlink_writes_through_to_its_target(tmp_path):
    real = tmp_path / "data" / "out.h5"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "out.h5"
    link.symlink_to(real)
    with atomic_output(link) as tmp:
        assert tmp.parent == real.parent
        tmp.write_bytes(b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"


def test_a_file_system_without_locks_warns_and_writes(tmp_path, monkeypatch):
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    out = tmp_path / "out.h5"
    with pytest.warns(UserWarning, match="cannot lock .*could lose items"):
        with atomic_output(out) as tmp:
            tmp.write_bytes(b"x")
    assert out.read_bytes() == b"x" and sorted(os.listdir(tmp_path)) == ["out.h5"]
