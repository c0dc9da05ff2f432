"""``vmtool align``: how one track fits one video, segment by segment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vmtool.cli._common import (
    VersionOpt,
    DeviceOpt,
    Format,
    FormatOpt,
    QuietOpt,
    RichProgress,
    echo_json,
    handle_errors,
    info,
    print_table,
)
from vmtool.cli._ranking import Direction, QuerySegmentsOpt, method_callback

HELP = """Align a video with a track: distance matrix, optimal path and edit list.

The edit list says, for each segment of the query (the video, with v2m), which segment of the target (the track) plays under it, with its start and end in seconds: a first step toward cutting the track to the video. QUERY and TARGET are items of vmtool files (FILE.h5#ITEM-ID) or media files; a media file is processed like the catalog of the other side, or like --catalog.

\b
Methods: nw-dtw (default, global), sw-dtw (local), btrace, trace (Seg-VM-Net's sums of squared distances), btrace-mean, trace-mean (vmtool's mean similarities);
the DP methods take an indel penalty as nw-dtw:0.1.

\b
Examples:
  vmtool align catalog.h5#clip-07 catalog.h5#song-12 --plot align.png
  vmtool align clip.mp4 catalog.h5#song-12 -m sw-dtw --format json
"""


def register(app: typer.Typer) -> None:
    app.command("align", help=HELP, no_args_is_help=True)(align_cmd)


@handle_errors
def align_cmd(
    query: Annotated[str, typer.Argument(metavar="QUERY", help="FILE.h5#ITEM-ID or a media file (the video, "
                                         "with v2m).", show_default=False)],
    target: Annotated[str, typer.Argument(metavar="TARGET", help="FILE.h5#ITEM-ID or a media file (the track, "
                                          "with v2m).", show_default=False)],
    method: Annotated[str, typer.Option("--method", "-m", metavar="METHOD[:INDEL]", callback=method_callback,
                                        help="Alignment method: nw-dtw, sw-dtw, btrace, trace, btrace-mean or trace-mean.")] = "nw-dtw",
    direction: Annotated[Direction, typer.Option("--direction", "-d", help="v2m: QUERY is a video and TARGET a "
                                                 "track; m2v: the reverse.")] = Direction.v2m,
    catalog: Annotated[Optional[Path], typer.Option(
        "--catalog", metavar="CATALOG.h5", help="Recipe for media files when neither side is a FILE.h5#ITEM-ID.",
        show_default=False)] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", dir_okay=False, metavar="FILE.png",
                                                 help="Draw the distance matrix with the path (the extension picks the format: .png, .pdf, .svg...).")] = None,
    fmt: FormatOpt = Format.table,
    device: DeviceOpt = "auto",
    query_segments: QuerySegmentsOpt = None,
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    from vmtool.query import align_pair

    with RichProgress(enabled=not quiet) as progress:
        pair = align_pair(query, target, method=method, direction=direction.value, catalog=catalog, device=device,
                          segments=query_segments, plot=plot, progress=progress)
    al = pair.alignment
    if fmt is Format.json:
        echo_json(pair.to_dict())
    else:
        _table(al, pair.query_item, pair.target_item, pair.query_fields, pair.target_fields)
    span = al.target_span
    info(f"{al.method.label}: distance {al.distance:.4g}, {len(al.path)} matched pair(s)"
         + (f", target {span[0]:.2f}-{span[1]:.2f} s" if span else "")
         + (f"; wrote {plot}" if plot is not None else ""), quiet)


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def _table(al, q, t, qm=None, tm=None) -> None:
    from rich.table import Table

    from vmtool.metadata import title_artist

    head = Table(box=None, show_header=False, pad_edge=False)
    head.add_column(style="bold")
    head.add_column()
    for side, s, m in (("query", q, qm), ("target", t, tm)):
        named = title_artist(m or {})
        head.add_row(side, f"{s.ids[0]}{'  ' + named if named else ''} ({s.modality}, {len(s.data)} segments)")
    head.add_row("method", al.method.label + (f" (indel {al.method.indel:g})" if al.method.indel is not None else ""))
    head.add_row("distance", f"{al.distance:.6g}")
    if al.offset is not None:
        head.add_row("offset", f"{al.offset:+d} segment(s)")
    span = al.target_span
    head.add_row("matched", "-" if span is None else f"{span[0]:.2f}-{span[1]:.2f} s of the target")
    print_table(head)
    e = Table(title="edit list", title_justify="left", box=None, pad_edge=False)
    for col in ("query seg", "query start", "query end", "target seg", "target start", "target end", "similarity"):
        e.add_column(col, justify="right")
    for ed in al.edits:
        segs = "-" if ed.target_first is None else (str(ed.target_first) if ed.target_first == ed.target_last
                                                   else f"{ed.target_first}-{ed.target_last}")
        qs = ed.query_span or (None, None)
        ts = ed.target_span or (None, None)
        e.add_row(str(ed.query_index), _fmt(qs[0]), _fmt(qs[1]), segs, _fmt(ts[0]), _fmt(ts[1]),
                  "-" if ed.similarity is None else f"{ed.similarity:.3f}")
    print_table(e)
