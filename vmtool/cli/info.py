"""``vmtool info``: what a vmtool file holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vmtool.cli._common import Format, FormatOpt, echo_json, handle_errors, print_table

HELP = """Show what a vmtool file holds.

Kind, schema version, items and their modalities, features (dimension, rate), curves, segmentations and the extraction configuration.

\b
Examples:
  vmtool info catalog.h5
  vmtool info catalog.h5 --format json | jq '.features[].name'
"""


def register(app: typer.Typer) -> None:
    app.command("info", help=HELP, no_args_is_help=True)(info_cmd)


@handle_errors
def info_cmd(
    file: Annotated[Path, typer.Argument(metavar="FILE.h5", help="A vmtool file.", show_default=False)],
    fmt: FormatOpt = Format.table,
    items: Annotated[bool, typer.Option("--items", help="Also list every item.")] = False,
) -> None:
    from vmtool.info import describe

    d = describe(file, items=items)
    if fmt is Format.json:
        echo_json(d)
    else:
        _table(d)


def _fmt_rate(rate) -> str:
    if rate is None:
        return "-"
    if isinstance(rate, str):
        return rate
    return f"{rate:g} Hz"


def _table(d: dict) -> None:
    from rich.table import Table

    head = Table(box=None, show_header=False, pad_edge=False)
    head.add_column(style="bold")
    head.add_column()
    head.add_row("file", d["path"])
    head.add_row("kind", f"{d['kind']} (schema {d['schema_version']})")
    if d["kind"] != "collection":
        for k, v in d.get("attrs", {}).items():
            head.add_row(k, str(v))
        print_table(head)
        return
    head.add_row("written by", f"vmtool {d['vmtool_version']} on {d['created']}")
    head.add_row("items", f"{d['n_items']} ({', '.join(f'{k}: {v}' for k, v in d['modalities'].items()) or 'none'}), "
                          f"{d['total_duration']:.1f} s in all")
    head.add_row("command", d.get("command") or "-")
    print_table(head)
    for group in ("features", "curves", "segmentations", "events", "embeddings"):
        entries = d.get(group) or []
        if not entries:
            continue
        t = Table(title=group, title_justify="left", box=None, pad_edge=False)
        for col in ("name", "modality", "dim", "rate", "rows", "items"):
            t.add_column(col)
        for e in entries:
            t.add_row(e["name"], e.get("modality") or "-", "-" if e["dim"] is None else str(e["dim"]),
                      _fmt_rate(e["rate"]), str(e["rows"]), str(e["items_with_data"]))
        print_table(t)
    if "items" in d:
        t = Table(title="items", title_justify="left", box=None, pad_edge=False)
        for col in ("id", "duration", "modalities", "fps", "source"):
            t.add_column(col)
        for it in d["items"]:
            t.add_row(it["id"], f"{it['duration']:.2f}", it["modalities"],
                      "-" if it["fps"] is None else f"{it['fps']:g}", it["source"])
        print_table(t)
