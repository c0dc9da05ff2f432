"""``vmtool merge``: several collections (features files, catalogs) into one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vmtool.atomic import DEFAULT_WAIT

from vmtool.cli._common import (
    Format,
    IdsOpt,
    OutputOpt,
    QuietOpt,
    WaitOpt,
    RichProgress,
    VersionOpt,
    command_line,
    echo_json,
    error,
    expand_stdin,
    handle_errors,
    info,
    read_ids,
)

HELP = """Merge vmtool collections (features files, segmented files, catalogs) into OUT.

The inputs must have been made the same way: the same extraction options, the same parameters for every feature, segmentation or embedding they share, and for catalogs the same model. Every input is checked first and every problem reported; nothing is written unless all can be merged. An item present twice (same id and sha256) is kept once; an id taken by other content gets '-<sha256 prefix>'. --ids FILE keeps only the listed items (with one input: a subset, e.g. without removed tracks). INPUT '-' reads paths from stdin, one per line. OUT may be one of the inputs.

\b
Examples:
  vmtool merge shard-*.h5 -o features.h5
  find build/feats -name '*.h5' | vmtool merge - -o music.h5
  vmtool merge catalog.h5 new-tracks.h5 -o catalog.h5 --format json
  ls music | sed 's/\\.[^.]*$//' | vmtool merge catalog.h5 --ids - -o catalog.h5
"""


def register(app: typer.Typer) -> None:
    app.command("merge", help=HELP, no_args_is_help=True)(merge_cmd)


@handle_errors
def merge_cmd(
    ctx: typer.Context,
    inputs: Annotated[list[str], typer.Argument(metavar="INPUT...", show_default=False,
                                                help="Collection files ('-': read paths from stdin).")],
    output: OutputOpt = ...,  # type: ignore[assignment]
    fmt: Annotated[Optional[Format], typer.Option("--format", "-f",
                                                  help="Print the report on stdout (default: nothing).")] = None,
    ids_file: IdsOpt = None,
    wait: WaitOpt = DEFAULT_WAIT,
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    from vmtool.merge import MergeError, merge

    if ids_file is not None and str(ids_file) == "-" and "-" in inputs:
        raise typer.BadParameter("stdin can give either the input paths or the ids, not both", param_hint="--ids")
    paths = expand_stdin(inputs)
    if not paths:
        raise typer.BadParameter("no input path given (stdin was empty)", param_hint="INPUT...")
    try:
        with RichProgress(enabled=not quiet) as progress:
            rep = merge(paths, output, ids=read_ids(ids_file), command=command_line(ctx), progress=progress, wait=wait)
    except MergeError as exc:
        for p in exc.problems:
            error(str(p))
        error(f"{output}: not written ({len(exc.problems)} problem(s) with the inputs)")
        raise typer.Exit(exc.exit_code) from None
    if fmt is Format.json:
        echo_json(rep.to_dict())
    elif fmt is Format.table:
        _table(rep)
    extra = []
    if rep.duplicates:
        extra.append(f"{rep.duplicates} duplicate(s) kept once")
    if rep.dropped:
        extra.append(f"{rep.dropped} left out (not in --ids)")
    if rep.renamed:
        extra.append(f"{len(rep.renamed)} renamed: " + ", ".join(f"{a} -> {b}" for a, b in rep.renamed[:3])
                     + (" ..." if len(rep.renamed) > 3 else ""))
    info(f"{Path(output)}: {rep.items} item(s) from {len(rep.per_input)} file(s)"
         + (" (catalog)" if rep.catalog else "") + ("; " + "; ".join(extra) if extra else ""), quiet)
    _stale_index_notice(output)


def _stale_index_notice(catalog) -> None:
    """A rewritten catalog's prefilter index no longer matches it: say so (rank refuses it)."""
    from vmtool.ranking.index import stale_sidecar

    note = stale_sidecar(catalog)
    if note:
        info(f"Warning: {note}")


def _table(rep) -> None:
    from rich.table import Table

    from vmtool.cli._common import print_table

    t = Table(box=None, pad_edge=False)
    for col in ("input", "items", "added", "duplicates", "renamed"):
        t.add_column(col, justify="left" if col == "input" else "right")
    for r in rep.per_input:
        t.add_row(r["path"], str(r["items"]), str(r["added"]), str(r["duplicates"]), str(r["renamed"]))
    print_table(t)
