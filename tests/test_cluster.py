"""Batch commands on a Dask cluster (``--scheduler``): same output as a local run.

One 2-process :class:`distributed.LocalCluster` serves the module; the commands connect
to it by address, as they would to a remote scheduler. The checkpoint tests stop a run
from its progress hook after a given number of completed items (never after a delay).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import cloudpickle
import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

distributed = pytest.importorskip("distributed")

from vmtool import cluster as vcluster  # noqa: E402
from vmtool.batch import partial_path  # noqa: E402
from vmtool.cli import app  # noqa: E402
from vmtool.errors import VmtoolError  # noqa: E402
from vmtool.store import open_collection  # noqa: E402

runner = CliRunner()
AUDIO = ["-a", "handcrafted", "-v", "none"]

# the worker plugin below is defined here, a module the workers cannot import: send it by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def run(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


@pytest.fixture(scope="module")
def scheduler():
    import logging

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=logging.CRITICAL) as cl:
        yield cl.scheduler_address


@pytest.fixture(scope="module")
def tracks(tmp_path_factory, audio_files, music_wav):
    """Three audio files in one directory (the ids differ)."""
    d = tmp_path_factory.mktemp("tracks")
    out = []
    for name, src in (("a.wav", audio_files["wav"]), ("b.flac", audio_files["flac"]), ("c.wav", music_wav)):
        shutil.copy(src, d / name)
        out.append(d / name)
    return out


@pytest.fixture(scope="module")
def local_extract(tmp_path_factory, tracks):
    out = tmp_path_factory.mktemp("local") / "local.h5"
    res = run("extract", *tracks, *AUDIO, "-o", out, "-q")
    assert res.exit_code == 0, res.stderr
    return out


def same_content(a, b) -> None:
    """Every dataset of *a* equals *b*'s (NaN equal to NaN); root attributes aside from the history."""
    with h5py.File(a) as fa, h5py.File(b) as fb:
        names_a, names_b = [], []
        fa.visit(names_a.append)
        fb.visit(names_b.append)
        assert sorted(names_a) == sorted(names_b)
        for n in names_a:
            if isinstance(fa[n], h5py.Dataset):
                x, y = fa[n][()], fb[n][()]
                if x.dtype.kind == "f":
                    assert np.array_equal(x, y, equal_nan=True), n
                else:
                    assert np.array_equal(x, y), n
            for k, v in fa[n].attrs.items():
                assert np.array_equal(fb[n].attrs[k], v), (n, k)
        assert fa.attrs["config"] == fb.attrs["config"]


def test_extract_on_cluster_equals_local_run(tmp_path, scheduler, tracks, local_extract):
    out = tmp_path / "cluster.h5"
    res = run("extract", *tracks, *AUDIO, "-o", out, "--scheduler", scheduler)
    assert res.exit_code == 0, res.stderr
    assert f"Dask scheduler {scheduler}; dashboard http://" in res.stderr  # the link to watch the run
    same_content(local_extract, out)
    with open_collection(out) as col:
        assert list(col.column("source")) == [str(t) for t in tracks]  # input order


def test_send_media_ships_the_bytes_and_keeps_the_client_paths(tmp_path, scheduler, tracks, local_extract):
    out = tmp_path / "sent.h5"
    res = run("extract", *tracks, *AUDIO, "-o", out, "--send-media", "-q", env={"VMTOOL_SCHEDULER": scheduler})
    assert res.exit_code == 0, res.stderr
    same_content(local_extract, out)


def test_resume_sends_only_the_new_items(tmp_path, scheduler, tracks):
    out = tmp_path / "cat.h5"
    assert run("extract", *tracks[:2], *AUDIO, "-o", out, "-q", "--scheduler", scheduler).exit_code == 0
    sched_file = tmp_path / "scheduler.json"  # as `dask scheduler --scheduler-file` writes it
    sched_file.write_text(json.dumps({"type": "Scheduler", "address": scheduler}))
    res = run("extract", *tracks, *AUDIO, "-o", out, "--resume", "--scheduler", sched_file)
    assert res.exit_code == 0, res.stderr
    assert "1 item(s) added, 2 already present" in res.stderr
    with open_collection(out) as col:
        assert list(col.column("source")) == [str(t) for t in tracks]


def test_segment_on_cluster_equals_local_run(tmp_path, scheduler, local_extract):
    args = ["-m", "beats", "-m", "fixed", "--window", "2", "-q"]
    loc, clu = tmp_path / "loc.h5", tmp_path / "clu.h5"
    assert run("segment", local_extract, *args, "-o", loc).exit_code == 0
    res = run("segment", local_extract, *args, "-o", clu, "--scheduler", scheduler, "--send-media")
    assert res.exit_code == 0, res.stderr
    same_content(loc, clu)


def test_media_missing_on_the_worker_names_file_and_worker(tmp_path, scheduler, tracks):
    feats = tmp_path / "f.h5"
    gone = tmp_path / "gone.wav"
    shutil.copy(tracks[0], gone)
    assert run("extract", gone, *AUDIO, "-o", feats, "-q").exit_code == 0
    gone.unlink()
    res = run("segment", feats, "-m", "beats", "-o", tmp_path / "s.h5", "-q", "--scheduler", scheduler)
    assert res.exit_code == 1
    line = res.stderr.strip()
    assert line.startswith(f"Error: {gone}: does not exist on worker tcp://127.0.0.1:")
    assert line.endswith("put the media on storage every worker mounts at the same path, or give --send-media")
    assert not (tmp_path / "s.h5").exists()


class KillFirstTask(distributed.WorkerPlugin):
    """Kills the worker process that starts the first vmtool task (once: a marker file says so)."""

    def __init__(self, marker: str):
        self.marker = marker

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and str(key).startswith("vmtool-"):
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.close(fd)
            os._exit(1)


def test_a_worker_killed_mid_run_loses_nothing(tmp_path, scheduler, tracks, local_extract):
    marker = tmp_path / "killed"
    with distributed.Client(scheduler, set_as_default=False) as client:
        client.register_plugin(KillFirstTask(str(marker)), name="kill-first-task")
        try:
            out = tmp_path / "survived.h5"
            res = run("extract", *tracks, *AUDIO, "-o", out, "-q", "--scheduler", scheduler)
        finally:
            client.unregister_worker_plugin("kill-first-task")
    assert marker.exists()  # a worker did die, in the middle of a task
    assert res.exit_code == 0, res.stderr
    same_content(local_extract, out)


def test_worker_with_another_vmtool_version_is_refused(tmp_path, scheduler, tracks, monkeypatch):
    from vmtool import __version__

    monkeypatch.setattr(vcluster, "__version__", "9.9.9")  # this client claims another version
    res = run("extract", tracks[0], *AUDIO, "-o", tmp_path / "x.h5", "--scheduler", scheduler, "-q")
    assert res.exit_code == 1
    line = res.stderr.strip()
    assert line.startswith("Error: worker tcp://127.0.0.1:")
    assert line.endswith(f"runs vmtool {__version__} but the client runs vmtool 9.9.9; "
                         "install the same vmtool version on every worker")


def test_a_task_checks_the_version_on_its_worker():
    # workers that join after the client connected are checked by every task
    with pytest.raises(VmtoolError, match=r"^worker pid \d+ \(host .*\) runs vmtool .* but the client runs vmtool 0\.0\.0;"):
        vcluster._run_task(print, (), "0.0.0", "token", (None, ()), None, None, None)


def test_embed_on_cluster_equals_local_run(tmp_path, scheduler):
    from vmtool.synth import synth_features

    synth_features(tmp_path / "feats.h5", 12, seed=3)
    res = run("train", tmp_path / "feats.h5", "-o", tmp_path / "m.pt", "--epochs", "1", "--level", "segment",
              "--segments", "fixed", "--audio-layers", "16", "--video-layers", "16", "-b", "16", "-q")
    assert res.exit_code == 0, res.output
    for name, extra in (("loc.h5", []), ("clu.h5", ["--scheduler", scheduler])):
        res = run("embed", tmp_path / "feats.h5", "--model", tmp_path / "m.pt", "-o", tmp_path / name, "-q", *extra)
        assert res.exit_code == 0, res.stderr
    same_content(tmp_path / "loc.h5", tmp_path / "clu.h5")
    # a stopped run continues from its checkpoint
    from vmtool.embed import embed

    out = tmp_path / "resumed.h5"
    with pytest.raises(KeyboardInterrupt):
        embed(tmp_path / "feats.h5", tmp_path / "m.pt", out, scheduler=scheduler, progress=StopAfter(5))
    res = run("embed", tmp_path / "feats.h5", "--model", tmp_path / "m.pt", "-o", out, "--resume",
              "--scheduler", scheduler)
    assert res.exit_code == 0, res.stderr
    assert f"continuing a stopped run: 5 item(s) read from {partial_path(out)}" in res.stderr
    same_content(tmp_path / "loc.h5", out)


def test_analyze_structure_on_cluster_equals_local_run(tmp_path, scheduler):
    from test_cli_structure import clip, write_collection

    clips = [clip(f"bar{i}", "bar", tempo=t, seed=i) for i, t in enumerate((100.0, 120.0, 140.0))]
    clips.append(clip("novideo", "bar", video=False))  # fails on the worker as it does here
    col = write_collection(tmp_path / "clips.h5", clips)
    outs = []
    for name, extra in (("loc.h5", []), ("clu.h5", ["--scheduler", scheduler])):
        res = run("analyze-structure", col, "-o", tmp_path / name, "--shuffles", 50, "-k", "--format", "json", *extra)
        assert res.exit_code == 1, res.stderr  # the clip without video
        assert "novideo.mp4: has no video stream: no shot likelihood to analyse" in res.stderr
        outs.append({k: v for k, v in json.loads(res.stdout).items() if k != "output"})
    assert outs[0] == outs[1]
    same_content(tmp_path / "loc.h5", tmp_path / "clu.h5")
    # stopped after two clips here, continued on the cluster
    from vmtool.structure import StructureConfig, analyze_structure

    out = tmp_path / "resumed.h5"
    with pytest.raises(KeyboardInterrupt):
        analyze_structure([col], out, StructureConfig(shuffles=50), device="auto", keep_going=True,
                          progress=StopAfter(2))
    res = run("analyze-structure", col, "-o", out, "--shuffles", 50, "-k", "--resume", "--scheduler", scheduler)
    assert res.exit_code == 1, res.stderr
    assert f"continuing a stopped run: 2 item(s) read from {partial_path(out)}" in res.stderr
    same_content(tmp_path / "loc.h5", out)


def test_a_worker_without_vmtool_is_refused():
    import importlib.metadata

    from vmtool import __version__

    class Client:
        def run(self, func, *args, on_error):
            return {"tcp://10.0.0.7:40123": importlib.metadata.PackageNotFoundError("vmtool")}

    with pytest.raises(VmtoolError, match=rf"^worker tcp://10\.0\.0\.7:40123 has no vmtool installed "
                                          rf"\(the client runs vmtool {__version__}\); install the same"):
        vcluster.check_versions(Client())


# --- checkpoints: a stopped run continues with --resume ------------------------------------

class StopAfter:
    """A progress hook that stops the run (Ctrl-C) when *n* items are done; records the events."""

    def __init__(self, n: int | None = None):
        self.n, self.started, self.done, self.logs = n, [], [], []

    def batch_start(self, total):
        pass

    def file_start(self, path, work):
        self.started.append(path)

    def file_advance(self, path, done):
        pass

    def file_done(self, path, ok, message=""):
        self.done.append(path)
        if self.n is not None and len(self.done) == self.n:
            raise KeyboardInterrupt

    def log(self, message):
        self.logs.append(message)


# what `vmtool extract -a handcrafted -v none` runs
CONFIG = dict(audio_features=("handcrafted",), video_features=(), require_audio=True, metadata=True, measure=True)


def _extract(tracks, out, **kw):
    """``vmtool extract TRACKS -a handcrafted -v none -o OUT`` as a library call (a progress hook can be given)."""
    from vmtool.extract import ExtractConfig, extract

    return extract(tracks, out, ExtractConfig(**CONFIG), **kw)


def test_a_stopped_local_run_continues_from_its_checkpoint(tmp_path, tracks, local_extract):
    out = tmp_path / "out.h5"
    with pytest.raises(KeyboardInterrupt):
        _extract(tracks, out, progress=StopAfter(2))
    assert not out.exists()  # nothing half-written...
    part = partial_path(out)
    assert part.exists()  # ...but the two completed items are kept beside it
    with open(part, "r+b") as f:  # the client was killed while writing the second one
        f.truncate(part.stat().st_size - 10)
    p = StopAfter()
    _extract(tracks, out, resume=True, progress=p)
    assert p.logs == [f"continuing a stopped run: 1 item(s) read from {part}"]
    assert p.started == [str(t) for t in tracks[1:]]  # the torn item and the third one ran again
    same_content(local_extract, out)
    assert not part.exists()  # deleted once the output is in place


def test_an_item_is_known_by_its_values_not_by_which_objects_hold_them():
    from vmtool.batch import _digest

    one = "auto"
    two = "".join(["au", "to"])  # what the command line hands over: an equal string, not the same one
    assert two is not one
    assert _digest(("cpu", one, one)) == _digest(("cpu", one, two))
    assert _digest(("cpu", one, one)) != _digest(("cpu", one, "cpu"))


def test_a_checkpoint_that_cannot_be_written_never_fails_the_run(tmp_path, tracks, local_extract, monkeypatch):
    import errno

    from vmtool import batch

    calls, write = [], batch._write_all

    def full_at_the_second_item(fd, data):  # header; item 1 (2 writes); item 2: its head, then its data
        calls.append(len(data))
        if len(calls) == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(fd, data)

    monkeypatch.setattr(batch, "_write_all", full_at_the_second_item)
    out = tmp_path / "out.h5"
    p = StopAfter(3)
    with pytest.raises(KeyboardInterrupt):
        _extract(tracks, out, progress=p)
    part = partial_path(out)
    assert p.logs == [f"{part}: cannot write the checkpoint (No space left on device); this run goes on without one"]
    assert len(calls) == 5  # nothing written after the failure
    monkeypatch.undo()
    p = StopAfter()
    _extract(tracks, out, resume=True, progress=p)  # the torn second item was cut off: the first is read back
    assert p.logs == [f"continuing a stopped run: 1 item(s) read from {part}"]
    same_content(local_extract, out)


def test_a_run_without_resume_discards_the_checkpoint(tmp_path, tracks):
    from vmtool.segment import SegmentConfig, segment

    src = tmp_path / "src.h5"
    _extract(tracks, src)
    out = tmp_path / "seg.h5"
    with pytest.raises(KeyboardInterrupt):
        segment([src], out, SegmentConfig(methods=("fixed",), window=2.0),
                progress=StopAfter(2))
    part = partial_path(out)
    p = StopAfter()  # other settings: the recorded items are not theirs
    segment([src], out, SegmentConfig(methods=("fixed",), window=3.0), resume=True,
            progress=p)
    assert p.logs == [f"{part}: ignoring the checkpoint of a run with other settings (or another vmtool version)"]
    assert len(p.started) == 3 and not part.exists()
    with pytest.raises(KeyboardInterrupt):
        segment([src], out, SegmentConfig(methods=("fixed",), window=2.0),
                progress=StopAfter(2))
    p = StopAfter()
    segment([src], out, SegmentConfig(methods=("fixed",), window=2.0), progress=p)
    assert p.logs == [f"{part}: discarding the checkpoint of a stopped run: without --resume every item is "
                      "computed again"]
    assert len(p.started) == 3 and not part.exists()


def test_a_killed_client_continues_on_the_cluster(tmp_path, scheduler, tracks, local_extract):
    """The client process dies (no clean-up at all) after two items; --resume on the cluster ends the job."""
    out = tmp_path / "out.h5"
    script = textwrap.dedent(f"""
        import os
        from vmtool.extract import ExtractConfig, extract
        from vmtool.progress import Progress

        class Die(Progress):
            n = 0
            def file_done(self, path, ok, message=""):
                self.n += 1
                if self.n == 2:
                    os._exit(9)

        extract({[str(t) for t in tracks]!r}, {str(out)!r}, ExtractConfig(**{CONFIG!r}), progress=Die())
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    assert subprocess.run([sys.executable, "-c", script], env=env).returncode == 9
    assert not out.exists() and partial_path(out).exists()
    res = run("extract", *tracks, *AUDIO, "-o", out, "--resume", "--scheduler", scheduler)
    assert res.exit_code == 0, res.stderr
    assert f"continuing a stopped run: 2 item(s) read from {partial_path(out)}" in res.stderr
    same_content(local_extract, out)
    assert not partial_path(out).exists()


def test_a_stopped_cluster_run_continues_and_its_progress_follows_the_tasks(tmp_path, scheduler, tracks,
                                                                            local_extract):
    out = tmp_path / "out.h5"
    with pytest.raises(KeyboardInterrupt):
        _extract(tracks, out, scheduler=scheduler, progress=StopAfter(2))
    p = StopAfter()
    _extract(tracks, out, scheduler=scheduler, resume=True, progress=p)
    assert f"continuing a stopped run: 2 item(s) read from {partial_path(out)}" in p.logs
    assert sorted(p.done) == sorted(str(t) for t in tracks)  # the bar counts every item once
    same_content(local_extract, out)


@pytest.mark.slow
def test_local_n_starts_a_cluster_for_the_run(tmp_path, tracks, local_extract):
    out = tmp_path / "local2.h5"
    res = run("extract", *tracks, *AUDIO, "-o", out, "--scheduler", "local:2")
    assert res.exit_code == 0, res.stderr
    assert "Dask scheduler tcp://127.0.0.1:" in res.stderr
    same_content(local_extract, out)
