"""The one family of vmtool errors.

Every error a user can cause is a :class:`VmtoolError`. Each carries the exit code the
command line uses for it, and its message names the file (when there is one) and the
reason, on one line.

Exit codes (the command line's contract, see ``docs/cli.md``):

====  ==========================================================
0     success
1     a vmtool error: bad media, bad parameter value, failed item
2     usage error (unknown option, missing argument)
3     schema/format error: a file that is not a vmtool file of the
      expected kind or version, or whose content breaks the spec
130   interrupted (Ctrl-C, SIGINT)
143   terminated (SIGTERM): handled like Ctrl-C, worker processes
      stopped, no half-written output
====  ==========================================================
"""

from __future__ import annotations

import math
import os

__all__ = [
    "VmtoolError",
    "ParameterError",
    "MediaError",
    "FormatError",
    "DiskFull",
    "UsageError",
    "ExtractorUnavailable",
    "BatchFailed",
    "EXIT_OK",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "EXIT_FORMAT",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "Interrupted",
    "check_finite",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_FORMAT = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as shells report a process killed by it


class VmtoolError(Exception):
    """Base class of all errors vmtool raises on purpose.

    Parameters
    ----------
    message : str
        What went wrong, one line, without the file name.
    path : str or os.PathLike, optional
        The file concerned; it is put in front of the message.
    """

    exit_code = EXIT_ERROR

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.reason = " ".join(str(message).split())  # always one line
        self.path = os.fspath(path) if path is not None else None
        super().__init__(self.reason if self.path is None else f"{self.path}: {self.reason}")


class ParameterError(VmtoolError):
    """A parameter value that vmtool cannot use (exit code 1)."""


class MediaError(VmtoolError):
    """A media file that cannot be opened or decoded, or lacks a needed stream (exit 1)."""


class UsageError(VmtoolError):
    """An option value malformed or naming what does not exist, found only once its input is read, e.g. a
    ``--where`` filter on a field the catalog does not have (exit code 2, as a usage error typer finds)."""

    exit_code = EXIT_USAGE


class ExtractorUnavailable(VmtoolError):
    """An extractor that cannot run here, e.g. because its weights are absent (exit 1)."""


class DiskFull(VmtoolError):
    """An output that could not be written for lack of space (exit 1); nothing was kept."""


class FormatError(VmtoolError):
    """A file that is not a vmtool file of the expected kind/version, or is damaged (exit 3)."""

    exit_code = EXIT_FORMAT


class BatchFailed(VmtoolError):
    """No input of a batch (``extract``, ``segment``, ``analyze-structure``) succeeded (exit 1).

    Parameters
    ----------
    message, path
        As for :class:`VmtoolError` (*path* is the output that was not written).
    failures : sequence of (label, message)
        Each input's own error, so that a user whose every input failed learns why,
        exactly as when some succeed.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None, failures=()):
        super().__init__(message, path)
        self.failures = [(str(label), str(msg)) for label, msg in failures]


class Interrupted(KeyboardInterrupt):
    """An interruption (Ctrl-C or SIGTERM) that says what is on disk.

    It is a :class:`KeyboardInterrupt`, so every ``except KeyboardInterrupt`` cleanup
    runs as for Ctrl-C.

    Parameters
    ----------
    message : str, optional
        What the user should know, e.g. that ``train`` left its last checkpoint in
        place; default: nothing was written or changed.
    exit_code : int
        130 for Ctrl-C (SIGINT), 143 for SIGTERM.
    """

    def __init__(self, message: str | None = None, exit_code: int = EXIT_INTERRUPTED):
        self.message = message or "interrupted; no output was written or changed"
        self.exit_code = exit_code
        super().__init__(self.message)


def check_finite(name: str, value, lo: float | None = None, hi: float | None = None) -> float:
    """*value* as a finite float above *lo* (and at most *hi*), or a ParameterError naming *name*.

    The message states the range: ``fps must be a finite number > 0.0, got nan``.
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or (lo is not None and v <= lo) or (hi is not None and v > hi):
        rng = f"in ({lo}, {hi}]" if hi is not None else f"> {lo}"
        raise ParameterError(f"{name} must be a finite number {rng}, got {value!r}")
    return v
