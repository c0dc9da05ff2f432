"""``vmtool label``: add per-item labels (emotion, polarity, track...) and known negatives to a collection."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vmtool.cli._common import Format, QuietOpt, VersionOpt, command_line, echo_json, handle_errors, info

HELP = """Add label columns and known mismatched pairs to a collection FILE.h5.

--labels FILE.csv has a header row; its column 'id' (item id) or 'file' (base name of the item's source file, for collections made by vmtool extract) says which item a row labels, and every other column becomes a label column: numeric when every value is a number, categorical otherwise. 'polarity' must be numeric (-1, 0, 1). Typical columns: video_emotion, music_emotion, polarity, track. Columns replace stored ones of the same name; items without a row get no value.

--negatives FILE.csv lists pairs known not to match (columns video_id, music_id); losses that use negatives (DPVM's contrastive loss) take them.

FILE.h5 is rewritten atomically (or -o OUT.h5 is written); on any error nothing is written. Labels are kept by segment, embed and merge, shown by info, and used by train --model dpvm and evaluate --label. Details: docs/format.md.

\b
Examples:
  vmtool label feats.h5 --labels labels.csv
  vmtool label feats.h5 --labels labels.csv --negatives mismatched.csv -o labelled.h5
  vmtool label feats.h5 --labels labels.csv --format json
"""


def register(app: typer.Typer) -> None:
    app.command("label", help=HELP, no_args_is_help=True)(label_cmd)


@handle_errors
def label_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE.h5", help="The collection to label.", show_default=False)],
    labels: Annotated[Optional[Path], typer.Option("--labels", metavar="FILE.csv", dir_okay=False, show_default=False,
                                                   help="Per-item labels: an 'id' or 'file' column, then label columns.")] = None,
    negatives: Annotated[Optional[Path], typer.Option("--negatives", metavar="FILE.csv", dir_okay=False,
                                                      show_default=False,
                                                      help="Known mismatched pairs: columns video_id, music_id.")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", dir_okay=False, show_default=False,
                                                   help="Write here instead of rewriting FILE.h5 (atomically).")] = None,
    fmt: Annotated[Optional[Format], typer.Option("--format", "-f",
                                                  help="Print the report on stdout (default: nothing).")] = None,
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    from vmtool.labels import apply_labels

    report = apply_labels(file, labels=labels, negatives=negatives, output=output, command=command_line(ctx))
    report_labels(report, fmt, quiet)


def report_labels(report, fmt: Optional[Format], quiet: bool) -> None:
    """The label report: JSON/TSV on stdout when asked, a summary on stderr."""
    if fmt is Format.json:
        echo_json(report.to_dict())
    elif fmt is Format.table:
        from rich.table import Table

        from vmtool.cli._common import print_table

        t = Table("column", "kind", "items", "classes", box=None)
        for c in report.columns:
            t.add_row(c["name"], c["kind"], str(c["items"]), str(c.get("classes", "")))
        print_table(t)
    if report.columns:
        info(f"{report.path}: {report.labelled} of {report.n_items} item(s) labelled", quiet)
        for c in report.columns:
            extra = f", {c['classes']} classes" if "classes" in c else ""
            info(f"  labels/{c['name']}: {c['kind']}, {c['items']} item(s){extra}", quiet)
    if report.negatives:
        info(f"  negatives: {report.negatives} mismatched pair(s)", quiet)
