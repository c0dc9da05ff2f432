"""Running one function over many items, in this process or in worker processes.

Shared by the batch commands (``extract``, ``segment``...): results come back in input
order; with ``keep_going`` a failure is recorded and the batch goes on, otherwise the
first failure is raised; Ctrl-C cancels the pending work and propagates.

Worker processes never outlive the command (a worker holds a model, 0.6-0.8 GB): when
the batch is interrupted (Ctrl-C, SIGTERM, an error) they are terminated, not left to
finish their task; and each one watches its parent, so that even a parent killed with
SIGKILL takes them along (Linux: ``prctl(PR_SET_PDEATHSIG)``; everywhere: a thread
that exits when the parent process id changes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import pickle
import signal
import stat
import struct
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from vmtool.errors import ParameterError, VmtoolError
from vmtool.progress import Progress

__all__ = ["run_batch", "Failure", "record_failure", "in_input_order", "die_with_parent", "stop_workers",
           "Checkpoint", "partial_path"]


class Failure:
    """A failed task: its label (usually the source path) and the error message."""

    def __init__(self, label: str, message: str):
        self.label = label
        self.message = message

    def __repr__(self) -> str:  # pragma: no cover
        return f"Failure({self.label!r}, {self.message!r})"


def check_batch(inputs: Sequence, workers: int, plot_dir: str | os.PathLike | None = None) -> None:
    """The argument checks every batch command makes before it starts (same messages).

    Raises
    ------
    ParameterError
        *workers* below 1, or no input.
    VmtoolError
        *plot_dir* is given but is not a directory.
    """
    if workers < 1:
        raise ParameterError(f"--workers must be at least 1, got {workers}")
    if not inputs:
        raise ParameterError("no input given")
    if plot_dir is not None and not Path(plot_dir).is_dir():
        raise VmtoolError("plot directory does not exist", plot_dir)


def in_input_order(failures: list[tuple[str, str]], inputs: Sequence) -> list[tuple[str, str]]:
    """*failures* ``(label, message)`` sorted as their labels appear in *inputs*.

    Inputs fail at different stages (missing files while hashing, bad media while
    decoding, possibly in another process); a user reads the errors against the list
    given, so they are reported in that list's order.
    """
    order: dict[str, int] = {}
    for i, x in enumerate(inputs):
        order.setdefault(str(x), i)
    return sorted(failures, key=lambda f: order.get(f[0], len(order)))


def _message(label: str, exc: BaseException) -> str:
    return str(exc) if isinstance(exc, VmtoolError) else f"{label}: {type(exc).__name__}: {exc}"


def record_failure(label: str, exc: BaseException, progress: Progress, keep_going: bool) -> Failure:
    """Report task *label*'s failure to *progress*; with *keep_going* return it as a
    :class:`Failure`, otherwise raise it (a :class:`VmtoolError` as is, anything else
    wrapped in one naming the label)."""
    msg = _message(label, exc)
    progress.file_done(label, False, msg)
    if not keep_going:
        if isinstance(exc, VmtoolError):
            raise exc
        raise VmtoolError(f"{type(exc).__name__}: {exc}", label) from exc
    return Failure(label, msg)


def run_batch(
    tasks: Sequence[tuple[str, tuple]],
    func: Callable[..., Any],
    *,
    workers: int = 1,
    keep_going: bool = False,
    progress: Progress | None = None,
    work: Callable[[str], float] | None = None,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
    in_process: Callable[..., Any] | None = None,
    on_result: Callable[[int, Any], None] | None = None,
) -> Iterator[tuple[int, Any]]:
    """Run ``func(*args)`` for every ``(label, args)`` task; yield ``(index, result)`` in order.

    A failed task yields ``(index, Failure)`` when *keep_going*; otherwise its error is
    raised (a :class:`VmtoolError` as is, anything else wrapped in one naming the label).

    Parameters
    ----------
    tasks : sequence of (label, args)
    func : callable
        A module-level function (picklable) run in worker processes.
    workers : int
        1 runs everything in this process; more uses a spawn-based process pool whose
        processes run ``initializer(*initargs)`` first.
    work : callable, optional
        ``work(label)`` -> seconds of media, for the progress bar.
    in_process : callable, optional
        Used instead of *func* when running in this process; it also receives an
        ``on_advance(seconds)`` keyword for progress within a task.
    on_result : callable, optional
        ``on_result(index, result)``, called in this process as soon as a task succeeds
        (before the results ahead of it in input order are back, and before *progress*
        counts it): a :class:`Checkpoint` records it there.
    """
    progress = progress or Progress()
    done: dict[int, Any] = {}
    nxt = 0

    def fail(i: int, exc: BaseException):
        return record_failure(tasks[i][0], exc, progress, keep_going)

    if workers <= 1 or len(tasks) <= 1:
        for i, (label, args) in enumerate(tasks):
            progress.file_start(label, work(label) if work else 0.0)
            try:
                if in_process is not None:
                    res = in_process(*args, on_advance=lambda d, s=label: progress.file_advance(s, d))
                else:
                    res = func(*args)
                if on_result is not None:
                    on_result(i, res)
                progress.file_done(label, True)
            except Exception as exc:  # noqa: BLE001 - reported per task
                res = fail(i, exc)
            yield i, res
        return

    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init,
                             initargs=(os.getpid(), threads, initializer, initargs)) as pool:
        pending: dict[Future, int] = {}
        queue = list(range(len(tasks)))
        try:
            while queue or pending:
                while queue and len(pending) < 2 * workers:
                    i = queue.pop(0)
                    label, args = tasks[i]
                    progress.file_start(label, work(label) if work else 0.0)
                    pending[pool.submit(func, *args)] = i
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    i = pending.pop(fut)
                    exc = fut.exception()
                    if exc is None:
                        done[i] = fut.result()
                        if on_result is not None:
                            on_result(i, done[i])
                        progress.file_done(tasks[i][0], True)
                    else:
                        done[i] = fail(i, exc)
                while nxt in done:
                    yield nxt, done.pop(nxt)
                    nxt += 1
        except BaseException:
            for fut in pending:
                fut.cancel()
            stop_workers(pool)
            raise


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate *pool*'s worker processes now and shut it down without waiting.

    ``shutdown(cancel_futures=True)`` alone lets running tasks finish, and the
    interpreter then waits for them at exit: an interrupted command would go on for
    minutes. Its output is discarded anyway, so the workers are stopped.
    """
    procs = list((getattr(pool, "_processes", None) or {}).values())  # CPython keeps them there
    for p in procs:
        if p.is_alive():
            p.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()


def die_with_parent(parent_pid: int, poll_seconds: float = 0.5) -> None:
    """Make this (worker) process exit when *parent_pid* goes away, however it ends.

    Run first in every worker's initializer. SIGINT is ignored: on Ctrl-C the parent
    stops the workers itself (the terminal sends SIGINT to the whole process group,
    which would otherwise print a traceback per worker).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the thread below suffices
            pass
    if os.getppid() != parent_pid:  # the parent died before the watch was set
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="vmtool-parent-watch", daemon=True).start()


def _init(parent_pid: int, threads: int, initializer, initargs) -> None:
    die_with_parent(parent_pid)
    import torch

    torch.set_num_threads(max(1, threads))
    if initializer is not None:
        initializer(*initargs)


# --- checkpoints: the completed items of a stopped run ------------------------------------

PARTIAL_SUFFIX = ".vmtool-partial"
_MAGIC = b"VMTOOL-PARTIAL 1\n"
_HEAD = struct.Struct("<I")  # length of the JSON header that follows the magic line
_FRAME = struct.Struct("<4sIQI")  # b"ITEM", key length, result length, CRC-32 of key + result
_SYNC_SECONDS = 2.0


def partial_path(output: str | os.PathLike) -> Path:
    """The checkpoint file of *output*: ``<name>.vmtool-partial`` beside the file it resolves to."""
    real = Path(os.path.realpath(output))
    return real.parent / f"{real.name}{PARTIAL_SUFFIX}"


class _Hasher:
    def __init__(self) -> None:
        self.h = hashlib.sha256()

    def write(self, data) -> None:
        self.h.update(data)


def _digest(obj: Any) -> str:
    """A digest of *obj*'s pickle, without the memo: equal values give equal digests whether
    or not their parts are one object (``device="auto"`` and ``downbeats="auto"`` are one
    string in a script and two on the command line, and the memo would tell them apart)."""
    out = _Hasher()
    p = pickle.Pickler(out, protocol=5)
    p.fast = True  # no memo (the arguments are never self-referential)
    p.dump(obj)
    return out.h.hexdigest()[:32]


def _qualname(f: Callable[..., Any] | None) -> str | None:
    return None if f is None else f"{f.__module__}.{f.__qualname__}"


def _complete(res: Any) -> bool:
    """A result worth keeping: no failure in it (a failed item is tried again on resume)."""
    if isinstance(res, Failure):
        return False
    return not (isinstance(res, dict) and any(isinstance(v, Failure) for v in res.values()))


class _Subset:
    """The tasks still to run (indices *order* of *tasks*), remembering each one's key when read."""

    def __init__(self, tasks: Sequence[tuple[str, tuple]], order: list[int]):
        self.tasks, self.order = tasks, order
        self.keys: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, j: int) -> tuple[str, tuple]:
        label, args = self.tasks[self.order[j]]  # (tasks may be read lazily: hash what is read)
        if j not in self.keys:
            self.keys[j] = _digest((label, args))
        return label, args


class Checkpoint:
    """The completed items of a batch, kept in a side file until the output is written.

    The batch commands write their one output file when every item is back (never a
    half-written file), so without this a run stopped after hours (Ctrl-C, a killed
    client, a rebooted machine) would have nothing to continue from. Wrapped around a
    runner (:func:`run_batch` or a :class:`vmtool.cluster.ClusterRunner`) it appends
    every item's result to ``<output>.vmtool-partial`` as soon as the item completes,
    and with *resume* a later run of the same command hands back the results recorded
    there instead of running those items again. :meth:`finish` deletes the file once
    the output is in place.

    - An item is known by a digest of its task (label and arguments: the source path,
      its SHA-256, the item id, the methods...), a run by a digest of the per-item
      function, the initializer's arguments (the configuration, the model) and the
      vmtool version: a result is reused only for the same item of the same kind of run,
      so the output equals a run that was never stopped. A checkpoint of other settings
      is ignored (and replaced).
    - The file is written by the one process that holds the output's lock
      (:func:`vmtool.atomic.output_lock`), in frames with a CRC-32: a frame torn by a
      kill is dropped on resume, the frames before it are kept. It is flushed with
      every item and synced to disk every few seconds.
    - Results are stored as pickles (what worker processes and Dask send anyway): the
      file is only ever read by the same vmtool version, and one owned by another user
      is ignored.
    - Failed items are not recorded: a resumed run tries them again.
    - A run without *resume* starts afresh: it deletes an old checkpoint when it records
      its first item. Writing the checkpoint never fails a run: on an error (a full
      disk) it says so once and the run goes on without it.
    """

    def __init__(self, output: str | os.PathLike, *, resume: bool, progress: Progress | None = None):
        self.path = partial_path(output)
        self.resume = resume
        self.progress = progress or Progress()
        self.reused = 0
        self._index: dict[str, tuple[int, int]] = {}  # key -> (offset, length) of a recorded result
        self._run_id: str | None = None
        self._end = 0  # the end of the last whole frame of the file
        self._frames = 0  # whole frames in it
        self._fd: int | None = None
        self._synced = 0.0
        self._broken = False

    def wrap(self, runner: Callable[..., Iterator[tuple[int, Any]]]) -> Callable[..., Iterator[tuple[int, Any]]]:
        """*runner* with checkpoints: the same signature, the same ``(index, result)`` in input order."""

        def run(tasks: Sequence[tuple[str, tuple]], func: Callable[..., Any], **kwargs: Any):
            return self._run(runner, tasks, func, **kwargs)

        return run

    def finish(self) -> None:
        """The output is written: delete the checkpoint."""
        self._close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # --- running --------------------------------------------------------------------------

    def _run(self, runner, tasks, func, *, progress: Progress | None = None,
             initializer: Callable[..., None] | None = None, initargs: tuple = (), **kwargs: Any):
        progress = progress or self.progress
        self._open(_digest((_version(), _qualname(func), _qualname(initializer), initargs)))
        known: dict[int, tuple[str, str]] = {}  # index -> (label, key) of a recorded result
        todo = list(range(len(tasks)))
        if self._index:
            todo = []
            for i in range(len(tasks)):
                label, args = tasks[i]
                key = _digest((label, args))
                if key in self._index:
                    known[i] = (label, key)
                else:
                    todo.append(i)
            if known:
                progress.log(f"continuing a stopped run: {len(known)} item(s) read from {self.path}")
        sub = _Subset(tasks, todo)

        def record(j: int, res: Any) -> None:
            if _complete(res):
                if j not in sub.keys:
                    sub[j]
                self._append(sub.keys[j], res)

        if not todo and hasattr(runner, "close"):
            runner.close()  # every item was recorded: a cluster's client is not needed
        inner = iter(runner(sub, func, progress=progress, initializer=initializer, initargs=initargs,
                            on_result=record, **kwargs)) if todo else iter(())
        try:
            for i in range(len(tasks)):
                if i in known:
                    label, key = known.pop(i)
                    res = self._load(key)
                    self.reused += 1
                    progress.file_done(label, True)
                    yield i, res
                else:
                    j, res = next(inner)
                    sub.keys.pop(j, None)
                    yield todo[j], res
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()  # cancels what is still running
            self._close()

    # --- the file -------------------------------------------------------------------------

    def _warn(self, message: str) -> None:
        self.progress.log(f"{self.path}: {message}")

    def _open(self, run_id: str) -> None:
        self._run_id = run_id
        self._index.clear()
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            self._warn(f"cannot read the checkpoint ({exc.strerror}); every item is computed again")
            return
        if not self.resume:
            self._warn("discarding the checkpoint of a stopped run: without --resume every item is computed again")
            return
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            self._warn("ignoring the checkpoint: not a regular file of yours")
            return
        try:
            with open(self.path, "rb") as f:
                head = self._read_head(f)
                if head is None or head.get("vmtool") != _version() or head.get("run") != run_id:
                    self._warn("ignoring the checkpoint of a run with other settings (or another vmtool version)")
                    return
                self._end = f.tell()
                self._scan(f)
        except OSError as exc:
            self._warn(f"cannot read the checkpoint ({exc.strerror}); every item is computed again")
            self._index.clear()

    @staticmethod
    def _read_head(f) -> dict[str, Any] | None:
        if f.read(len(_MAGIC)) != _MAGIC:
            return None
        raw = f.read(_HEAD.size)
        if len(raw) < _HEAD.size:
            return None
        (n,) = _HEAD.unpack(raw)
        try:
            head = json.loads(f.read(n))
        except ValueError:
            return None
        return head if isinstance(head, dict) else None

    def _scan(self, f) -> None:
        """Index the whole frames after the header; stop at the first torn or damaged one."""
        while True:
            raw = f.read(_FRAME.size)
            if len(raw) < _FRAME.size:
                return
            tag, klen, rlen, crc = _FRAME.unpack(raw)
            if tag != b"ITEM" or klen > 1024:
                return
            key = f.read(klen)
            start = f.tell()
            check = zlib.crc32(key)
            left = rlen
            while left:
                block = f.read(min(left, 1 << 20))
                if not block:
                    return
                check = zlib.crc32(block, check)
                left -= len(block)
            if check != crc:
                return
            self._index[key.decode("ascii", "replace")] = (start, rlen)
            self._end = f.tell()

    def _load(self, key: str) -> Any:
        start, n = self._index[key]
        with open(self.path, "rb") as f:
            f.seek(start)
            return pickle.loads(f.read(n))

    def _append(self, key: str, res: Any) -> None:
        if self._broken:
            return
        try:
            data = pickle.dumps(res, protocol=5)
            kb = key.encode("ascii")
            if self._fd is None:
                self._fd = self._start()
            frame = _FRAME.pack(b"ITEM", len(kb), len(data), zlib.crc32(data, zlib.crc32(kb)))
            _write_all(self._fd, frame + kb)
            _write_all(self._fd, data)
            self._end += len(frame) + len(kb) + len(data)
            self._frames += 1
            if time.monotonic() - self._synced > _SYNC_SECONDS:
                os.fsync(self._fd)
                self._synced = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - a checkpoint is a help, never a reason to fail the run
            self._broken = True
            if self._fd is not None:  # keep the whole frames, give back the space of a torn one
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._end)
                    if not self._frames:
                        self.path.unlink()
            self._close()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
            self._warn(f"cannot write the checkpoint ({reason}); this run goes on without one")

    def _start(self) -> int:
        """Open the file to append to: the checkpoint being continued, else a new one."""
        if self._index:
            fd = os.open(self.path, os.O_WRONLY)
            os.ftruncate(fd, self._end)  # drop a torn last frame
            os.lseek(fd, 0, os.SEEK_END)
            self._frames = len(self._index)
            return fd
        # a new file, moved into place whole (header included) over any older checkpoint; its
        # temporary name is one of the output's, so a run into it removes it if this process dies
        from vmtool.atomic import TMP_PREFIX, TMP_SUFFIX

        fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{self.path.name[:-len(PARTIAL_SUFFIX)]}.{os.getpid()}.",
                                   suffix=TMP_SUFFIX, dir=self.path.parent)
        try:
            head = json.dumps({"vmtool": _version(), "run": self._run_id}).encode()
            _write_all(fd, _MAGIC + _HEAD.pack(len(head)) + head)
            os.replace(tmp, self.path)
            self._end, self._frames = len(_MAGIC) + _HEAD.size + len(head), 0
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._synced = time.monotonic()
        return fd

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.fsync(fd)
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _version() -> str:
    from vmtool import __version__

    return __version__
