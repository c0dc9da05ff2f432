"""Atomic, locked output files.

Every file vmtool writes is first written to a temporary file in the target's own
directory and then moved into place with :func:`os.replace`. A crash, an error or
Ctrl-C leaves the target as it was (absent, or its previous content) and removes the
temporary file; Make never sees a half-written target.

Temporary files are named ``.vmtool-tmp-<name>.<pid>.<random>.part``: the suffix is
never the target's (``find . -name '*.h5'`` or ``*.mp4`` never picks one up), and the
pid of the writing process lets the next run into the same output delete the
temporaries of runs that were killed (SIGKILL, power loss) without touching those of a
run that is still alive. Writers that choose their format from the file name (FFmpeg,
matplotlib) must therefore be given the format explicitly.

Two runs writing one output serialise on an exclusive :func:`fcntl.flock` lock held on
``.<name>.vmtool-lock`` beside the target for the whole read-modify-write (see
:func:`output_lock`): an ``extract --resume``, a ``merge`` into one of its inputs or a
``segment`` updating a file in place never loses another run's items. The lock file
holds the holder's pid, which the waiting run names when it gives up.

A disk that fills up while the temporary file is written ends in one
:class:`~vmtool.errors.VmtoolError` ("no space left on device writing OUT"); the
temporary file is removed and the target left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import inspect
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from vmtool.errors import DiskFull, ParameterError, VmtoolError

__all__ = ["atomic_output", "check_output_path", "output_lock", "locks_output", "same_file", "remove_stale_temporaries",
           "DEFAULT_WAIT", "LockWaitWarning"]

TMP_PREFIX = ".vmtool-tmp-"
TMP_SUFFIX = ".part"
LOCK_SUFFIX = ".vmtool-lock"
#: seconds a run waits for another run writing the same output (``--wait``)
DEFAULT_WAIT = 10.0
_POLL = 0.05
_TMP_RE = re.compile(r"^" + re.escape(TMP_PREFIX) + r"(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+"
                     + re.escape(TMP_SUFFIX) + r"$")
#: lock files this process holds: real lock path -> [fd, depth] (the lock is reentrant
#: within one process, so a command holding it for its read-modify-write can write
#: through :func:`atomic_output`, which takes it too)
_HELD: dict[str, list[int]] = {}


class LockWaitWarning(UserWarning):
    """Another run holds the output's lock; this run waits for it."""


def check_output_path(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (),
                      update_kind: str | None = None) -> Path:
    """Check that *path* can be written as an output file; return it as a Path.

    Parameters
    ----------
    path : path
        The output file.
    inputs : iterable of path, optional
        The command's input files. An output that is one of them (the same file, compared
        by device and inode, so a symlink or hard link to an input counts) is refused...
    update_kind : str, optional
        ...unless it is a vmtool file of this kind (``"collection"``), which the command
        updates in place, atomically.

    Raises
    ------
    VmtoolError
        If its directory does not exist or is not writable, or the path is a directory.
    ParameterError
        If it is one of *inputs* (and not a vmtool file of *update_kind*).
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise VmtoolError("output path is a directory", target)
    if not parent.is_dir():
        raise VmtoolError(f"output directory {str(parent)!r} does not exist", target)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise VmtoolError(f"output directory {str(parent)!r} is not writable", target)
    if target.exists():
        for src in inputs:
            if not same_file(src, target):
                continue
            kind = _vmtool_kind(target) if update_kind is not None else None
            if kind is None:
                raise ParameterError(f"is also an input ({src}); writing it would destroy that input: "
                                     "choose another output file", target)
            if kind != update_kind:
                raise ParameterError(f"is also an input ({src}) but a vmtool {kind!r} file, not a {update_kind!r} "
                                     "file (only those are updated in place); choose another output file", target)
    return target


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether *a* and *b* are one file (same device and inode: links count); False if either is absent."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def _vmtool_kind(path: Path) -> str | None:
    from vmtool.store import read_kind

    try:
        return read_kind(path)[0]
    except VmtoolError:
        return None


def _real(path: str | os.PathLike) -> Path:
    """*path* with symlinks followed (the file a write must replace), made absolute."""
    return Path(os.path.realpath(path))


def _lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}{LOCK_SUFFIX}"


def _holder(lock: Path) -> str:
    try:
        pid = int(lock.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return "another process"
    return f"pid {pid}"


@contextlib.contextmanager
def output_lock(path: str | os.PathLike, *, wait: float = DEFAULT_WAIT) -> Iterator[None]:
    """Hold the exclusive lock of output *path* (reentrant within a process).

    The lock is an :func:`fcntl.flock` on ``.<name>.vmtool-lock`` beside the file *path*
    resolves to (a symlinked output locks its target). A run that finds it held warns
    once (:class:`LockWaitWarning`) and polls for up to *wait* seconds. The lock file
    holds the holder's pid and is removed on release; the kernel drops the lock of a
    killed process, so a stale lock file never blocks anyone.

    Raises
    ------
    VmtoolError
        When the lock is still held after *wait* seconds (the message names the holder's pid).
    """
    if wait < 0 or wait != wait:
        raise ParameterError(f"--wait must be a number of seconds >= 0, got {wait}")
    lock = _lock_path(_real(path))
    key = str(lock)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    fd = _acquire(lock, wait, Path(path))
    _HELD[key] = [fd, 1]
    try:
        yield
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            os.unlink(lock)  # while still holding it: a waiter then re-opens a fresh file
        os.close(fd)


def _acquire(lock: Path, wait: float, display: Path) -> int:
    deadline = time.monotonic() + wait
    warned = False
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError:
            fd = os.open(lock, os.O_RDONLY)  # another user's lock file: flock works read-only
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if not isinstance(exc, BlockingIOError):
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                    os.close(fd)
                    raise
                # a file system without locks (some network mounts): go on, unprotected
                warnings.warn(f"{display}: cannot lock ({exc.strerror}); another run writing it at the "
                              "same time could lose items", LockWaitWarning, stacklevel=4)
                return fd
            os.close(fd)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise VmtoolError(f"is being written by another vmtool run ({_holder(lock)}); gave up after "
                                  f"waiting {wait:g} s (--wait SECONDS waits longer)", display) from None
            if not warned:
                warnings.warn(f"{display} is being written by another vmtool run ({_holder(lock)}); "
                              f"waiting up to {wait:g} s", LockWaitWarning, stacklevel=4)
                warned = True
            time.sleep(min(_POLL, remaining))
            continue
        # the previous holder unlinks the file before it unlocks: make sure ours is the
        # file now at that path, else another run may lock a new one at the same time
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        return fd


def locks_output(param: str = "output"):
    """Decorate a library function so that it holds :func:`output_lock` on its *param*
    argument (and waits its ``wait`` argument) for its whole run."""

    def deco(func):
        sig = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            out = check_output_path(bound.arguments[param])
            with output_lock(out, wait=bound.arguments.get("wait", DEFAULT_WAIT)):
                return func(*args, **kwargs)

        return wrapper

    return deco


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of dead runs into output *path*; return them.

    Only files named for this output whose writer pid no longer exists are removed;
    a live run's temporary file is never touched.
    """
    target = _real(path)
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            m = _TMP_RE.match(entry.name)
            if m and m["name"] == target.name and int(m["pid"]) != os.getpid() and not _pid_alive(int(m["pid"])):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def is_disk_full(exc: BaseException) -> bool:
    """Whether *exc* is a write that failed for lack of space (or quota)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # h5py and torch wrap the C library's error in a message without errno
    text = str(exc)
    return isinstance(exc, (OSError, RuntimeError)) and ("No space left on device" in text or "errno = 28" in text)


def _no_space_left(directory: Path) -> bool:
    """Whether the file system of *directory* is full (a writer such as torch.save
    reports a failed write without saying why)."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, seed: str | os.PathLike | None = None,
                  wait: float = DEFAULT_WAIT) -> Iterator[Path]:
    """Yield a temporary path next to *path*; move it onto *path* when the block succeeds.

    Parameters
    ----------
    path : str or os.PathLike
        The final output file. A symlink is written through: its target is replaced.
    seed : str or os.PathLike, optional
        A file copied to the temporary path first (to update an existing file without
        touching it until the update is complete). May be *path* itself.
    wait : float
        Seconds to wait for another run holding the output's lock (see :func:`output_lock`).

    Notes
    -----
    On any exception, ``KeyboardInterrupt`` included, the temporary file is deleted and
    the target is left untouched. The temporary path ends in ``.part``: a writer that
    picks its format from the name needs the format given explicitly.

    Raises
    ------
    VmtoolError
        "no space left on device writing OUT" when the disk (or quota) fills up.
    """
    shown = check_output_path(path)
    target = _real(shown)
    with output_lock(shown, wait=wait):
        remove_stale_temporaries(target)
        fd, tmp_name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{target.name}.{os.getpid()}.", suffix=TMP_SUFFIX,
                                        dir=target.parent)
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
        except BaseException as exc:
            # judged before the temporary file is deleted (which frees its space)
            full = is_disk_full(exc) or (isinstance(exc, (OSError, RuntimeError)) and _no_space_left(target.parent))
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            if full:
                raise DiskFull(f"no space left on device writing {shown}") from None
            raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
