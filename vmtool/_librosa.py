"""librosa's beat tracker with its compiled kernels kept on disk, and a quicker ``scipy.signal``.

``librosa.beat`` builds five numba generalized ufuncs when it is imported; one of them,
``__beat_local_score``, with ``cache=False``: every process that tracks beats (``vmtool segment -m beats|bars``, the
MSAF methods through their beat-synchronous features, ``vmtool rank`` of a media query
segmented with them) spends about 2.5 s compiling them again. :func:`import_librosa_beat`
imports the module with ``cache=True`` on that module's decorators only, so numba stores the
machine code (in ``NUMBA_CACHE_DIR``, next to librosa, or in the user's cache) and later
processes load it. The functions and their results are librosa's own; if caching is not
possible the module is imported as librosa ships it.

numba writes the two files of a cached gufunc separately, so processes compiling the same
kernel at the same moment can leave a mismatched pair (numba issue 10128, reported as
crashes in librosa issue 1998). Commands that start worker processes therefore import
the module once in the parent first: the workers then only read the cache.

librosa also builds, at import, the gufuncs of zero crossings, pitch interpolation
(``piptrack``, ``pyin``; ``chroma_stft``'s tuning estimate uses it), local minima and onset
peak picking (:data:`ON_FIRST_USE`), which msaf's methods and the beat tracker never
call (``bars`` and the ``vmnet_handcrafted`` extractor do). Loading their machine code
from numba's cache took about 0.14 s of every process that imports librosa (0.1 s of a
one-file ``vmtool rank`` of the demo's media query, 6 alternated runs). Imported through
:func:`import_librosa_beat`, they are built on their first call instead, by the same
decorator with the same arguments, so the same machine code from the same cache
entries; a process building one first takes a lock on a file of the temporary
directory (:func:`_numba_build_lock`; without one, it builds unlocked, as librosa does), so
two processes never write one kernel's cache files at once (the race above), whichever
of them calls it first.

SciPy 1.17 rewrites the docstring of every function it declares array-API capabilities for
(``scipy._lib._array_api.xp_capabilities``: parse the numpydoc text, append a table of
backends, format it again) when the module defining it is imported: ``import scipy.signal``,
which librosa's features, msaf and the beat tracker need, took 0.62-0.82 s against
0.39-0.40 s with SciPy 1.16.3 on an idle 2-core machine. :func:`import_scipy_signal` imports
it with that rewriting skipped: the functions, and their docstrings as written, are
SciPy's; only the appended capabilities table (documentation of other array backends) is
missing. Where SciPy does not rewrite docstrings this way, the module is imported as usual.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from types import ModuleType

__all__ = ["import_librosa_beat", "import_scipy_signal", "ON_FIRST_USE"]

_LOCK = threading.Lock()

ON_FIRST_USE = ("_zc_wrapper", "_pi_wrapper", "_localmin", "__peak_pick")
"""librosa's gufuncs (``librosa.core.audio``, ``librosa.core.pitch``, ``librosa.util``)
built on their first call rather than when librosa is imported (see the module notes)."""


@contextlib.contextmanager
def _numba_build_lock():
    """Held while this process builds a kernel whose cache files another process could be
    writing: an exclusive lock on a file in the temporary directory (per user). Without
    ``fcntl`` (not POSIX), a usable temporary directory, or a lock file of its own
    (another user's, a link), nothing is locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = None
    try:
        path = os.path.join(tempfile.gettempdir(), f"vmtool-numba-build-{os.getuid()}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:  # no usable temporary directory, a file that is not ours, no locks here
        if fd is not None:
            os.close(fd)
            fd = None  # built without the lock, as librosa itself builds them
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


class _OnFirstUse:
    """Stands for a gufunc that numba builds on the first call (or attribute read)."""

    def __init__(self, build, func):
        self._build, self._real = build, None
        self._lock = threading.Lock()
        self.__name__, self.__qualname__, self.__doc__ = func.__name__, func.__qualname__, func.__doc__
        self.__module__ = func.__module__

    def _get(self):
        if self._real is None:
            with self._lock, _numba_build_lock():
                if self._real is None:
                    self._real = self._build()
        return self._real

    def __call__(self, *args, **kwargs):
        return self._get()(*args, **kwargs)

    def __getattr__(self, name: str):
        if name in ("_build", "_real", "_lock") or name.startswith("__"):  # not set up (a copy): not the kernel's
            raise AttributeError(name)
        return getattr(self._get(), name)


def import_librosa_beat() -> ModuleType:
    """``librosa.beat``, imported with its numba kernels cached (idempotent)."""
    mod = sys.modules.get("librosa.beat")
    if mod is not None:
        return mod
    import_scipy_signal()  # librosa's features import it
    with _LOCK:
        mod = sys.modules.get("librosa.beat")
        if mod is not None:
            return mod
        import numba

        original = numba.guvectorize

        def guvectorize(*args, **kwargs):
            kwargs["cache"] = True
            build = original(*args, **kwargs)

            def decorate(func):
                if func.__name__ in ON_FIRST_USE:
                    return _OnFirstUse(lambda: build(func), func)
                return build(func)

            return decorate

        numba.guvectorize = guvectorize
        try:
            import librosa.beat

            return librosa.beat
        except Exception:  # noqa: BLE001 - no cache location: import it as shipped
            sys.modules.pop("librosa.beat", None)
        finally:
            numba.guvectorize = original
        import librosa.beat

        return librosa.beat


class _DocAsWritten:
    """Stands for scipy's ``FunctionDoc`` in ``xp_capabilities``: keeps the docstring as written."""

    def __init__(self, func) -> None:
        self._doc = getattr(func, "__doc__", None) or ""

    def __getitem__(self, section: str) -> list:
        return []  # the capabilities note is appended to a list nobody reads

    def __str__(self) -> str:
        return "\n" + self._doc  # xp_capabilities drops the first line (the signature)


def import_scipy_signal() -> ModuleType:
    """``scipy.signal``, imported without SciPy 1.17's docstring rewriting (idempotent)."""
    mod = sys.modules.get("scipy.signal")
    if mod is not None:
        return mod
    with _LOCK:
        mod = sys.modules.get("scipy.signal")
        if mod is not None:
            return mod
        try:
            import scipy._lib._array_api as api
        except ImportError:  # pragma: no cover - a SciPy without it rewrites nothing
            api = None
        original = getattr(api, "FunctionDoc", None)
        if original is not None and hasattr(api, "xp_capabilities"):
            api.FunctionDoc = _DocAsWritten
        try:
            import scipy.signal
        finally:
            if original is not None:
                api.FunctionDoc = original
        return scipy.signal
