"""Pieces shared by the subcommands: options, error handling, output, progress bars.

This is the only place where exit codes are decided: a library
:class:`~vmtool.errors.VmtoolError` becomes ``Error: <message>`` on stderr and its
exit code; Ctrl-C becomes exit code 130, SIGTERM 143.
"""

from __future__ import annotations

import enum
import functools
import json
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vmtool.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, DiskFull, Interrupted, VmtoolError
from vmtool.progress import Progress

# --- shared options (same names in every command) ------------------------------------------


class Format(str, enum.Enum):
    table = "table"
    json = "json"


OutputOpt = Annotated[Path, typer.Option("-o", "--output", help="Output file (written atomically).",
                                         dir_okay=False, show_default=False)]
DeviceOpt = Annotated[str, typer.Option("--device", help="Torch device: auto, cpu, cuda or cuda:N.",
                                        metavar="auto|cpu|cuda[:N]")]
WorkersOpt = Annotated[int, typer.Option("--workers", "-j", min=1, help="Files processed in parallel.")]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", help="No progress bars or log lines on stderr.")]
WaitOpt = Annotated[float, typer.Option(
    "--wait", min=0, metavar="SECONDS",
    help="Wait up to SECONDS for another vmtool run writing the same output, then fail naming its pid.")]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format on stdout.")]


def _version_callback(value: bool) -> None:
    if value:
        from vmtool import __version__

        typer.echo(f"vmtool {__version__}")
        raise typer.Exit()


VersionOpt = Annotated[bool, typer.Option("--version", callback=_version_callback, is_eager=True,
                                          expose_value=False, help="Show the version and exit.")]
SchedulerOpt = Annotated[Optional[str], typer.Option(
    "--scheduler", metavar="ADDRESS", envvar="VMTOOL_SCHEDULER", show_default=False,
    help="Run the items on a Dask cluster: a scheduler address (tcp://host:8786), a scheduler file, "
         "or local:N (N worker processes here). See docs/cluster.md.")]
SendMediaOpt = Annotated[bool, typer.Option(
    "--send-media", help="With --scheduler: send each media file to its worker (no shared storage).")]
IdsOpt = Annotated[Optional[Path], typer.Option("--ids", metavar="FILE", dir_okay=False, show_default=False,
                                                help="Only these items (one id per line; - reads stdin).")]


def expand_stdin(inputs: list[str]) -> list[str]:
    """*inputs* with each ``-`` replaced by the paths read from stdin (one per line)."""
    out: list[str] = []
    for x in inputs:
        if x == "-":
            out.extend(line.rstrip("\n") for line in sys.stdin if line.strip())
        else:
            out.append(x)
    return out


def read_ids(path: Path | None) -> list[str] | None:
    """The ids listed in *path* (one per line, blank lines ignored; ``-`` is stdin)."""
    from vmtool.errors import ParameterError

    if path is None:
        return None
    if str(path) == "-":
        text = sys.stdin.read()
    else:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ParameterError(f"cannot read: {exc.strerror}", path) from None
    ids = [line.strip() for line in text.splitlines() if line.strip()]
    if not ids:
        raise ParameterError("holds no id", path)
    return ids


def command_line(ctx: typer.Context) -> str:
    """The command line as the user typed it (for the ``command`` attribute of outputs)."""
    import shlex

    return shlex.join(["vmtool", *ctx.meta.get("vmtool_argv", [])])


# --- stderr ---------------------------------------------------------------------------------


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def error(message: str) -> None:
    """Print ``Error: message`` on stderr (one line, no markup)."""
    sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()


def info(message: str, quiet: bool = False) -> None:
    if not quiet:
        sys.stderr.write(f"{message}\n")
        sys.stderr.flush()


def _showwarning(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001
    sys.stderr.write(f"Warning: {message}\n")


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise Interrupted("terminated (SIGTERM); no output was written or changed", EXIT_TERMINATED)


#: exit codes that the console entry point must end the process with at once, skipping
#: the interpreter's exit handlers (see :func:`vmtool.cli.main`)
HARD_EXIT: list[int] = []


def _h5py_dealloc_noise(exc: BaseException | None) -> bool:
    """Whether *exc* is what h5py reports while freeing an object of a file whose write
    failed for lack of space (the file is discarded, and the one-line error says so)."""
    from vmtool.atomic import is_disk_full

    return isinstance(exc, RuntimeError) and "decrement id ref count" in str(exc) and is_disk_full(exc)


def _quiet_h5py_dealloc() -> None:
    """Filter that noise out of both channels h5py's deallocators print through."""
    if getattr(sys.unraisablehook, "_vmtool", False):
        return
    unraisable, excepthook = sys.unraisablehook, sys.excepthook

    def on_unraisable(args):
        if not _h5py_dealloc_noise(args.exc_value):
            unraisable(args)

    def on_except(kind, value, tb):
        if not _h5py_dealloc_noise(value):
            excepthook(kind, value, tb)

    on_unraisable._vmtool = True  # type: ignore[attr-defined]
    sys.unraisablehook, sys.excepthook = on_unraisable, on_except


def handle_errors(func):
    """Turn library errors into ``Error: ...`` + exit code, Ctrl-C into exit 130.

    SIGTERM (``kill``, a job scheduler, ``timeout``) is handled like Ctrl-C: the same
    cleanup (temporary files removed, worker processes stopped), exit code 143.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any):
        warnings.showwarning = _showwarning
        _quiet_h5py_dealloc()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            return func(*args, **kwargs)
        except VmtoolError as exc:
            for _, msg in getattr(exc, "failures", ()):  # BatchFailed: each input's own error first
                error(msg)
            error(str(exc))
            if isinstance(exc, DiskFull):
                HARD_EXIT.append(exc.exit_code)  # see vmtool.cli.main
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (see _on_sigterm)
            error(getattr(exc, "message", None) or "interrupted; no output was written or changed")
            raise typer.Exit(getattr(exc, "exit_code", EXIT_INTERRUPTED)) from None
        except Exception as exc:
            from vmtool.store import damaged_file_error

            damaged = damaged_file_error(exc)  # a damaged HDF5 file, found while reading it
            if damaged is None:
                raise
            error(str(damaged))
            raise typer.Exit(damaged.exit_code) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper


def echo_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def print_table(rich_table) -> None:
    """Render a rich Table on stdout (plain text when stdout is not a terminal)."""
    from rich.console import Console

    Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 200).print(rich_table)


# --- progress -------------------------------------------------------------------------------


class RichProgress(Progress):
    """Progress bars on stderr: one over files, one within the current file."""

    def __init__(self, enabled: bool):
        self.quiet = not enabled
        self.enabled = enabled and sys.stderr.isatty()
        self._progress = None
        self._files = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> RichProgress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RP, TextColumn, TimeRemainingColumn

            self._progress = RP(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), console=_stderr_console(), transient=True)
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def batch_start(self, total: int) -> None:
        if self._progress is not None:
            if self._files is not None:  # a new batch (the demo runs several stages)
                self._progress.remove_task(self._files)
                self._files = None
            if total > 1:
                self._files = self._progress.add_task("files", total=total)

    def file_start(self, path: str, work: float) -> None:
        if self._progress is not None:
            name = Path(path).name
            self._tasks[path] = self._progress.add_task(name[:40], total=max(work, 1e-9))

    def file_advance(self, path: str, done: float) -> None:
        if self._progress is not None and path in self._tasks:
            self._progress.update(self._tasks[path], completed=done)

    def file_done(self, path: str, ok: bool, message: str = "") -> None:
        if self._progress is not None:
            task = self._tasks.pop(path, None)
            if task is not None:
                self._progress.remove_task(task)
            if self._files is not None:
                self._progress.advance(self._files)

    def log(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message, markup=False)
        else:
            info(message, self.quiet)
