"""Long inputs in bounded memory: peak RSS and time per input-minute of extract and segment.

Usage::

    python benchmarks/bench_long_inputs.py [--audio-minutes 30,120] [--video-minutes 15,60]
                                           [--dir DIR] [--write-docs]

Generates (streamed, so the generator itself stays small) a long audio file (flac,
22,050 Hz mono: a 60-s synthetic piece repeated) and a long video (mp4, 64x36, 25 fps,
h264 + aac, frames of a 60-s synthetic music video repeated) at each duration, then runs
each command as a separate ``vmtool`` process, one at a time, and reads that process's
peak resident memory from ``wait4`` (``ru_maxrss``):

- ``extract AUDIO -a handcrafted -v none`` (VM-Net's librosa descriptors, streamed);
- ``extract VIDEO -a handcrafted -v color``;
- ``segment AUDIO -m beats`` (librosa's beat tracker needs the whole signal: the
  decoded audio at 22,050 Hz is 5.3 MB per minute);
- ``segment VIDEO -m fixed --window 10`` (the media path: probe and windows only).

Two durations per input show whether time and memory grow linearly. The target is a
peak RSS <= 1.5 GB at the longest duration. Prints a markdown table (with the load
average, which these 2-core machines rarely have to themselves); ``--write-docs`` puts
it into ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from _record import write_block  # benchmarks run as scripts: this folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"
START, END = "<!-- bench_long_inputs:start -->", "<!-- bench_long_inputs:end -->"
SR = 22050
SIZE = (64, 36)
FPS = 25


def _piece():
    from vmtool import synth

    y, music = synth.synth_music(duration=60.0, sr=SR, tempo=120.0, sections="ABAC", seed=0)
    frames = list(synth.iter_video_frames(music, fps=FPS, size=SIZE, seed=0))
    return np.clip(y, -1, 1).astype(np.float32), frames


def write_long_audio(path: Path, minutes: float, y: np.ndarray) -> None:
    import av

    n = int(minutes * 60 * SR)
    with av.open(str(path), "w", format="flac") as c:
        s = c.add_stream("flac", rate=SR)
        s.layout = "mono"
        pos = 0
        while pos < n:
            blk = y[: min(y.size, n - pos)]
            for off in range(0, blk.size, 4096):
                part = np.ascontiguousarray(blk[off:off + 4096])[None, :]
                f = av.AudioFrame.from_ndarray((part * 32767).astype(np.int16), format="s16", layout="mono")
                f.sample_rate, f.pts, f.time_base = SR, pos + off, Fraction(1, SR)
                c.mux(s.encode(f))
            pos += blk.size
        c.mux(s.encode(None))


def write_long_video(path: Path, minutes: float, y: np.ndarray, frames: list) -> None:
    import av

    n_frames = int(minutes * 60 * FPS)
    with av.open(str(path), "w", format="mp4") as c:
        v = c.add_stream("libx264", rate=FPS)
        v.width, v.height, v.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        v.options = {"preset": "ultrafast"}
        a = c.add_stream("aac", rate=SR)
        a.layout = "mono"
        apos = 0
        per_frame = SR // FPS
        abuf: list[np.ndarray] = []
        for i in range(n_frames):
            vf = av.VideoFrame.from_ndarray(frames[i % len(frames)], format="rgb24")
            vf.pts = i
            c.mux(v.encode(vf))
            start = (i * per_frame) % y.size
            abuf.append(y[start:start + per_frame])
            if len(abuf) == FPS:  # one second of audio at a time
                blk = np.concatenate(abuf)[None, :]
                abuf = []
                af = av.AudioFrame.from_ndarray(blk, format="flt", layout="mono")
                af.sample_rate, af.pts, af.time_base = SR, apos, Fraction(1, SR)
                apos += blk.shape[1]
                c.mux(a.encode(af))
        c.mux(v.encode(None))
        c.mux(a.encode(None))


def measure(args: list[str]) -> tuple[float, float]:
    """Run ``vmtool ARGS``; return (wall seconds, peak RSS in MB) of that process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "vmtool", *args, "-q"], env=env, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"vmtool {' '.join(args)} failed ({proc.returncode}): {err}")
    return wall, ru.ru_maxrss / 1024.0  # Linux: kilobytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--audio-minutes", default="30,120")
    ap.add_argument("--video-minutes", default="15,60")
    ap.add_argument("--dir", type=Path, default=None, help="Where to write the inputs (default: a temporary dir).")
    ap.add_argument("--write-docs", action="store_true")
    a = ap.parse_args()
    work = a.dir or Path(tempfile.mkdtemp(prefix="vmtool-long-"))
    work.mkdir(parents=True, exist_ok=True)
    y, frames = _piece()
    load_before = os.getloadavg()
    rows = []
    cases = [("audio", float(m)) for m in a.audio_minutes.split(",")] + \
            [("video", float(m)) for m in a.video_minutes.split(",")]
    for kind, minutes in cases:
        src = work / (f"long-{minutes:g}min.flac" if kind == "audio" else f"long-{minutes:g}min.mp4")
        if not src.exists():
            t0 = time.perf_counter()
            (write_long_audio(src, minutes, y) if kind == "audio" else write_long_video(src, minutes, y, frames))
            print(f"wrote {src} ({src.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr)
        runs = {
            "audio": [("extract -a handcrafted -v none", ["extract", str(src), "-a", "handcrafted", "-v", "none"]),
                      ("segment -m beats", ["segment", str(src), "-m", "beats"])],
            "video": [("extract -a handcrafted -v color", ["extract", str(src), "-a", "handcrafted", "-v", "color"]),
                      ("segment -m fixed --window 10", ["segment", str(src), "-m", "fixed", "--window", "10"])],
        }[kind]
        for label, cmd in runs:
            out = work / "out.h5"
            out.unlink(missing_ok=True)
            wall, rss = measure([*cmd, "-o", str(out)])
            row = (kind, minutes, label, wall, wall / minutes, rss, os.getloadavg()[0])
            rows.append(row)
            print(f"{kind} {minutes:g} min, {label}: {wall:.1f} s ({wall / minutes:.2f} s per input-minute), "
                  f"peak RSS {rss:.0f} MB, load {row[-1]:.1f}", file=sys.stderr, flush=True)
    table = ["| input | minutes | command | wall s | s per input-minute | peak RSS MB | load (1 min) |",
             "|---|---:|---|---:|---:|---:|---:|"]
    table += [f"| {k} | {m:g} | `{lab}` | {w:.1f} | {wm:.2f} | {r:.0f} | {ld:.1f} |" for k, m, lab, w, wm, r, ld in rows]
    text = "\n".join(table) + f"\n\nLoad average before the runs: {', '.join(f'{x:.1f}' for x in load_before)} " \
        f"(2 cores); Python {sys.version.split()[0]}.\n"
    print(text)
    if a.write_docs:
        write_block(f"{START}\n{text}{END}", START, END, "## Long inputs (bench_long_inputs.py)\n\n", doc=DOC)


if __name__ == "__main__":
    main()
