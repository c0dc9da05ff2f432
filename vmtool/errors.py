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
130   interrupted (Ctrl-C)
====  ==========================================================
"""

from __future__ import annotations

import os

__all__ = [
    "VmtoolError",
    "ParameterError",
    "MediaError",
    "FormatError",
    "UsageError",
    "ExtractorUnavailable",
    "EXIT_OK",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "EXIT_FORMAT",
    "EXIT_INTERRUPTED",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_FORMAT = 3
EXIT_INTERRUPTED = 130


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


class FormatError(VmtoolError):
    """A file that is not a vmtool file of the expected kind/version, or is damaged (exit 3)."""

    exit_code = EXIT_FORMAT
