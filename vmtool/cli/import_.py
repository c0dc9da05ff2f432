"""``vmtool import``: precomputed features (arrays or YouTube-8M shards) into a collection file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vmtool.atomic import DEFAULT_WAIT

from vmtool.cli._common import QuietOpt, WaitOpt, RichProgress, VersionOpt, command_line, handle_errors, info

HELP = """Import precomputed features into a features collection OUT.h5.

Inputs are audio and/or video feature arrays (--audio, --video: NPY, NPZ, HDF5 as FILE.h5:/path, or CSV), or YouTube-8M TFRecord shards (SHARD arguments: paths or quoted globs; read without TensorFlow, CRCs checked).

A 2-D array (N, dim) is clip level: one row per item. Frame level (needs --rate) is a 2-D array of frames with offsets (N + 1: --audio-offsets, or 'offsets' stored next to the array), a 3-D array (N, frames, dim), or one 2-D array per item (NPZ keys or the datasets of an HDF5 group; id = name). Ids come from --ids files (one per line), 'ids' stored next to the array, the per-item names or a CSV 'id' column. When both modalities have ids they are joined on them, and an id found in one modality only gives an item with that modality; without ids, rows are paired by position.

--labels FILE.csv adds per-item label columns (emotion, polarity, track...) joined on the ids, --negatives FILE.csv known mismatched pairs (see vmtool label).

YouTube-8M records give 'yt8m_rgb' (1024-d) and 'yt8m_audio' (128-d): clip level from video-level records, frames at 1 Hz (dequantised as YouTube-8M's readers) from frame-level records. Labels are kept as the companion 'labels'. Details: docs/import.md.

\b
Examples:
  vmtool import --audio audio.npy --video video.npy --ids ids.txt -o f.h5
  vmtool import --audio frames.npy --audio-offsets off.npy --rate 1 -o f.h5
  vmtool import --audio x.h5:/audio --video x.h5:/video --rate 2 -o f.h5
  vmtool import --video clips.npz --audio music.csv -o pairs.h5
  vmtool import --audio a.npy --video v.npy --ids ids.txt --labels labels.csv -o f.h5
  vmtool import 'yt8m/frame/train*.tfrecord' -o yt8m.h5
"""


def register(app: typer.Typer) -> None:
    app.command("import", help=HELP, no_args_is_help=True)(import_cmd)


_SPEC = "PATH[:KEY]"


@handle_errors
def import_cmd(
    ctx: typer.Context,
    shards: Annotated[Optional[list[str]], typer.Argument(
        metavar="SHARD", show_default=False,
        help="YouTube-8M TFRecord shards (paths or glob patterns).")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", dir_okay=False, show_default=False,
                                                   help="Output collection file (written atomically).")] = None,
    audio: Annotated[Optional[str], typer.Option("--audio", metavar=_SPEC, show_default=False,
                                                 help="Audio features: NPY, NPZ, HDF5 or CSV.")] = None,
    video: Annotated[Optional[str], typer.Option("--video", metavar=_SPEC, show_default=False,
                                                 help="Video features: NPY, NPZ, HDF5 or CSV.")] = None,
    audio_offsets: Annotated[Optional[str], typer.Option(
        "--audio-offsets", metavar=_SPEC, show_default=False,
        help="Offsets (N + 1 integers) into --audio's rows: frame-level audio.")] = None,
    video_offsets: Annotated[Optional[str], typer.Option(
        "--video-offsets", metavar=_SPEC, show_default=False,
        help="Offsets (N + 1 integers) into --video's rows: frame-level video.")] = None,
    ids: Annotated[Optional[Path], typer.Option("--ids", dir_okay=False, show_default=False,
                                                help="Item ids, one per line, for inputs without their own.")] = None,
    audio_ids: Annotated[Optional[Path], typer.Option("--audio-ids", dir_okay=False, show_default=False,
                                                      help="Ids of the audio items, one per line.")] = None,
    video_ids: Annotated[Optional[Path], typer.Option("--video-ids", dir_okay=False, show_default=False,
                                                      help="Ids of the video items, one per line.")] = None,
    rate: Annotated[Optional[float], typer.Option("--rate", metavar="HZ", show_default=False,
                                                  help="Frame rate of frame-level inputs (rows per second).")] = None,
    audio_rate: Annotated[Optional[float], typer.Option(
        "--audio-rate", metavar="HZ", show_default=False,
        help="Frame rate of the audio features (overrides --rate).")] = None,
    video_rate: Annotated[Optional[float], typer.Option(
        "--video-rate", metavar="HZ", show_default=False,
        help="Frame rate of the video features (overrides --rate).")] = None,
    audio_name: Annotated[Optional[str], typer.Option(
        "--audio-name", metavar="NAME", show_default=False,
        help="Audio feature name (default: imported_audio; yt8m_audio for YouTube-8M).")] = None,
    video_name: Annotated[Optional[str], typer.Option(
        "--video-name", metavar="NAME", show_default=False,
        help="Video feature name (default: imported_video; yt8m_rgb for YouTube-8M).")] = None,
    wait: WaitOpt = DEFAULT_WAIT,
    labels: Annotated[Optional[Path], typer.Option(
        "--labels", metavar="FILE.csv", dir_okay=False, show_default=False,
        help="Per-item labels (an 'id' column, then label columns; see vmtool label).")] = None,
    negatives: Annotated[Optional[Path], typer.Option(
        "--negatives", metavar="FILE.csv", dir_okay=False, show_default=False,
        help="Known mismatched pairs (columns video_id, music_id).")] = None,
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    from vmtool.errors import ParameterError
    from vmtool.importers import ArraySource, import_arrays, import_yt8m

    if output is None:
        raise typer.BadParameter("an output file is required", param_hint="'-o' / '--output'")
    command = command_line(ctx)
    if shards:
        arrays_opts = {"--audio": audio, "--video": video, "--audio-offsets": audio_offsets,
                       "--video-offsets": video_offsets, "--ids": ids, "--audio-ids": audio_ids,
                       "--video-ids": video_ids, "--rate": rate, "--audio-rate": audio_rate,
                       "--video-rate": video_rate, "--labels": labels, "--negatives": negatives}
        given = [k for k, v in arrays_opts.items() if v is not None]
        if given:
            raise ParameterError(f"{', '.join(given)} apply to feature arrays, not to YouTube-8M shards "
                                 "(give one or the other; YouTube-8M frame features are 1 Hz)")
        _refuse_array_files(shards)
        with RichProgress(enabled=not quiet) as progress:
            report = import_yt8m(output, shards, audio_name=audio_name, video_name=video_name,
                                 command=command, progress=progress, wait=wait)
        info(f"{output}: {report.n_items} video(s) from {report.n_shards} YouTube-8M shard(s)", quiet)
    else:
        for opt, val, owner in (("--audio-offsets", audio_offsets, audio), ("--audio-ids", audio_ids, audio),
                                ("--audio-rate", audio_rate, audio), ("--audio-name", audio_name, audio),
                                ("--video-offsets", video_offsets, video), ("--video-ids", video_ids, video),
                                ("--video-rate", video_rate, video), ("--video-name", video_name, video)):
            if val is not None and owner is None:
                raise ParameterError(f"{opt} is given without --{opt[2:7]}")
        a = (ArraySource(audio, offsets=audio_offsets, ids=audio_ids, rate=audio_rate, name=audio_name)
             if audio else None)
        v = (ArraySource(video, offsets=video_offsets, ids=video_ids, rate=video_rate, name=video_name)
             if video else None)
        report = import_arrays(output, audio=a, video=v, ids=ids, rate=rate, command=command, wait=wait,
                               labels=labels, negatives=negatives)
        info(f"{output}: {report.n_items} item(s) imported", quiet)
    parts = [f"{report.n_pairs} audio-visual pair(s)", f"{report.n_audio_only} audio only",
             f"{report.n_video_only} video only"]
    if report.n_without:
        parts.append(f"{report.n_without} without features")
    join = {"id": "joined on ids", "position": "paired by position", "single": "one modality",
            "record": "one record per video"}[report.join]
    info(f"  {', '.join(parts)} ({join})", quiet)
    for f in report.features:
        rate_txt = f"{f['rate']:g} Hz" if f["rate"] else "one row per item"
        info(f"  features/{f['name']}: {f['modality']}, {f['level']} level, {f['dim']}-d, {rate_txt}, "
             f"{f['rows']} rows in {f['items']} item(s)", quiet)
    for c in (report.labels or {}).get("columns", []):
        extra = f", {c['classes']} classes" if "classes" in c else ""
        info(f"  labels/{c['name']}: {c['kind']}, {c['items']} item(s){extra}", quiet)
    if (report.labels or {}).get("negatives"):
        info(f"  negatives: {report.labels['negatives']} mismatched pair(s)", quiet)


def _refuse_array_files(shards: list[str]) -> None:
    """A positional argument that is an array file is a mistake: say what to do instead."""
    from vmtool.errors import ParameterError

    for s in shards:
        if Path(s).suffix.lower() in (".npy", ".npz", ".csv", ".tsv", ".h5", ".hdf5"):
            raise ParameterError("arguments are YouTube-8M TFRecord shards; give feature arrays with "
                                 "--audio or --video", s)
