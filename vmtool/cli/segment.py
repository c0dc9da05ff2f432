"""``vmtool segment``: segment boundaries by music structure, shots, beats, bars or windows."""

from __future__ import annotations

import enum
import textwrap
from pathlib import Path
from typing import Annotated, Optional

import typer

from vmtool.atomic import DEFAULT_WAIT

from vmtool.cli._common import (
    VersionOpt,
    DeviceOpt,
    Format,
    QuietOpt,
    WaitOpt,
    RichProgress,
    SchedulerOpt,
    SendMediaOpt,
    WorkersOpt,
    command_line,
    echo_json,
    error,
    handle_errors,
    info,
    print_table,
)

from vmtool.segmentation import registry


def _methods_help() -> str:
    """One line per registered method (its summary), wrapped under its name."""
    width = max(map(len, registry.names())) + 2
    lines = []
    for name in registry.names():
        text = textwrap.wrap(registry.get(name).summary, 76 - width)
        lines += [f"  {name:<{width}}{text[0]}", *(" " * (width + 2) + t for t in text[1:])]
    return "\n".join(lines)


HELP = f"""Segment items into sections, shots, beats, bars or fixed windows.

INPUT is one vmtool file (the boundaries are added to a copy written to OUT, which may be the same file) or media files (OUT is a new collection). Each method is stored under its own name; running a method again replaces its result.

\b
Methods:
{_methods_help()}

\b
Examples:
  vmtool segment clip.h5 --method olda --method transnet -o clip.h5
  vmtool segment song.mp3 -m foote --labels fmc2d -o song.h5 --plot plots/
  vmtool segment salami/*.mp3 -m olda -o s.h5 --reference annotations/ --format json
  vmtool segment music.h5 -m olda -o music-seg.h5 --resume   # only new tracks
  vmtool segment music.h5 -m olda -o music-seg.h5 --scheduler local:2
"""

Method = enum.Enum("Method", {m: m for m in registry.names()}, type=str)
BoundaryTimes = enum.Enum("BoundaryTimes", {m: m for m in registry.BOUNDARY_TIMES}, type=str)
Labels = enum.Enum("Labels", {m: m for m in registry.LABEL_METHODS}, type=str)


def _users(param: str) -> str:
    """The methods that use *param*, as an option's help names them (``foote/sf/olda``)."""
    return "/".join(registry.users(param))


def _min_duration_default() -> str:
    """The methods' default shortest segment, as --min-duration's help says it
    (``Default: 1, or 0 for beats and bars``)."""
    by_value: dict[float, list[str]] = {}
    for m in registry.names():
        by_value.setdefault(registry.get(m).min_duration, []).append(m)
    common = max(by_value, key=lambda v: len(by_value[v]))
    others = [f"{v:g} for {' and '.join(ms) if len(ms) <= 2 else ', '.join(ms)}"
              for v, ms in by_value.items() if v != common]
    return f"Default: {common:g}" + "".join(f", or {o}" for o in others) + "."


def register(app: typer.Typer) -> None:
    app.command("segment", help=HELP, no_args_is_help=True)(segment_cmd)


@handle_errors
def segment_cmd(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(metavar="INPUT...", show_default=False,
                                                 help="One vmtool file, or media files.")],
    method: Annotated[list[Method], typer.Option("--method", "-m", help="Segmentation method (repeatable).",
                                                 show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", dir_okay=False, show_default=False,
                                         help="Output collection file (written atomically).")],
    threshold: Annotated[float, typer.Option(
        "--threshold", help=f"{_users('threshold')}: shot-likelihood threshold.")] = registry.param("threshold").default,
    beats_per_bar: Annotated[Optional[int], typer.Option(
        "--beats-per-bar", help=f"{_users('beats_per_bar')}: beats per bar (default: estimated).")] = None,
    window: Annotated[Optional[float], typer.Option("--window", help=f"{_users('window')}: window length in seconds.")] = None,
    labels: Annotated[Optional[Labels], typer.Option("--labels", help="Add MSAF segment labels (music methods).")] = None,
    min_duration: Annotated[Optional[float], typer.Option(
        "--min-duration", help=f"Merge segments shorter than this (s). {_min_duration_default()}")] = None,
    boundary_times: Annotated[BoundaryTimes, typer.Option(
        "--boundary-times", help=f"{_users('boundary_times')}: place a boundary at the end of its beat frame as msaf "
        "reports it (msaf), or at its start, one beat earlier (frame-start).")] = BoundaryTimes(
            registry.param("boundary_times").default),
    reference: Annotated[Optional[Path], typer.Option(
        "--reference", help="Reference annotations: a JAMS or 'time label' file, or a directory of <id>.jams/.txt/.lab; "
        "reports boundary hit rates at 0.5 s and 3 s.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", file_okay=False, help="Write one PNG per item and method here.")] = None,
    fmt: Annotated[Optional[Format], typer.Option("--format", "-f", help="Print the results on stdout (default: table with --reference, else nothing).")] = None,
    device: DeviceOpt = "auto",
    workers: WorkersOpt = 1,
    scheduler: SchedulerOpt = None,
    send_media: SendMediaOpt = False,
    keep_going: Annotated[bool, typer.Option("--keep-going", "-k", help="Record failures, finish the rest, exit 1 at the end.")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Keep OUT's results of unchanged items (same id and sha256) made with the same "
        "parameters, and a stopped run's (OUT.vmtool-partial); segment only the others.")] = False,
    wait: WaitOpt = DEFAULT_WAIT,
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    from vmtool.device import resolve_device
    from vmtool.segment import SegmentConfig, segment

    config = SegmentConfig(
        methods=tuple(m.value for m in method), threshold=threshold, beats_per_bar=beats_per_bar,
        window=window, labels=labels.value if labels else None, min_duration=min_duration,
        boundary_times=boundary_times.value,
    )
    if plot is not None:
        plot.mkdir(parents=True, exist_ok=True)
    with RichProgress(enabled=not quiet) as progress:
        report = segment(inputs, output, config, device=resolve_device(device), workers=workers,
                         keep_going=keep_going, resume=resume, reference=reference, plot_dir=plot,
                         command=command_line(ctx), progress=progress, wait=wait, scheduler=scheduler,
                         send_media=send_media)
    for _, msg in report.failures:
        error(msg)
    if fmt is Format.json:
        echo_json(report.to_dict())
    elif fmt is Format.table or reference is not None:
        _table(report, with_rates=reference is not None)
    n_items = len({r["item"] for r in report.rows})
    kept = max(report.reused.values(), default=0)
    info(f"{output}: {n_items} item(s) segmented with {', '.join(config.methods)}"
         + (f" ({kept} kept from the previous run)" if kept else "")
         + (f", {len(report.failures)} failure(s)" if report.failures else ""), quiet and not report.failures)
    if report.failures:
        raise typer.Exit(1)


def _table(report, *, with_rates: bool) -> None:
    from rich.table import Table

    keys = ["F@0.5", "P@0.5", "R@0.5", "F@3", "P@3", "R@3"]
    t = Table(box=None, pad_edge=False)
    for col in ["item", "method", "segments"] + (keys if with_rates else []):
        t.add_column(col)
    for r in report.rows:
        vals = [f"{r[k]:.3f}" if k in r else "-" for k in keys] if with_rates else []
        t.add_row(r["item"], r["method"], str(r["n_segments"]), *vals)
    for m, mean in report.means.items():
        t.add_row(f"mean ({mean['n_items']} items)", m, "", *[f"{mean[k]:.3f}" for k in keys])
    print_table(t)
