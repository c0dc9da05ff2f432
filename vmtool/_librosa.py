"""librosa's beat tracker with its compiled kernels kept on disk.

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
"""

from __future__ import annotations

import sys
import threading
from types import ModuleType

__all__ = ["import_librosa_beat"]

_LOCK = threading.Lock()


def import_librosa_beat() -> ModuleType:
    """``librosa.beat``, imported with its numba kernels cached (idempotent)."""
    mod = sys.modules.get("librosa.beat")
    if mod is not None:
        return mod
    with _LOCK:
        mod = sys.modules.get("librosa.beat")
        if mod is not None:
            return mod
        import numba

        original = numba.guvectorize

        def guvectorize(*args, **kwargs):
            kwargs["cache"] = True
            return original(*args, **kwargs)

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
