"""``vmtool index``: the prefilter index of a catalog, for ``rank --prefilter`` on large catalogs."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from vmtool.cli._common import Format, FormatOpt, QuietOpt, VersionOpt, echo_json, handle_errors, info

HELP = """Build the prefilter index of a catalog: CATALOG.h5.index.

The centroid of every item's segment embeddings, computed once by reading the catalog in chunks, in a faiss inverted-file index (ivf, the default) or as a plain float16 matrix (flat), and a sketch of every segment row (its projection on the rows' --sketch-dim leading principal directions, float16). 'vmtool rank --prefilter N' then takes the N items nearest by centroid in the sketch's subspace (all items compared, in memory), ranks them with the method on their sketch rows, and reads only the best --rerank of them from the catalog to rank them on their full rows: a catalog larger than memory can be queried, with many candidates at a small cost (the centroid index serves an index built with --sketch-dim 0). The index records the catalog and model it was built for; after the catalog changes (embed --resume, merge) it is refused until rebuilt.

\b
Examples:
  vmtool index catalog.h5
  vmtool index catalog.h5 --kind flat
  vmtool index catalog.h5 --sketch-dim 64 --rerank 1000
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
    sketch_dim: Annotated[int, typer.Option("--sketch-dim", min=0, help="Principal directions of the sketch rows "
                                            "(0: no sketch; every candidate is read in full).")] = 32,
    rerank: Annotated[int, typer.Option("--rerank", min=1, help="Candidates ranked again on their full rows after "
                                        "the sketch ranking.")] = 500,
    fmt: FormatOpt = Format.table,
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    from vmtool.ranking.index import build_index

    rep = build_index(catalog, output, kind=kind.value, nlist=nlist, nprobe=nprobe, sketch_dim=sketch_dim,
                      rerank=rerank)
    if fmt is Format.json:
        echo_json(rep.to_dict())
    for mod, m in rep.modalities.items():
        extra = f", {m['nlist']} lists, nprobe {m['nprobe']}" if m["kind"] == "ivf" else ""
        extra += f", sketch of {m['sketch_dim']} directions, re-rank {m['rerank']}" if m["sketch_dim"] else ""
        info(f"{rep.path}: {mod}: {m['kind']} index of {m['indexed']} of {m['items']} items{extra}, "
             f"{m['bytes'] / 1e6:.1f} MB, {m['seconds']:.1f} s", quiet)
