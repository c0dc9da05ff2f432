"""Speed of ``vmtool render`` per minute of video, against one decoding pass of that video.

    python benchmarks/bench_render.py [--minutes 1] [--write-docs]

Inputs (generated, cached in a temporary directory): a music video of --minutes at
320x180, 25 fps (h264 + AAC, shots on bar lines); a 90-s-longer synthetic track (wav,
22,050 Hz); a catalog of 8 generated 20-s clips (handcrafted + colour features, OLDA
sections, a 2-epoch segment-level model), whose recipe embeds the video and the track.

Rows, each timed once in this process, in wall-clock and CPU seconds (the process's
threads together). The machine is shared: the ratio to the reference, measured in the
same process right before, and the CPU seconds vary less with its load than the wall
seconds do:

- reference: decoding every frame of the video once with PyAV (``iter_frames``, native size);
- ``--start`` given: the rendering alone (decode the track, detect its beats, mix, encode
  AAC, copy the video stream) — nothing embedded;
- best section: the same plus embedding the video and the track with the catalog's recipe
  and aligning them (what a user waits for without ``--start``);
- ``--fit cuts``: the same with the video's shots found by TransNetV2 and NW-DTW.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

from _docs import write_block  # benchmarks run as scripts: this folder is on sys.path
from _record import corpus_features, load


def build_catalog(d: Path) -> Path:
    from vmtool.cli import app
    from typer.testing import CliRunner

    feats = corpus_features(d, "render-corpus", 8, 20.0)
    run = CliRunner().invoke
    for args in (["segment", str(feats), "-m", "olda", "-o", str(feats), "-q"],
                 ["train", str(feats), "-o", str(d / "model.pt"), "--level", "segment", "--segments", "olda",
                  "--epochs", "2", "-b", "8", "--val-fraction", "0.25", "-q"],
                 ["embed", str(feats), "--model", str(d / "model.pt"), "-o", str(d / "catalog.h5"), "-q"]):
        res = run(app, args)
        assert res.exit_code == 0, (args[0], res.output)
    return d / "catalog.h5"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    import warnings

    from vmtool import synth
    from vmtool.media import iter_frames
    from vmtool.render import render_preview

    warnings.simplefilter("ignore")
    seconds = 60.0 * args.minutes
    with tempfile.TemporaryDirectory(prefix="bench-render-") as d:
        d = Path(d)
        t = time.perf_counter()
        video = synth.make_clip(d / "video.mp4", duration=seconds, seed=1, size=(320, 180), tempo=120.0).path
        y, _ = synth.synth_music(duration=seconds + 90.0, sr=22050, tempo=118.0, sections="ABACAB", seed=2)
        track = synth.write_media(d / "track.wav", audio=y, sr=22050)
        cat = build_catalog(d)
        print(f"# inputs in {time.perf_counter() - t:.0f} s", flush=True)

        rows = []
        t, c = time.perf_counter(), time.process_time()
        n = sum(1 for _ in iter_frames(video, [None]))
        ref = time.perf_counter() - t
        rows.append((f"reference: decode the {n} frames once (PyAV)", ref, time.process_time() - c))
        for what, kw in (("`--start 30` (no embedding)", {"start": 30.0}),
                         ("best section (embed video and track, align)", {"catalog": cat}),
                         ("`--fit cuts` (TransNetV2 shots, NW-DTW, edits on beats)", {"catalog": cat, "fit": "cuts"})):
            t, c = time.perf_counter(), time.process_time()
            res = render_preview(video, track, d / "out.mp4", device="cpu", **kw)
            rows.append((what + f": {len(res.edits) - 1} edit(s)", time.perf_counter() - t, time.process_time() - c))
            print(f"# {rows[-1][0]}: {rows[-1][1]:.1f} s ({rows[-1][2]:.1f} s CPU)", flush=True)

    lines = [f"Measured {date.today().isoformat()} on {os.cpu_count()} CPU cores ({platform.machine()}); "
             f"a {seconds:g}-s generated video (320x180, 25 fps, h264 + AAC) under a {seconds + 90:g}-s "
             f"generated track, each row timed once; load average (1, 5, 15 min) at the end {load()}.", "",
             "| what | wall s per minute of video | / reference | CPU s per minute of video |",
             "|---|---:|---:|---:|"]
    for what, s, cpu in rows:
        lines.append(f"| {what} | {s / args.minutes:.1f} | {s / ref:.1f}x | {cpu / args.minutes:.1f} |")
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        write_block("bench_render", text,
                    "\n## Render\n\n"
                    "`python benchmarks/bench_render.py --write-docs`\n\n"
                    "What `vmtool render` costs per minute of video: the rendering itself (the track\n"
                    "decoded, its beats found, mixed, encoded as AAC; the picture copied without\n"
                    "decoding) against what embedding the video for the best section, and finding its\n"
                    "shots for `--fit cuts`, add. The reference, one decoding pass over the video's\n"
                    "frames, is measured in the same process: that ratio and the CPU seconds vary less\n"
                    "with the machine's load than the wall seconds do.\n\n")


if __name__ == "__main__":
    main()
