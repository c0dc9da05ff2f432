"""librosa's beat kernels are built with numba's on-disk cache, and still work without it."""

from __future__ import annotations

import json
import subprocess
import sys

CODE = """
import json, sys
import numba
import numpy as np

FAIL = {fail}
calls = []
real = numba.guvectorize

def recorder(*args, **kwargs):
    f = sys._getframe(1)
    while f.f_globals.get("__name__") == "vmtool._librosa":  # through vmtool's wrapper
        f = f.f_back
    if f.f_globals.get("__name__") != "librosa.beat":
        return real(*args, **kwargs)  # other modules' kernels: untouched
    calls.append(bool(kwargs.get("cache")))
    if FAIL and len(calls) == 1:  # caching the first kernel, which librosa ships uncached, fails
        raise RuntimeError("cannot cache function: no locator available")
    return real(*args, **kwargs)

numba.guvectorize = recorder
from vmtool._librosa import import_librosa_beat
beat = import_librosa_beat()
sr = 22050
y = np.zeros(sr * 8, dtype=np.float32)
y[:: sr // 2] = 1.0  # clicks at 120 BPM
tempo, frames = beat.beat_track(y=y, sr=sr)
print(json.dumps({{"calls": calls, "tempo": float(np.atleast_1d(tempo)[0]), "n": int(len(frames)),
                  "restored": numba.guvectorize is recorder}}))
"""


def _run(fail: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", CODE.format(fail=fail)], capture_output=True, text=True,
                         timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_beat_kernels_are_built_with_the_cache():
    r = _run(False)
    assert r["calls"] == [True] * 5, r  # librosa.beat's five gufuncs, built with cache=True
    assert r["restored"]  # numba is left as it was
    assert abs(r["tempo"] - 120.0) < 3.0 and r["n"] >= 12


def test_without_a_cache_location_librosa_beat_is_imported_as_shipped():
    r = _run(True)
    assert r["calls"] == [True, False, True, True, True, True], r  # tried, then imported as shipped
    assert r["restored"] and abs(r["tempo"] - 120.0) < 3.0 and r["n"] >= 12
