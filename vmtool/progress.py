"""Progress reporting hooks.

The library reports progress through a :class:`Progress` object whose methods do
nothing by default; the command line passes one that draws bars on stderr. Nothing in
the library prints.
"""

from __future__ import annotations

__all__ = ["Progress"]


class Progress:
    """Receiver of progress events (all methods are no-ops; override what you need)."""

    def batch_start(self, total: int) -> None:
        """A batch of *total* files begins."""

    def file_start(self, path: str, work: float) -> None:
        """Work on *path* begins; *work* is its amount in seconds of media to process."""

    def file_advance(self, path: str, done: float) -> None:
        """*done* seconds of media of *path* are processed so far (cumulative)."""

    def file_done(self, path: str, ok: bool, message: str = "") -> None:
        """*path* is finished (or failed with *message*)."""

    def log(self, message: str) -> None:
        """An informational line."""
