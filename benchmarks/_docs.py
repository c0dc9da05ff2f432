"""Writing a benchmark's figures into docs/performance.md between its named markers."""

from __future__ import annotations

from _record import write_block as _write_between


def write_block(name: str, text: str, new_section: str) -> None:
    """Replace the block between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` with *text*.

    Without the markers, *new_section* (a heading and its introduction) and the block are
    appended to the page.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    _write_between(f"{start}\n{text}\n{end}", start, end, new_section)
