"""``vmtool embed``: a catalog of joint-space embeddings from a features file and a model."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from vmtool.atomic import DEFAULT_WAIT
from vmtool.cli._common import (
    DeviceOpt,
    OutputOpt,
    QuietOpt,
    RichProgress,
    SchedulerOpt,
    VersionOpt,
    WaitOpt,
    command_line,
    handle_errors,
    info,
)

HELP = """Embed every item of a features file with a trained model; write a catalog.

Each item gets a clip embedding per modality it has, and one embedding per segment of the model's segmentation (or --segments). The catalog also stores the model and the recipe (features, segmentation), so 'vmtool rank' can process a raw query exactly the same way.

\b
Examples:
  vmtool embed music.h5 --model model.pt -o catalog.h5
  vmtool embed music.h5 --model clip.pt --segments olda -o catalog.h5 --dtype float16
  vmtool embed music.h5 --model model.pt -o catalog.h5 --scheduler tcp://head:8786
  vmtool rank query.mp4 catalog.h5
"""


class Dtype(str, enum.Enum):
    float32 = "float32"
    float16 = "float16"


def register(app: typer.Typer) -> None:
    app.command("embed", help=HELP, no_args_is_help=True)(embed_cmd)


@handle_errors
def embed_cmd(
    ctx: typer.Context,
    features: Annotated[Path, typer.Argument(metavar="FEATS.h5", help="Features file (with the model's features).",
                                             show_default=False)],
    model: Annotated[Path, typer.Option("--model", metavar="MODEL.pt", help="Model file from vmtool train.",
                                        show_default=False)] = ...,  # type: ignore[assignment]
    output: OutputOpt = ...,  # type: ignore[assignment]
    segments: Annotated[Optional[str], typer.Option("--segments", metavar="METHOD",
                                                    help="Segmentation for segment embeddings "
                                                         "(default: the model's).")] = None,
    dtype: Annotated[Dtype, typer.Option("--dtype", help="Storage type of the embeddings.")] = Dtype.float32,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Keep OUT's embeddings of unchanged items (same id, sha256 and segments) when OUT was "
        "made by the same model with the same settings, and a stopped --scheduler run's (OUT.vmtool-partial); "
        "embed only the others.")] = False,
    prototypes: Annotated[bool, typer.Option(
        "--prototypes/--no-prototypes",
        help="Models trained with --loss cosface:class_label=COLUMN (VMCML): a track the model was trained on gets its class "
             "prototype as music embedding, as VMCML retrieves seen music.")] = True,
    device: DeviceOpt = "auto",
    wait: WaitOpt = DEFAULT_WAIT,
    scheduler: SchedulerOpt = None,
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    from vmtool.device import resolve_device
    from vmtool.embed import embed

    with RichProgress(enabled=not quiet) as progress:
        rep = embed(features, model, output, segments=segments, device=resolve_device(device), dtype=dtype.value,
                    resume=resume, command=command_line(ctx), progress=progress, wait=wait, scheduler=scheduler,
                    prototypes=prototypes)
    parts = [f"{mod} {n}" for mod, n in sorted(rep.clip.items())]
    seg = ", ".join(f"{mod} {n}" for mod, n in sorted(rep.segments.items()))
    msg = f"wrote {rep.output}: {rep.items} items; clip embeddings: {', '.join(parts) or 'none'}"
    if rep.segmentation:
        msg += f"; {rep.segmentation} segment embeddings: {seg or 'none'}"
    if rep.reused:
        msg += f"; {rep.reused} kept from the previous catalog"
    if rep.prototypes:
        msg += f"; {rep.prototypes} music embedding(s) from the model's track prototypes"
    if rep.skipped:
        msg += f"; {len(rep.skipped)} item(s) without the model's features"
    info(msg, quiet)
    from vmtool.cli.merge import _stale_index_notice

    _stale_index_notice(output)
