"""``vmtool render``: a track under a video's picture, written as a playable preview."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from vmtool.cli._common import (
    DeviceOpt,
    Format,
    FormatOpt,
    OutputOpt,
    QuietOpt,
    RichProgress,
    VersionOpt,
    echo_json,
    handle_errors,
    info,
)

HELP = """Write a preview: the video with a track as its sound, fitted to the picture.

By default the track's best section plays under the video (the placement 'vmtool rank' prints: the alignment of the video with the track, the start on a beat), trimmed to the video's length with a short fade in and out. --fit cuts re-edits the music on its beat grid so that its sections change where the video's shots change, with a 40-ms equal-power crossfade at each edit; every edit leaves and enters the track on a beat. The video stream is copied without re-encoding; the sound is AAC. TRACK is a media file or CATALOG.h5#ID (the item's media file as the catalog records it). A track that ends before the video is looped on its bar lines (padded with silence when no beat is found), with a warning.

\b
Examples:
  vmtool render clip.mp4 catalog.h5#song-12 -o preview.mp4
  vmtool render clip.mp4 catalog.h5#song-12 --fit cuts --keep-audio 0.2 -o recut.mp4
  vmtool render clip.mp4 song.mp3 --start 42.5 -o preview.mp4
  vmtool render clip.mp4 song.mp3 --catalog catalog.h5 -o preview.mp4 --format json
"""


class Fit(str, enum.Enum):
    section = "section"
    cuts = "cuts"


def register(app: typer.Typer) -> None:
    app.command("render", help=HELP, no_args_is_help=True)(render_cmd)


@handle_errors
def render_cmd(
    video: Annotated[Path, typer.Argument(metavar="VIDEO", help="The video (its picture is copied as it is).",
                                          show_default=False)],
    track: Annotated[str, typer.Argument(metavar="TRACK", help="A media file or CATALOG.h5#ITEM-ID.",
                                         show_default=False)],
    output: OutputOpt,
    start: Annotated[Optional[float], typer.Option(
        "--start", min=0, metavar="SECONDS", show_default=False,
        help="Start the music here in the track (default: its best section under the video).")] = None,
    fit: Annotated[Fit, typer.Option("--fit", help="section: one stretch of the track; cuts: its sections "
                                     "re-edited onto the video's shot changes, on beats.")] = Fit.section,
    keep_audio: Annotated[float, typer.Option(
        "--keep-audio", min=0, max=1, metavar="GAIN",
        help="Mix the video's own sound under the music at this gain (0: drop it).")] = 0.0,
    catalog: Annotated[Optional[Path], typer.Option(
        "--catalog", metavar="CATALOG.h5", show_default=False,
        help="Recipe that embeds the video and a media track for the alignment (default: TRACK's catalog).")] = None,
    fade_in: Annotated[float, typer.Option("--fade-in", min=0, metavar="SECONDS",
                                           help="Fade in at the start.")] = 0.1,
    fade_out: Annotated[float, typer.Option("--fade-out", min=0, metavar="SECONDS",
                                            help="Fade out at the end.")] = 1.0,
    fmt: FormatOpt = Format.table,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    from vmtool.render import render_preview

    with RichProgress(enabled=not quiet) as progress:
        res = render_preview(video, track, output, start=start, fit=fit.value, keep_audio=keep_audio,
                             catalog=catalog, progress=progress, device=device, fade_in=fade_in, fade_out=fade_out)
    if fmt is Format.json:
        echo_json(res.to_dict())
    else:
        _table(res)
    info(f"wrote {res.path}: {res.duration:.2f} s, music from {res.start:.2f} s of {res.track} "
         f"({len(res.edits) - 1} edit(s){', looped' if res.looped else ''})", quiet)


def _table(res) -> None:
    from rich.table import Table

    from vmtool.cli._common import print_table

    head = Table(box=None, show_header=False, pad_edge=False)
    head.add_column(style="bold")
    head.add_column()
    head.add_row("output", str(res.path))
    head.add_row("track", str(res.track))
    head.add_row("fit", res.fit)
    head.add_row("section", f"{res.start:.2f}-{res.end:.2f} s (start snapped to: {res.snap}; beat grid: {res.grid})")
    head.add_row("duration", f"{res.duration:.2f} s" + (f", {res.padded:.2f} s of silence at the end"
                                                         if res.padded else ""))
    print_table(head)
    e = Table(title="edits", title_justify="left", box=None, pad_edge=False)
    for col in ("video time", "track time"):
        e.add_column(col, justify="right")
    for v, t in res.edits:
        e.add_row(f"{v:.3f}", f"{t:.3f}")
    print_table(e)
