"""Generate the command reference of ``docs/cli.md`` from ``--help``.

``python -m vmtool.cli._docs --write`` rewrites the generated section;
``tests/test_docs.py`` fails when it is out of date.
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


if __name__ == "__main__":  # pragma: no cover
    text = DOC.read_text()
    new = updated(text)
    if "--write" in sys.argv:
        DOC.write_text(new)
    elif new != text:
        sys.stderr.write("docs/cli.md is out of date: run python -m vmtool.cli._docs --write\n")
        sys.exit(1)
