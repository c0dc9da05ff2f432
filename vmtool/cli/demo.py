"""``vmtool demo``: the main job on built-in demo data (no download needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vmtool.cli._common import DeviceOpt, QuietOpt, RichProgress, command_line, handle_errors, info

HELP = """Run vmtool on built-in demo data.

Synthesizes a short music video (music with known tempo and sections, visuals cut on bars), extracts its default features into DIR/demo.h5 and shows what the file holds. Everything is generated locally; nothing is downloaded.

\b
Example:
  vmtool demo --dir demo-out
"""


def register(app: typer.Typer) -> None:
    app.command("demo", help=HELP)(demo_cmd)


@handle_errors
def demo_cmd(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Option("--dir", file_okay=False, help="Where to write the demo files.")] = Path("demo-out"),
    duration: Annotated[float, typer.Option("--duration", min=2.0, max=600.0, help="Seconds of demo clip.")] = 20.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthesized clip.")] = 0,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    from vmtool.cli.info import _table
    from vmtool.device import resolve_device
    from vmtool.extract import ExtractConfig, extract
    from vmtool.info import describe
    from vmtool.synth import make_clip

    directory.mkdir(parents=True, exist_ok=True)
    clip = directory / "demo.mp4"
    out = directory / "demo.h5"
    info(f"synthesizing {clip} ({duration:g} s music video, seed {seed})", quiet)
    truth = make_clip(clip, duration=duration, seed=seed)
    info(f"extracting features into {out}", quiet)
    with RichProgress(enabled=not quiet) as progress:
        extract([clip], out, ExtractConfig(), device=resolve_device(device), progress=progress,
                command=command_line(ctx))
    _table(describe(out))
    info(f"demo clip: tempo {truth.music.tempo:g} BPM, {len(truth.cut_times)} shot cuts; "
         f"try: vmtool info {out} --format json", quiet)
