"""Generate the command reference of ``docs/cli.md`` from ``--help``, and the tables of
other pages from the registries they list (:data:`SECTIONS`).

``python -m vmtool.cli._docs --write`` rewrites the generated sections;
``tests/test_docs.py`` fails when one is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

START, END = "<!-- cli-help:start -->", "<!-- cli-help:end -->"
DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def commands() -> list[str]:
    """Every registered subcommand, in the order of ``vmtool --help``."""
    from vmtool.cli import app

    return [c.name for c in app.registered_commands]


def render_help() -> str:
    from typer.testing import CliRunner

    from vmtool.cli import app

    runner = CliRunner(env={"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"})
    parts = []
    for cmd in [None, *commands()]:
        args = ["--help"] if cmd is None else [cmd, "--help"]
        res = runner.invoke(app, args, prog_name="vmtool")
        title = "vmtool" if cmd is None else f"vmtool {cmd}"
        text = "\n".join(line.rstrip() for line in res.stdout.strip("\n").splitlines())
        parts.append(f"### `{title}`\n\n```text\n{text}\n```\n")
    return "\n".join(parts)


def updated(doc: str) -> str:
    a, b = doc.index(START) + len(START), doc.index(END)
    return doc[:a] + "\n" + render_help() + doc[b:]


def render_losses() -> str:
    """One row per ``--loss`` key (the registry's: vmtool.models.loss_registry)."""
    from vmtool.models.loss_registry import LOSSES

    rows = ["| `--loss` | key | default | meaning | old option |", "|---|---|---|---|---|"]
    for x in LOSSES.values():
        for p in x.params:
            default = p.show(p.default) or "''"
            rows.append(f"| `{x.name}` | `{p.name}` | `{default}` | {p.meaning} | `{p.old}` |")
        if not x.params:
            rows.append(f"| `{x.name}` | | | no parameters | |")
    return "\n".join(rows) + "\n"


def render_presets() -> str:
    """One row per ``--preset`` (vmtool.training.presets)."""
    from vmtool.training.presets import PRESETS

    return "\n".join(["| `--preset` | paper | settings |", "|---|---|---|",
                      *(p.markdown_row() for p in PRESETS.values())]) + "\n"


#: generated sections of other pages: file, marker name (``<!-- NAME:start -->``), renderer
SECTIONS = [(DOC.parent / "training.md", "losses", render_losses),
            (DOC.parent / "training.md", "presets", render_presets)]


def updated_sections(path: Path, doc: str) -> str:
    """*doc* (the text of *path*) with its generated sections rewritten."""
    for file, name, render in SECTIONS:
        if file == path:
            start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
            a, b = doc.index(start) + len(start), doc.index(end)
            doc = doc[:a] + "\n" + render() + doc[b:]
    return doc


if __name__ == "__main__":  # pragma: no cover
    stale = []
    for path in dict.fromkeys([DOC, *(f for f, _, _ in SECTIONS)]):
        text = path.read_text()
        new = updated_sections(path, updated(text) if path == DOC else text)
        if "--write" in sys.argv:
            path.write_text(new)
        elif new != text:
            stale.append(path.name)
    if stale:
        sys.stderr.write(f"docs/{', docs/'.join(stale)} out of date: run python -m vmtool.cli._docs --write\n")
        sys.exit(1)
