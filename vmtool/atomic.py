"""Atomic output files.

Every file vmtool writes is first written to a temporary file in the target's own
directory and then moved into place with :func:`os.replace`. A crash, an error or
Ctrl-C leaves the target as it was (absent, or its previous content) and removes the
temporary file; Make never sees a half-written target.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vmtool.errors import VmtoolError

__all__ = ["atomic_output", "check_output_path"]

TMP_PREFIX = ".vmtool-tmp-"


def check_output_path(path: str | os.PathLike) -> Path:
    """Check that *path* can be written as an output file; return it as a Path.

    Raises
    ------
    VmtoolError
        If its directory does not exist or is not writable, or the path is a directory.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise VmtoolError("output path is a directory", target)
    if not parent.is_dir():
        raise VmtoolError(f"output directory {str(parent)!r} does not exist", target)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise VmtoolError(f"output directory {str(parent)!r} is not writable", target)
    return target


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, seed: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temporary path next to *path*; move it onto *path* when the block succeeds.

    Parameters
    ----------
    path : str or os.PathLike
        The final output file.
    seed : str or os.PathLike, optional
        A file copied to the temporary path first (to update an existing file without
        touching it until the update is complete). May be *path* itself.

    Notes
    -----
    On any exception, ``KeyboardInterrupt`` included, the temporary file is deleted and
    the target is left untouched.
    """
    target = check_output_path(path)
    # keep the extension: writers such as FFmpeg pick the format from it
    fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX + target.stem + ".", suffix=target.suffix,
                                    dir=target.parent if str(target.parent) else ".")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if seed is not None:
            shutil.copyfile(seed, tmp)
        else:
            tmp.unlink()  # let the writer create it fresh
        yield tmp
        if target.exists():
            # keep the permissions the user gave the existing file
            shutil.copymode(target, tmp)
        else:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
