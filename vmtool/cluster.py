"""Running the items of a batch command as tasks on a Dask cluster.

The batch commands (``extract``, ``segment``, ``embed``) hand their items to
:func:`vmtool.batch.run_batch` for a local run. Given a scheduler address they hand the
same items to :class:`ClusterRunner` instead: every item becomes one Dask task running
the same per-item function on a worker, and the results come back to the client, which
alone writes the output file, in input order, exactly as in a local run.

- ``local:N`` starts a :class:`distributed.LocalCluster` of N worker processes (one
  thread each) for this run; an existing file is a scheduler file (the JSON that
  ``dask scheduler --scheduler-file`` writes); any other value is the address of a
  running scheduler (``tcp://host:8786``).
- A worker that dies loses only the items it was running: the scheduler gives them to
  another worker, up to Dask's ``distributed.scheduler.allowed-failures`` times (3 by
  default) before the item fails (``KilledWorker``). vmtool's own per-item errors are
  deterministic (a broken file stays broken) and are not retried.
- Workers read the media at the client's paths (shared storage); with ``send_media``
  the client sends each file's bytes with its task instead. A worker that cannot read a
  path fails that item with a message naming the file and the worker.
- The client records every completed item in the output's checkpoint when the command
  gives one (:class:`vmtool.batch.Checkpoint`, the same as for a local run), so a
  stopped run continues with ``--resume``.
- Every worker must run the client's vmtool version: the client asks every connected
  worker when it connects, and every task checks again on the worker that runs it
  (workers can join later), so a mixed cluster is refused with both versions named.

Dask (``dask`` + ``distributed``) is an optional dependency: ``pip install vmtool[cluster]``.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from vmtool import __version__
from vmtool.batch import Checkpoint, Failure, record_failure
from vmtool.errors import ParameterError, VmtoolError
from vmtool.progress import Progress

__all__ = ["ClusterRunner", "SCHEDULER_ENV", "first_arg", "replace_first_arg", "connect"]

SCHEDULER_ENV = "VMTOOL_SCHEDULER"
CONNECT_TIMEOUT = 5.0  # seconds; an unreachable scheduler is reported well within 10 s
LOCAL_PREFIX = "local:"


# --- where a task's media file is (module-level: shipped to the workers by reference) ------

def first_arg(args: tuple) -> str | None:
    """The media path of a task whose first argument is the path (``extract``)."""
    return str(args[0])


def replace_first_arg(args: tuple, path: str) -> tuple:
    return (path, *args[1:])


# --- the worker side ---------------------------------------------------------------------

_STATE: dict[str, Any] = {"token": None}
_LOCK = threading.Lock()


def _worker_name() -> str:
    try:
        from distributed import get_worker

        w = get_worker()
        return f"{w.address} (host {os.uname().nodename})"
    except (ImportError, ValueError):
        return f"pid {os.getpid()} (host {os.uname().nodename})"


def _run_task(func: Callable[..., Any], args: tuple, version: str, token: str,
              init: tuple[Callable[..., None] | None, tuple],
              media: Callable[[tuple], str | None] | None,
              relocate: Callable[[tuple, str], tuple] | None,
              shipped: tuple[str, bytes] | None) -> Any:
    """Run one item on a worker: check the version, initialise once per run, run *func*.

    Items run one at a time per worker process (the per-item functions keep their
    models in module state, and torch parallelises within an item).
    """
    if version != __version__:
        raise VmtoolError(f"worker {_worker_name()} runs vmtool {__version__} but the client runs vmtool {version}; "
                          "install the same vmtool version on every worker")
    with _LOCK:
        initializer, initargs = init
        if _STATE["token"] != token:
            if initializer is not None:
                initializer(*initargs)
            _STATE["token"] = token
        if shipped is not None and relocate is not None:
            name, data = shipped
            original = media(args) if media is not None else name
            with tempfile.TemporaryDirectory(prefix="vmtool-media-") as td:
                local = str(Path(td) / name)
                Path(local).write_bytes(data)
                try:
                    return _rename(func(*relocate(args, local)), local, original)
                except VmtoolError as exc:
                    raise type(exc)(str(exc).replace(local, original)) from None
        path = media(args) if media is not None else None
        if path is not None and not os.access(path, os.R_OK):
            why = "does not exist" if not os.path.exists(path) else "is not readable"
            raise VmtoolError(f"{why} on worker {_worker_name()}; put the media on storage every worker "
                              "mounts at the same path, or give --send-media", path)
        return func(*args)


def _rename(result: Any, local: str, original: str) -> Any:
    """*result* with the worker's temporary media path replaced by the client's, in failures."""
    if isinstance(result, Failure):
        return Failure(result.label, result.message.replace(local, original))
    if isinstance(result, dict):
        return {k: _rename(v, local, original) for k, v in result.items()}
    return result


# --- the client side ---------------------------------------------------------------------

def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ParameterError("--scheduler needs Dask: pip install 'vmtool[cluster]' "
                             "(the packages dask and distributed)") from None
    return distributed


def connect(scheduler: str, progress: Progress | None = None):
    """Open a client for *scheduler*; return ``(client, cluster_or_None)``.

    Raises
    ------
    ParameterError
        A malformed ``local:N``.
    VmtoolError
        The scheduler cannot be reached within :data:`CONNECT_TIMEOUT` seconds, or a
        worker lacks vmtool or runs another version.
    """
    distributed = _import_distributed()
    import logging

    progress = progress or Progress()
    cluster = None
    if scheduler.startswith(LOCAL_PREFIX):
        n = scheduler[len(LOCAL_PREFIX):]
        if not n.isdigit() or int(n) < 1:
            raise ParameterError(f"--scheduler local:N needs a number of worker processes N >= 1, got {scheduler!r}")
        cluster = distributed.LocalCluster(n_workers=int(n), threads_per_worker=1, processes=True,
                                           dashboard_address=":0", silence_logs=logging.CRITICAL)
        address = cluster.scheduler_address
    elif os.path.isfile(scheduler):  # a scheduler file (dask scheduler --scheduler-file, dask-jobqueue)
        import json

        try:
            address = json.loads(Path(scheduler).read_text())["address"]
        except (OSError, ValueError, KeyError, TypeError):
            raise VmtoolError("is not a Dask scheduler file (JSON with an 'address')", scheduler) from None
    else:
        address = scheduler
    try:
        _probe(address)
        client = distributed.Client(address, timeout=f"{CONNECT_TIMEOUT}s", set_as_default=False)
    except Exception as exc:  # noqa: BLE001 - whatever the network gives, one line naming the address
        if cluster is not None:
            cluster.close()
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise VmtoolError(f"cannot reach the Dask scheduler at {scheduler!r} "
                          f"({reason})") from None
    try:
        check_versions(client)
    except BaseException:
        client.close()
        if cluster is not None:
            cluster.close()
        raise
    link = client.dashboard_link if cluster is not None or "dashboard" in client.scheduler_info().get("services", {}) \
        else None
    progress.log(f"Dask scheduler {address}" + (f"; dashboard {link}" if link else ""))
    return client, cluster


class _NoScheduler(Exception):
    """The scheduler address cannot be used (the message says why, for one line)."""


def _probe(address: str) -> None:
    """Open and close one connection with Dask's handshake, within :data:`CONNECT_TIMEOUT` in all.

    A TCP connection first: a refused connection or an unknown host is reported at once
    (Dask's own connect retries those until its timeout), and an address that accepts
    the connection but fails Dask's handshake (a web server, the dashboard's port) is
    told apart from one that cannot be reached. It also leaves no client behind (a
    :class:`distributed.Client` whose first connection fails still tries to close
    itself when garbage-collected, which costs another timeout at exit).

    Raises
    ------
    _NoScheduler
    """
    import asyncio
    import socket

    from distributed.comm import connect as comm_connect
    from distributed.comm.addressing import parse_address, parse_host_port

    deadline = time.monotonic() + CONNECT_TIMEOUT
    try:
        scheme, location = parse_address(address)
        if scheme in ("tcp", "tls"):
            host, port = parse_host_port(location)
    except ValueError as exc:
        raise _NoScheduler(str(exc)) from None
    if scheme in ("tcp", "tls"):
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
        except TimeoutError:
            raise _NoScheduler(f"no answer within {CONNECT_TIMEOUT:g} s") from None
        except OSError as exc:
            raise _NoScheduler((exc.strerror or type(exc).__name__).lower()) from None

    async def once() -> None:
        left = max(0.5, deadline - time.monotonic())
        comm = await asyncio.wait_for(comm_connect(address, timeout=left), left)
        await comm.close()

    try:
        asyncio.run(once())
    except Exception as exc:  # noqa: BLE001 - garbage from a web server can fail anywhere in the handshake
        if scheme == "tcp":  # (with tls the certificates' error says more)
            raise _NoScheduler("it accepts connections but does not answer as a Dask scheduler; is it the "
                               "dashboard's port? a scheduler listens on 8786 by default") from None
        raise _NoScheduler(" ".join(str(exc).split()) or type(exc).__name__) from None


def check_versions(client) -> None:
    """Refuse a cluster whose workers lack vmtool or run another version than this one."""
    import importlib.metadata

    found = client.run(importlib.metadata.version, "vmtool", on_error="return")
    for worker, v in sorted(found.items()):
        if isinstance(v, importlib.metadata.PackageNotFoundError):
            raise VmtoolError(f"worker {worker} has no vmtool installed (the client runs vmtool {__version__}); "
                              "install the same vmtool version on every worker")
        if isinstance(v, BaseException):
            raise VmtoolError(f"worker {worker} could not report its vmtool version: {type(v).__name__}: {v}")
        if v != __version__:
            raise VmtoolError(f"worker {worker} runs vmtool {v} but the client runs vmtool {__version__}; "
                              "install the same vmtool version on every worker")


def _close(client, cluster) -> None:
    try:
        client.close()
    finally:
        if cluster is not None:
            cluster.close()


class ClusterRunner:
    """A drop-in for :func:`vmtool.batch.run_batch` that runs the items on a Dask cluster.

    It connects when created (so an unreachable scheduler is reported before any local
    work) and disconnects after a batch, or when it is garbage-collected.

    Parameters
    ----------
    scheduler : str
        ``local:N`` or a scheduler address.
    send_media : bool
        Send each item's media bytes with its task (workers without shared storage).
    media, relocate : callable, optional
        ``media(args)`` -> the media path an item reads (None: it reads none);
        ``relocate(args, path)`` -> the args with the media at *path* (for *send_media*).
        Both must be module-level functions: they run on the workers.
    """

    def __init__(self, scheduler: str, *, send_media: bool = False, progress: Progress | None = None,
                 media: Callable[[tuple], str | None] | None = None,
                 relocate: Callable[[tuple, str], tuple] | None = None):
        self.scheduler = scheduler
        self.send_media = send_media
        self.media = media
        self.relocate = relocate
        self.client, self.cluster = connect(scheduler, progress)
        self._finalizer = weakref.finalize(self, _close, self.client, self.cluster)

    def close(self) -> None:
        self._finalizer()

    def _window(self) -> int:
        # a few tasks per worker thread in flight: workers never idle between items, and the
        # client holds (and, with send_media, reads) only that many items at a time
        return max(4, 2 * sum(self.client.nthreads().values()))

    def __call__(self, tasks: Sequence[tuple[str, tuple]], func: Callable[..., Any], *,
                 keep_going: bool = False, progress: Progress | None = None,
                 initializer: Callable[..., None] | None = None, initargs: tuple = (),
                 on_result: Callable[[int, Any], None] | None = None,
                 **_local_only: Any) -> Iterator[tuple[int, Any]]:
        """Like :func:`vmtool.batch.run_batch`: yield ``(index, result)`` in input order.

        ``workers``, ``work`` and ``in_process`` (local-run options) are accepted and ignored.
        """
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        progress = progress or Progress()
        token = uuid.uuid4().hex
        client = self.client
        # the initializer's arguments (configuration, model bytes) go to each worker once
        init = client.scatter([(initializer, initargs)], broadcast=True, hash=False)[0]
        pending: dict[Any, int] = {}
        done: dict[int, Any] = {}
        nxt = 0
        queue = iter(range(len(tasks)))
        ac = as_completed(loop=client.loop)
        window, refreshed = self._window(), time.monotonic()

        labels: dict[int, str] = {}  # tasks may be read lazily: each is read once, when submitted

        def submit(i: int) -> None:
            label, args = tasks[i]
            labels[i] = label
            shipped = None
            if self.send_media and self.media is not None:
                path = self.media(args)
                if path is not None and os.path.isfile(path):
                    try:
                        shipped = (Path(path).name, Path(path).read_bytes())
                    except OSError as exc:
                        raise VmtoolError(f"cannot read to send it: {exc.strerror}", path) from None
            fut = client.submit(_run_task, func, args, __version__, token, init, self.media, self.relocate, shipped,
                                key=f"vmtool-{getattr(func, '__module__', 'task').rsplit('.', 1)[-1]}-{i}-{token[:8]}",
                                pure=False, retries=0)
            pending[fut] = i
            ac.add(fut)  # (no per-item bar: a big cluster has hundreds in flight; the files bar counts completions)

        def fail(i: int, exc: BaseException):
            label = labels[i]
            if isinstance(exc, KilledWorker):
                last = getattr(exc.last_worker, "address", exc.last_worker)
                exc = VmtoolError(f"{exc.allowed_failures + 1} workers died while running it (the last: {last}); "
                                  "Dask's distributed.scheduler.allowed-failures sets how often an item is retried",
                                  label)
            elif isinstance(exc, ModuleNotFoundError) and "vmtool" in str(exc):
                exc = VmtoolError(f"a worker has no vmtool installed (the client runs vmtool {__version__}); "
                                  "install the same vmtool version on every worker")
            return record_failure(label, exc, progress, keep_going)

        try:
            for i in queue:
                submit(i)
                if len(pending) >= window:
                    break
            while pending:
                fut = next(ac)
                i = pending.pop(fut)
                if fut.cancelled():
                    raise VmtoolError("the Dask scheduler cancelled the task (was the scheduler restarted?)",
                                      labels[i])
                if fut.status == "finished":
                    done[i] = fut.result()
                    if on_result is not None:
                        on_result(i, done[i])
                    progress.file_done(labels[i], True)
                else:
                    done[i] = fail(i, fut.exception())
                fut.release()
                del labels[i]
                if time.monotonic() - refreshed > 2.0:
                    window, refreshed = self._window(), time.monotonic()
                for j in queue:
                    submit(j)
                    if len(pending) + len(done) >= window:
                        break
                while nxt in done:
                    yield nxt, done.pop(nxt)
                    nxt += 1
        finally:
            if pending:
                client.cancel(list(pending))
            client.cancel(init)
            self.close()


def runner_for(scheduler: str | None, *, send_media: bool = False, progress: Progress | None = None,
               media: Callable[[tuple], str | None] | None = None,
               relocate: Callable[[tuple, str], tuple] | None = None,
               checkpoint: Checkpoint | None = None):
    """:func:`vmtool.batch.run_batch` when *scheduler* is None or empty, else a connected
    :class:`ClusterRunner`; wrapped by *checkpoint* when given (the same mechanism for
    both: a run stopped on a cluster can be resumed locally, and the other way round)."""
    if not scheduler:
        if send_media:
            raise ParameterError("--send-media needs --scheduler")
        from vmtool.batch import run_batch

        runner = run_batch
    else:
        runner = ClusterRunner(scheduler, send_media=send_media, progress=progress, media=media, relocate=relocate)
    return checkpoint.wrap(runner) if checkpoint is not None else runner
