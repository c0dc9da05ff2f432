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


RARE = """
import json, sys
import numpy as np
THROUGH_VMTOOL = {through}
if THROUGH_VMTOOL:
    from vmtool._librosa import import_librosa_beat, _OnFirstUse
    import_librosa_beat()
import librosa, librosa.beat
import librosa.core.audio as audio, librosa.core.pitch as pitch, librosa.util.utils as uu
kernels = [(audio, "_zc_wrapper"), (pitch, "_pi_wrapper"), (uu, "_localmin"), (uu, "__peak_pick")]
deferred = [THROUGH_VMTOOL and isinstance(getattr(m, n), _OnFirstUse) and getattr(m, n)._real is None
            for m, n in kernels]
y = np.random.default_rng(0).standard_normal(22050).astype(np.float32)
out = {{
    "zcr": librosa.feature.zero_crossing_rate(y).tolist(),
    "localmin": np.flatnonzero(librosa.util.localmin(y[:1000])).tolist(),
    "peaks": librosa.util.peak_pick(np.abs(y[:2000]), pre_max=3, post_max=3, pre_avg=3, post_avg=5, delta=0.5,
                                    wait=10).tolist(),
    "shift": pitch._parabolic_interpolation(np.abs(y[:2048]).reshape(32, 64)).tolist(),
}}
built = [not THROUGH_VMTOOL or getattr(m, n)._real is not None for m, n in kernels]
print(json.dumps({{"deferred": deferred, "built": built, "out": out}}))
"""


def test_rarely_used_kernels_are_built_on_first_call_with_librosas_results():
    """Zero crossings, pitch interpolation, local minima and peak picking: not built when
    librosa is imported through vmtool, built on their first call, the numbers of librosa
    imported as shipped."""
    runs = {}
    for through in (True, False):
        proc = subprocess.run([sys.executable, "-c", RARE.format(through=through)], capture_output=True, text=True,
                              timeout=600, check=True)
        runs[through] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert runs[True]["deferred"] == [True] * 4 and runs[True]["built"] == [True] * 4
    assert runs[True]["out"] == runs[False]["out"]
    assert len(runs[True]["out"]["peaks"]) > 0 and len(runs[True]["out"]["localmin"]) > 0


def test_a_kernel_built_on_first_use_holds_the_build_lock(monkeypatch):
    # the lock that keeps two processes from writing one kernel's cache files at once
    import contextlib

    import vmtool._librosa as lr

    held = []

    @contextlib.contextmanager
    def recording():
        held.append("in")
        yield
        held.append("out")

    monkeypatch.setattr(lr, "_numba_build_lock", recording)
    seen = []
    proxy = lr._OnFirstUse(lambda: seen.append(list(held)) or (lambda x: x + 1),
                           test_a_kernel_built_on_first_use_holds_the_build_lock)
    assert held == [] and proxy(1) == 2 and proxy(2) == 3
    assert seen == [["in"]] and held == ["in", "out"]  # built once, inside the lock


def test_without_a_usable_lock_file_a_kernel_is_built_unlocked(tmp_path, monkeypatch):
    import tempfile

    import vmtool._librosa as lr

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))  # no temporary directory
    built = lr._OnFirstUse(lambda: (lambda x: 2 * x), test_without_a_usable_lock_file_a_kernel_is_built_unlocked)
    assert built(4) == 8
