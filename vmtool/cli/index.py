"""``vmtool index``: the prefilter index of a catalog, for ``rank --prefilter`` on large catalogs."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from vmtool.cli._common import Format, FormatOpt, QuietOpt, VersionOpt, echo_json, handle_errors, info

HELP = """Build the prefilter index of a catalog: CATALOG.h5.index.

The centroid of every item's segment embeddings, computed once by reading the catalog in chunks, in a faiss inverted-file index (ivf, the default) or as a plain float16 matrix (flat). 'vmtool rank --prefilter N' then reads the index and only the N candidates' rows of the catalog, so a catalog larger than memory can be queried. The index records the catalog and model it was built for; after the catalog changes (embed --resume, merge) it is refused until rebuilt.

\b
Examples:
  vmtool index catalog.h5
  vmtool index catalog.h5 --kind flat
  vmtool rank clip.mp4 catalog.h5 -m nw-dtw --prefilter 5000
"""


class Kind(str, enum.Enum):
    ivf = "ivf"
    flat = "flat"


def register(app: typer.Typer) -> None:
    app.command("index", help=HELP, no_args_is_help=True)(index_cmd)


@handle_errors
def index_cmd(
    catalog: Annotated[Path, typer.Argument(metavar="CATALOG.h5", help="A catalog written by vmtool embed.",
                                            show_default=False)],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", dir_okay=False, show_default=False,
                                                   help="Index file (default: CATALOG.h5.index).")] = None,
    kind: Annotated[Kind, typer.Option("--kind", help="ivf: faiss inverted lists (approximate, fast); "
                                                      "flat: every centroid (exact, numpy).")] = Kind.ivf,
    nlist: Annotated[Optional[int], typer.Option("--nlist", min=1, help="ivf: number of lists "
                                                 "(default 4 sqrt(N)).")] = None,
    nprobe: Annotated[Optional[int], typer.Option("--nprobe", min=1, help="ivf: lists scanned per query "
                                                  "(default nlist/64).")] = None,
    fmt: FormatOpt = Format.table,
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    from vmtool.ranking.index import build_index

    rep = build_index(catalog, output, kind=kind.value, nlist=nlist, nprobe=nprobe)
    if fmt is Format.json:
        echo_json(rep.to_dict())
    for mod, m in rep.modalities.items():
        extra = f", {m['nlist']} lists, nprobe {m['nprobe']}" if m["kind"] == "ivf" else ""
        info(f"{rep.path}: {mod}: {m['kind']} index of {m['indexed']} of {m['items']} items{extra}, "
             f"{m['bytes'] / 1e6:.1f} MB, {m['seconds']:.1f} s", quiet)
