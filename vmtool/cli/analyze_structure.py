"""``vmtool analyze-structure``: how the cuts of music videos follow their music."""

from __future__ import annotations

import enum
import math
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from vmtool.atomic import DEFAULT_WAIT
from vmtool.segmentation import registry

from vmtool.cli._common import (
    VersionOpt,
    DeviceOpt,
    QuietOpt,
    WaitOpt,
    RichProgress,
    SchedulerOpt,
    WorkersOpt,
    command_line,
    echo_json,
    error,
    handle_errors,
    info,
    print_table,
)

HELP = """Analyse how the shot cuts of music videos follow the beats, bars and sections of their music.

For each clip: D_beat = 60/BPM and D_bar (BPM and time signature from --metadata, else estimated), the downbeats l_bar and the segment boundaries l_seg (--segments), the shot likelihood f_shot(t) at 25 Hz (TransNetV2), the cuts (f_shot > --threshold), the mode D_shot_max of the shot-duration histogram, the synchronisation level (beat, bar or pattern when 0.5 D < D_shot_max < 1.5 D for D = D_beat, D_bar, 4 D_bar), and the co-occurrence scores S(l_seg), S(l_bar) (and S at the beats) of the music boundaries with f_shot (Gaussian window, sigma 2 frames) with their chance level (boundaries circularly shifted at random, --shuffles times), and the phase-free score of the downbeats: the best S(l_bar + d) over the offsets d of one bar, the offset, and its chance level (the same sweep with the cuts moved to random times). As in the thesis, l_seg uses MSAF's boundary times and l_bar madmom's downbeat tracker when installed (--downbeats auto; pip install 'vmtool[madmom]'), else vmtool's estimator; stderr and OUT say which one ran.

Then per music genre and per video genre (at least --min-count clips): clips synchronised at bar, beat and pattern level, mean S with 95% confidence intervals and chance levels. Printed on stdout (--format); OUT keeps the per-clip values and curves.

INPUT: media files, or vmtool collections holding what is needed (curves/shot_likelihood, segmentations/olda, segmentations/bars: what is missing is computed from the items' sources). One collection alone is copied to OUT (which may be the same file) with the analysis added.

\b
--metadata: a CSV with a header line. The Harmonix Set's metadata.csv
(File, BPM, Time Signature, Genre) is read as it is; the video genre
is read from a 'Video Genre' column. Other layouts: --column FIELD=HEADER
with FIELD one of file, bpm, time_signature, music_genre, video_genre.

\b
Examples:
  vmtool analyze-structure clip.mp4 -o clip.structure.h5 --plot plots/
  vmtool analyze-structure videos/*.mp4 --metadata metadata.csv -o study.h5 -j 2 -k
  vmtool analyze-structure videos/*.mp4 -o study.h5 --scheduler tcp://head:8786
  vmtool analyze-structure study.h5 --metadata new.csv -o study.h5 --format csv > genres.csv
  vmtool analyze-structure clips.h5 --metadata m.csv --column file=name \\
      --column video_genre=style -o clips.h5 --per-clip --format json
"""


Segments = enum.Enum("Segments", {m: m for m in registry.names(family="music", first="olda")}, type=str)


class Downbeats(str, enum.Enum):
    auto = "auto"
    madmom = "madmom"
    librosa = "librosa"


class StructureFormat(str, enum.Enum):
    table = "table"
    json = "json"
    csv = "csv"


def register(app: typer.Typer) -> None:
    app.command("analyze-structure", help=HELP, no_args_is_help=True)(analyze_structure_cmd)


@handle_errors
def analyze_structure_cmd(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(metavar="INPUT...", show_default=False,
                                                 help="Media files and/or vmtool collections.")],
    output: Annotated[Path, typer.Option("-o", "--output", dir_okay=False, show_default=False,
                                         help="Output collection file (written atomically).")],
    metadata: Annotated[Optional[Path], typer.Option(
        "--metadata", dir_okay=False, metavar="FILE.csv",
        help="Per-clip BPM, time signature, music genre, video genre (CSV with a header).")] = None,
    column: Annotated[Optional[list[str]], typer.Option(
        "--column", metavar="FIELD=HEADER",
        help="Metadata column of a field (repeatable); default File, BPM, Time Signature, Genre, Video Genre.")] = None,
    segments: Annotated[Segments, typer.Option("--segments", help="Music-structure method of l_seg.")] = Segments.olda,
    downbeats: Annotated[Downbeats, typer.Option(
        "--downbeats", help="Downbeat tracker of l_bar: madmom's RNN (the thesis'), vmtool's librosa-based "
        "estimator, or auto (madmom when installed).")] = Downbeats.auto,
    threshold: Annotated[float, typer.Option("--threshold", help="Shot likelihood above which a frame is a cut.")] = 0.5,
    bin_width: Annotated[float, typer.Option("--bin-width", help="Bin width of the shot-duration histogram (s).")] = 0.2,
    shuffles: Annotated[int, typer.Option("--shuffles", min=1, help="Random circular shifts per clip for the chance level.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random shifts.")] = 0,
    min_count: Annotated[int, typer.Option("--min-count", min=1, help="Leave out genres with fewer clips.")] = 10,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", file_okay=False, metavar="DIR",
        help="Write per-clip pictures (histogram, f_shot) and per-genre bar charts here.")] = None,
    fmt: Annotated[StructureFormat, typer.Option("--format", "-f", help="Output format on stdout.")] = StructureFormat.table,
    per_clip: Annotated[bool, typer.Option("--per-clip", help="Print one row per clip instead of the per-genre tables (table, csv).")] = False,
    device: DeviceOpt = "auto",
    workers: WorkersOpt = 1,
    scheduler: SchedulerOpt = None,
    keep_going: Annotated[bool, typer.Option("--keep-going", "-k", help="Record failed clips, finish the rest, exit 1 at the end.")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue a stopped run: reuse the clips it left in OUT.vmtool-partial.")] = False,
    wait: WaitOpt = DEFAULT_WAIT,
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    from vmtool.device import validate_device
    from vmtool.structure import StructureConfig, analyze_structure

    config = StructureConfig(segments=segments.value, threshold=threshold, bin_width=bin_width, shuffles=shuffles,
                             seed=seed, min_count=min_count, downbeats=downbeats.value)
    config.validate()  # before decoding anything
    # resolved by TransNetV2 when a clip needs it: on stored likelihoods torch is never imported
    device = validate_device(device)
    if plot is not None:
        plot.mkdir(parents=True, exist_ok=True)
    with RichProgress(enabled=not quiet) as progress:
        report = analyze_structure(inputs, output, config, metadata=metadata, columns=column,
                                   device=device, workers=workers, keep_going=keep_going, scheduler=scheduler,
                                   resume=resume, plot_dir=plot, command=command_line(ctx), progress=progress, wait=wait)
    for _, msg in report.failures:
        error(msg)
    if not quiet:
        for w in report.warnings:
            sys.stderr.write(f"Warning: {w}\n")
    if fmt is StructureFormat.json:
        echo_json(report.to_dict())
    elif fmt is StructureFormat.csv:
        _csv(report, per_clip)
    elif per_clip:
        _clip_table(report)
    else:
        _group_tables(report)
    left_out = [f"{by.replace('_', ' ')} {g!r} ({n})" for by, lst in report.omitted.items() for g, n in lst]
    if left_out:
        info(f"left out (fewer than {config.min_count} clips): " + ", ".join(left_out), quiet)
    n_ok = sum(not c.failed for c in report.clips)
    info(f"{output}: {n_ok} clip(s) analysed" + (f", {len(report.failures)} failure(s)" if report.failures else ""),
         quiet and not report.failures)
    if report.failures:
        raise typer.Exit(1)


def _f(v, digits: int = 3) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def _ci(s: dict) -> str:
    if not math.isfinite(s["mean"]):
        return "-"
    if not math.isfinite(s["ci_low"]):
        return f"{s['mean']:.3f}"
    return f"{s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"


def _group_tables(report) -> None:
    from rich.table import Table

    groups = report.aggregates()
    sys.stdout.write("Synchronisation level: clips whose D_shot_max is within 0.5-1.5 x the level's period\n")
    t = Table(box=None, pad_edge=False)
    for col in ("grouping", "genre", "clips", "bar", "bar %", "beat", "beat %", "pattern", "pattern %",
                "none", "unknown"):
        t.add_column(col, justify="left" if col in ("grouping", "genre") else "right")
    for g in groups:
        c = g.counts
        t.add_row(g.grouping, g.genre, str(g.n_clips), str(c.get("bar", 0)), _f(g.pct("bar"), 1),
                  str(c.get("beat", 0)), _f(g.pct("beat"), 1), str(c.get("pattern", 0)), _f(g.pct("pattern"), 1),
                  str(c.get("none", 0)), str(c.get("unknown", 0)))
    print_table(t)
    sys.stdout.write("\n")
    sys.stdout.write("Co-occurrence of music boundaries with shot cuts: mean S [95% CI] and chance level\n")
    t = Table(box=None, pad_edge=False)
    for col in ("grouping", "genre", "clips", "S(l_seg)", "chance", "S(l_bar)", "chance", "S(beats)", "chance"):
        t.add_column(col, justify="left" if col in ("grouping", "genre") else "right")
    for g in groups:
        t.add_row(g.grouping, g.genre, str(g.n_clips), _ci(g.s_seg), _f(g.s_seg["chance"]), _ci(g.s_bar),
                  _f(g.s_bar["chance"]), _ci(g.s_beat), _f(g.s_beat["chance"]))
    print_table(t)
    sys.stdout.write("\n")
    sys.stdout.write("Phase-free S(l_bar): best offset within one bar, chance from the same sweep with "
                     "the cuts at random times; offset as a circular mean in bars (r: 1 = one common phase)\n")
    t = Table(box=None, pad_edge=False)
    for col in ("grouping", "genre", "clips", "S free", "chance", "offset (bars)", "r"):
        t.add_column(col, justify="left" if col in ("grouping", "genre") else "right")
    for g in groups:
        t.add_row(g.grouping, g.genre, str(g.n_clips), _ci(g.s_bar_free), _f(g.s_bar_free["chance"]),
                  _f(g.s_bar_free.get("offset_bars"), 2), _f(g.s_bar_free.get("offset_r"), 2))
    print_table(t)


def _clip_table(report) -> None:
    from rich.table import Table

    t = Table(box=None, pad_edge=False)
    for col in ("clip", "music genre", "video genre", "BPM", "beats/bar", "D_beat", "D_bar", "D_shot_max", "shots",
                "sync", "S(l_seg)", "chance", "S(l_bar)", "chance", "S(beats)", "chance", "downbeats", "S free",
                "chance", "offset s", "status"):
        t.add_column(col)
    for c in report.clips:
        src = {"metadata": "m", "estimated": "e"}.get(c.bpm_source, "")
        msrc = {"metadata": "m", "estimated": "e", "default": "d"}.get(c.meter_source, "")
        t.add_row(c.item.id, c.music_genre, c.video_genre, f"{_f(c.bpm, 1)}{src}", f"{_f(c.beats_per_bar, 1)}{msrc}",
                  _f(c.d_beat), _f(c.d_bar), _f(c.d_shot_max, 2), str(c.n_shots), c.sync_level, _f(c.s_seg),
                  _f(c.s_seg_chance), _f(c.s_bar), _f(c.s_bar_chance), _f(c.s_beat), _f(c.s_beat_chance),
                  c.downbeat_tracker or "-", _f(c.s_bar_free), _f(c.s_bar_free_chance), _f(c.s_bar_free_offset, 2),
                  c.status_text)
    print_table(t)


def _csv(report, per_clip: bool) -> None:
    import csv

    if per_clip:
        rows = [c.to_dict() for c in report.clips]
        for r in rows:
            r["notes"] = "; ".join(r["notes"])
    else:
        rows = [g.to_dict() for g in report.aggregates()]
    writer = csv.writer(sys.stdout, lineterminator="\n")
    if not rows:
        return
    keys = list(rows[0])
    writer.writerow(keys)
    for r in rows:
        writer.writerow(["" if r[k] is None else r[k] for k in keys])
