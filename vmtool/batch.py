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

import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from pathlib import Path
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from vmtool.errors import ParameterError, VmtoolError
from vmtool.progress import Progress

__all__ = ["run_batch", "Failure", "record_failure", "in_input_order", "die_with_parent", "stop_workers"]


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
