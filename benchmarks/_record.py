"""Shared by the benchmarks: the load average, writing a block into docs/performance.md, and a
generated corpus extracted once into a cached features file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"


def load() -> str:
    """The 1, 5 and 15-minute load averages, as printed next to every figure."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def write_block(block: str, start: str, end: str, section: str, doc: Path = DOC) -> None:
    """Replace the text between the *start* and *end* markers of *doc* with *block*
    (which holds the markers), or append *section* and *block* when the markers are absent."""
    text = doc.read_text()
    if start in text:
        a, b = text.index(start), text.index(end) + len(end)
        text = text[:a] + block + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + block + "\n"
    doc.write_text(text)


def corpus_features(cache: Path, stem: str, n: int, duration: float, *, labels: bool = False, **corpus) -> Path:
    """``CACHE/STEM.h5``: *n* clips of *duration* s made by ``vmtool.synth.make_corpus`` (64x36,
    seed 2026, *corpus* passed on) in ``CACHE/STEM``, extracted with handcrafted audio and
    colour video features (and, with *labels*, the corpus's labels.csv joined). Both are
    reused when present; the features file appears only once complete."""
    feats = cache / f"{stem}.h5"
    if feats.exists():
        return feats
    from vmtool.synth import LABELS_NAME, MANIFEST_NAME, make_corpus

    clips_dir = cache / stem
    if not (clips_dir / (LABELS_NAME if labels else MANIFEST_NAME)).exists():
        t = time.perf_counter()
        make_corpus(clips_dir, n, duration=duration, size=(64, 36), seed=2026, **corpus)
        print(f"# generated {n} clips in {time.perf_counter() - t:.0f} s", flush=True)
    t = time.perf_counter()
    clips = sorted(str(p) for p in clips_dir.glob("clip_*.mp4"))
    tmp = feats.with_suffix(".tmp.h5")
    subprocess.run([sys.executable, "-m", "vmtool", "extract", *clips, "-a", "handcrafted", "-v", "color",
                    "-o", str(tmp), "-q", "-j", "2"], check=True)
    if labels:
        subprocess.run([sys.executable, "-m", "vmtool", "label", str(tmp), "--labels", str(clips_dir / LABELS_NAME),
                        "-q"], check=True)
    tmp.replace(feats)
    print(f"# extracted features in {time.perf_counter() - t:.0f} s", flush=True)
    return feats
