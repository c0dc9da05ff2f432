"""Shared by the benchmarks: the load average, and writing a block into docs/performance.md."""

from __future__ import annotations

import os
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
