"""``vmtool extract``: frame-level features of media files into a collection file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vmtool.atomic import DEFAULT_WAIT

from vmtool.cli._common import (
    VersionOpt,
    DeviceOpt,
    Format,
    FormatOpt,
    OutputOpt,
    QuietOpt,
    WaitOpt,
    RichProgress,
    SchedulerOpt,
    SendMediaOpt,
    WorkersOpt,
    command_line,
    echo_json,
    error,
    expand_stdin,
    handle_errors,
    info,
    print_table,
)

HELP = """Extract frame-level features of media files into OUT.h5.

Each file's container tags (title, artist, album, genre, BPM, key, ISRC) are stored with it, and its tempo, key and loudness are measured from its audio (stored as measured_bpm, measured_key, measured_loudness_lufs (ITU-R BS.1770-4 integrated loudness) and measured_loudness (RMS dBFS), apart from the tags); --metadata joins a catalog's own CSV sheet by its 'id' or 'file' column (its values win over the tags).

INPUT is a media file or a folder: a folder stands for the media files below it (recursively; --glob picks other names), and what was left out is listed on stderr. One row per output step (--rate, 1 Hz by default). Defaults: audio 'handcrafted' (VM-Net's librosa descriptors), video 'transnet' (TransNetV2 fc1 embedding, plus the shot-boundary likelihood at the native frame rate) and 'color'. An input lacking a modality simply gets no features of it (a song, with or without cover art, gets the audio features only), unless it lacks every modality whose features were asked for explicitly (give both -a and -v for a mixed folder). INPUT '-' reads paths from stdin, one per line.

\b
Examples:
  vmtool extract clip.mp4 -o clip.h5
  vmtool extract music/*.mp3 --audio-features handcrafted -o catalog.h5 -j 2
  vmtool extract ~/Music ~/Videos -o library.h5 --keep-going
  vmtool extract ~/Music --glob '*.flac' --glob '*.mp3' -o songs.h5
  find videos -name '*.mp4' | vmtool extract - -o videos.h5 --keep-going --resume
  vmtool extract music/*.mp3 -a handcrafted -v none --metadata catalog.csv -o tracks.h5
  vmtool extract music/*.mp3 -a handcrafted -v none -o catalog.h5 --scheduler tcp://head:8786
  vmtool extract --list
"""


def register(app: typer.Typer) -> None:
    app.command("extract", help=HELP, no_args_is_help=True)(extract_cmd)


@handle_errors
def extract_cmd(
    ctx: typer.Context,
    inputs: Annotated[Optional[list[str]], typer.Argument(metavar="INPUT...", show_default=False,
                                                          help="Media files or folders ('-': read paths from stdin).")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", dir_okay=False, show_default=False,
                                                   help="Output collection file (written atomically).")] = None,
    audio_features: Annotated[Optional[list[str]], typer.Option(
        "--audio-features", "-a", metavar="NAME",
        help="Audio extractor (repeatable; 'none' for no audio features). Default: handcrafted.")] = None,
    video_features: Annotated[Optional[list[str]], typer.Option(
        "--video-features", "-v", metavar="NAME",
        help="Video extractor (repeatable; 'none' for no video features). Default: transnet, color.")] = None,
    rate: Annotated[float, typer.Option("--rate", help="Output steps per second (Hz).")] = 1.0,
    device: DeviceOpt = "auto",
    workers: WorkersOpt = 1,
    scheduler: SchedulerOpt = None,
    send_media: SendMediaOpt = False,
    resume: Annotated[bool, typer.Option("--resume", help="Keep OUT's items; skip inputs already in it (same sha256), and those a stopped run "
                                         "left in OUT.vmtool-partial.")] = False,
    keep_going: Annotated[bool, typer.Option("--keep-going", "-k", help="Record failed inputs, finish the rest, exit 1 at the end.")] = False,
    metadata: Annotated[Optional[Path], typer.Option(
        "--metadata", metavar="FILE.csv", dir_okay=False, show_default=False,
        help="Track metadata sheet joined by its 'id' or 'file' column (title, artist, bpm, key... any "
             "column).")] = None,
    measure: Annotated[bool, typer.Option("--measure/--no-measure",
                                          help="Measure tempo, key and loudness of the audio.")] = True,
    glob: Annotated[Optional[list[str]], typer.Option(
        "--glob", metavar="PATTERN",
        help="In folders, take the files whose name matches (repeatable; case-insensitive). "
             "Default: every audio and video extension.", show_default=False)] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the extractors (dimension, availability) and exit.")] = False,
    fmt: FormatOpt = Format.table,
    wait: WaitOpt = DEFAULT_WAIT,
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    from vmtool import features
    from vmtool.device import resolve_device
    from vmtool.extract import DEFAULT_AUDIO, DEFAULT_VIDEO, ExtractConfig, extract

    if list_:
        _print_list(features.list_extractors(), fmt)
        return
    if not inputs:
        raise typer.BadParameter("at least one INPUT is required", param_hint="INPUT...")
    if output is None:
        raise typer.BadParameter("an output file is required", param_hint="'-o' / '--output'")
    paths = expand_stdin(inputs)
    if not paths:
        raise typer.BadParameter("no input path given (stdin was empty)", param_hint="INPUT...")

    def names(given, default):
        if given is None:
            return tuple(default), False
        flat = [n.strip() for g in given for n in g.split(",") if n.strip()]
        return (() if flat == ["none"] else tuple(flat)), flat != ["none"]

    audio, req_a = names(audio_features, DEFAULT_AUDIO)
    video, req_v = names(video_features, DEFAULT_VIDEO)
    config = ExtractConfig(audio_features=audio, video_features=video, rate=rate,
                           require_audio=req_a, require_video=req_v, metadata=True, measure=measure)
    dev = resolve_device(device)
    with RichProgress(enabled=not quiet) as progress:
        report = extract(paths, output, config, device=dev, workers=workers, resume=resume,
                         keep_going=keep_going, progress=progress, command=command_line(ctx), wait=wait,
                         sheet=metadata, scheduler=scheduler, send_media=send_media, patterns=glob)
    _report_ignored(report.ignored, quiet)
    for src, msg in report.failures:
        error(msg)
    parts = [f"{len(report.added)} item(s) added"]
    if report.skipped:
        parts.append(f"{len(report.skipped)} already present")
    if report.failures:
        parts.append(f"{len(report.failures)} failed")
    if metadata is not None:
        parts.append(f"{report.sheet_matched} item(s) given metadata from {metadata}")
        if report.sheet_unmatched:
            shown = ", ".join(report.sheet_unmatched[:5]) + (" ..." if len(report.sheet_unmatched) > 5 else "")
            warn = f"{metadata}: {len(report.sheet_unmatched)} row(s) match no item: {shown}"
            info(f"Warning: {warn}", quiet)
    info(f"{output}: " + ", ".join(parts), quiet and not report.failures)
    if report.failures:
        raise typer.Exit(1)


def _report_ignored(ignored: list[tuple[str, str]], quiet: bool) -> None:
    """One stderr line per reason files were left out of folders, with a few examples."""
    by_reason: dict[str, list[str]] = {}
    for path, reason in ignored:
        by_reason.setdefault(reason, []).append(path)
    why = {"hidden": "hidden (name starts with a dot)", "not matched": "not media (see --glob)"}
    for reason, paths in by_reason.items():
        shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        info(f"skipped {len(paths)} path(s), {why.get(reason, reason)}: {shown}", quiet)


def _print_list(infos, fmt: Format) -> None:
    if fmt is Format.json:
        echo_json([i.to_dict() for i in infos])
        return
    from rich.table import Table

    t = Table(box=None, pad_edge=False)
    for col in ("name", "modality", "dim", "offline", "curves", "description"):
        t.add_column(col)
    for i in infos:
        t.add_row(i.name, i.modality, str(i.dim), "yes" if i.available else f"no: {i.reason}",
                  ", ".join(i.curves) or "-", i.summary)
    print_table(t)
