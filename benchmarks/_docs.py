"""Writing a benchmark's figures into docs/performance.md between its markers."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "performance.md"


def write_block(name: str, text: str, new_section: str) -> None:
    """Replace the block between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` with *text*.

    Without the markers, *new_section* (a heading and its introduction) and the block are
    appended to the page.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    doc = DOC.read_text()
    block = f"{start}\n{text}\n{end}"
    if start in doc:
        doc = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda m: block, doc, flags=re.S)
    else:
        doc += new_section + block + "\n"
    DOC.write_text(doc)
