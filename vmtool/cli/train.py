"""``vmtool train``: learn a joint music/video embedding from paired clips (and, for DPVM, their labels)."""

from __future__ import annotations

import enum
import sys
import textwrap
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vmtool.atomic import DEFAULT_WAIT

from vmtool.cli._common import DeviceOpt, IdsOpt, OutputOpt, QuietOpt, WaitOpt, VersionOpt, command_line, error, handle_errors, info, read_ids
from vmtool.models.loss_registry import names as loss_names
from vmtool.training.presets import preset_names

HELP = """Train a joint embedding (VM-Net family or DPVM) on the audio-visual pairs of a features file.

Every item with both audio and video features is a matched pair (a music video); the model learns to put each video next to its own music. A random --val-fraction of the items is held out; training stops early when the validation video-to-music R@10 stops improving, and MODEL keeps the best weights. MODEL is rewritten atomically at each improvement, so an interrupted run keeps its last checkpoint; --resume continues it.

\b
Levels:   clip (VM-Net) | segment (Seg-VM-Net: one pair per segment of --segments)
Inputs:   --aggregation stats (mean/var/max; mean for segments) | attention | autopool
Models:   vmnet (two branches; every loss below but dpvm)
          | dpvm (Gu, Shen and Lv: content path + emotion path + fusion, eq. 8;
            needs emotion labels: vmtool label; --fusion)

\b
Losses (--loss NAME:KEY=VALUE,...; a value may hold commas: lambdas=1,1,0,0).
Keys with their defaults; meanings and sources: docs/training.md.
{losses}

\b
Presets (--preset NAME): every hyper-parameter of a paper's setup; options given
explicitly win (a --loss keeps the preset's loss parameters it does not set).
Settings and sources: docs/reproducing.md.
{presets}

\b
Examples:
  vmtool train feats.h5 -o model.pt
  vmtool train feats.h5 -o seg.pt --preset segvmnet --max-time 3600
  vmtool train feats.h5 -o vmcml.pt --preset vmcml --lr 1e-4
  vmtool train feats.h5 -o seg.pt --level segment --segments olda --max-time 600
  vmtool train feats.h5 -o att.pt --aggregation attention --loss infonce:temperature=0.1 --seed 1
  vmtool train feats.h5 -o tri.pt --loss vmnet:lambdas=1,1,0,0,hard_negatives=100
  vmtool train feats.h5 -o model.pt --resume --epochs 200
  vmtool train labelled.h5 -o dpvm.pt --model dpvm --loss dpvm:metric=ppml --batch-size 16
"""


def _help() -> str:
    from vmtool.models.loss_registry import LOSSES
    from vmtool.training.presets import PRESETS

    losses = []
    for x in LOSSES.values():
        losses += textwrap.wrap(f"{x.summary} ({x.paper})", 76, initial_indent=f"  {x.name:<9} ",
                                subsequent_indent=" " * 12)
        keys = " ".join(f"{p.name}={p.show(p.default) or chr(39) * 2}" for p in x.params)
        losses += textwrap.wrap(keys, 76, initial_indent=" " * 12, subsequent_indent=" " * 12)
    return (HELP.replace("{losses}", "\n".join(losses))
            .replace("{presets}", "\n".join(f"  {p.name:<15} {p.summary}" for p in PRESETS.values())))


class Level(str, enum.Enum):
    clip = "clip"
    segment = "segment"


class Aggregation(str, enum.Enum):
    stats = "stats"
    attention = "attention"
    autopool = "autopool"


class FrameSampling(str, enum.Enum):
    random = "random"
    even = "even"


class Model(str, enum.Enum):
    vmnet = "vmnet"
    dpvm = "dpvm"


class Fusion(str, enum.Enum):
    interactive = "interactive"
    splicing = "splicing"
    content = "content"
    emotion = "emotion"


def retired_loss_options(args: list[str]) -> str | None:
    """The message refusing the per-loss options that ``--loss NAME:KEY=VALUE`` replaced, if *args* use one.

    It shows the ``--loss`` that says the same: the old options of one loss (that of the
    ``--loss`` given, else that of the first old option) become its keys, after any the
    given ``--loss`` already sets (``--loss cosface --cos-scale 20`` -> ``cosface:scale=20``).
    """
    import shlex

    from vmtool.models.loss_registry import old_option

    found, given = [], None
    i = 0
    while i < len(args) and args[i] != "--":
        name, eq, value = args[i].partition("=")
        hit = old_option(name)
        if (name == "--loss" or hit is not None) and not eq:  # the value is the next word
            value = args[i + 1] if i + 1 < len(args) else ("VALUE" if hit else "")
            i += 1
        if name == "--loss":
            given = value
        elif hit is not None:
            found.append((name, *hit, value))
        i += 1
    if not found:
        return None
    owners = [loss.name for _, loss, _, _ in found]
    given_name = given.partition(":")[0].strip().lower() if given else ""
    target = given_name if given_name in owners else owners[0]
    mine = [f for f in found if f[1].name == target]
    spec = given.strip() if given_name == target else target
    sep = "" if spec.endswith(":") else "," if ":" in spec else ":"
    spec += sep + ",".join(f"{p.name}={v}" for _, _, p, v in mine)
    flags = ", ".join(f[0] for f in mine)
    verb = "is" if len(mine) == 1 else "are"
    return f"{flags} {verb} now part of --loss: use --loss {shlex.quote(spec)}"


class _TrainCommand(typer.core.TyperCommand):
    """``vmtool train``, refusing the retired per-loss options with their new spelling (exit 2)."""

    def parse_args(self, ctx, args):
        message = None if ctx.resilient_parsing else retired_loss_options(list(args))
        if message is not None:
            error(message)
            raise typer.Exit(2)
        return super().parse_args(ctx, args)


def register(app: typer.Typer) -> None:
    app.command("train", help=_help(), no_args_is_help=True, cls=_TrainCommand)(train_cmd)


def _ints(text: str, what: str) -> list[int]:
    from vmtool.errors import ParameterError

    import re

    parts = [x.strip() for x in re.split(r"[,-]", text)]  # 2048,1024,512 or 2048-1024-512
    try:
        # an empty part is a stray separator: "-512" must not become 512
        vals = [int(x) for x in parts] if all(parts) else []
    except ValueError:
        raise ParameterError(f"{what} must be widths like 2048,1024,512, got {text!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise ParameterError(f"{what} must be positive widths like 2048,1024,512, got {text!r}")
    return vals


def _names(values: list[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


class _Reporter:
    """Epoch lines on stderr; a batch bar when stderr is a terminal."""

    def __init__(self, quiet: bool, bars: bool = True):
        self.quiet = quiet
        self.bar = None
        self.task = None
        if bars and not quiet and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True)

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()

    def log(self, message: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.console.print(message, markup=False, highlight=False)
        else:
            info(message)

    def epoch_start(self, epoch: int, n_batches: int) -> None:
        if self.bar is not None:
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.task = self.bar.add_task(f"epoch {epoch}", total=n_batches, loss="-")

    def batch_done(self, batch: int, loss: float) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=batch, loss=f"{loss:.4f}")

    def epoch_end(self, r: dict[str, Any]) -> None:
        line = f"epoch {r['epoch']:>3}  loss {r['loss']:.4f}  {r['pairs_per_s']:.0f} pairs/s"
        if "v2m_r10" in r:
            line += (f"  val V2M R@1 {r['v2m_r1']:.1f} R@10 {r['v2m_r10']:.1f} mean rank {r['v2m_mean_rank']:.1f}"
                     f"  M2V R@10 {r['m2v_r10']:.1f}")
        if r.get("best"):
            line += "  *"
        self.log(line)


def _options(ctx: typer.Context, preset: str | None) -> dict[str, Any]:
    """The options' values (enums as strings), with *preset*'s settings where the user
    gave no value of their own (read from the context: a default is not an explicit choice)."""
    values = {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in ctx.params.items()}
    if preset is None:
        return values
    from vmtool.training.presets import apply_preset

    explicit = set()
    for k in values:
        src = ctx.get_parameter_source(k)
        if src is not None and src.name not in ("DEFAULT", "DEFAULT_MAP"):
            explicit.add(k)
    return apply_preset(preset, values, explicit)


@handle_errors
def train_cmd(
    ctx: typer.Context,
    features: Annotated[Path, typer.Argument(metavar="FEATS.h5", help="Features file (vmtool extract / import).",
                                             show_default=False)],
    output: OutputOpt = ...,  # type: ignore[assignment]
    preset: Annotated[Optional[str], typer.Option("--preset", metavar="|".join(preset_names()),
                                                  help="A paper's settings (listed below; explicit options "
                                                       "win).")] = None,
    level: Annotated[Level, typer.Option("--level", help="Train on whole clips or on segments.")] = Level.clip,
    segments: Annotated[Optional[str], typer.Option("--segments", metavar="METHOD",
                                                    help="Segmentation stored in FEATS.h5 (segment level).")] = None,
    aggregation: Annotated[Aggregation, typer.Option("--aggregation", help="How frames become one input.")] = Aggregation.stats,
    frames: Annotated[int, typer.Option("--frames", min=1, max=10000,
                                        help="Frames sampled per window for attention/autopool.")] = 100,
    frame_sampling: Annotated[FrameSampling, typer.Option(
        "--frame-sampling", help="attention/autopool: T frames drawn at random each epoch (thesis) or evenly "
                                 "spaced.")] = FrameSampling.random,
    audio_features: Annotated[list[str], typer.Option("--audio-features", "-a", metavar="NAME[,NAME]",
                                                      help="Audio features to use (default: all in the file).")] = [],  # noqa: B006
    video_features: Annotated[list[str], typer.Option("--video-features", "-v", metavar="NAME[,NAME]",
                                                      help="Video features to use (default: all in the file).")] = [],  # noqa: B006
    model: Annotated[Model, typer.Option("--model", help="Model family.")] = Model.vmnet,
    fusion: Annotated[Fusion, typer.Option("--fusion", help="dpvm: final embedding (content/emotion: one path alone).")] = Fusion.interactive,
    loss: Annotated[Optional[str], typer.Option(
        "--loss", metavar="|".join(loss_names()) + "[:KEY=VALUE,...]", show_default=False,
        help="Training objective and its parameters, e.g. cosface:scale=30,margin=0.2 (listed below; default "
             "vmnet, or dpvm for --model dpvm).")] = None,
    audio_layers: Annotated[str, typer.Option("--audio-layers", help="Music branch widths.")] = "2048,1024,512",
    video_layers: Annotated[str, typer.Option("--video-layers", help="Video branch widths.")] = "2048,512",
    dropout: Annotated[float, typer.Option("--dropout", min=0.0, max=0.9, help="Dropout after hidden layers.")] = 0.2,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=2, help="Pairs per batch.")] = 1000,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = 1e-3,
    weight_decay: Annotated[float, typer.Option("--weight-decay", min=0.0, help="Adam weight decay.")] = 0.0,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="At most this many epochs.")] = 100,
    max_time: Annotated[Optional[float], typer.Option("--max-time", metavar="SECONDS",
                                                      help="Stop after the epoch that passes this time.")] = None,
    patience: Annotated[int, typer.Option("--patience", min=0,
                                          help="Epochs without validation gain before stopping (0: never).")] = 10,
    val_fraction: Annotated[float, typer.Option("--val-fraction", min=0.0, max=0.9,
                                                help="Share of items held out for validation.")] = 0.1,
    seed: Annotated[int, typer.Option("--seed", help="Seed: same seed, same data, same model.")] = 0,
    ids_file: IdsOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run stored in the output file.")] = False,
    device: DeviceOpt = "auto",
    wait: WaitOpt = DEFAULT_WAIT,
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    from vmtool.device import resolve_device
    from vmtool.errors import ParameterError, UsageError
    from vmtool.models.loss_registry import loss_config, parse_loss
    from vmtool.training import DataConfig, TrainConfig, train

    if loss is not None:
        try:
            parse_loss(loss)  # a bad --loss is a usage error, found before anything is read
        except ParameterError as exc:
            raise UsageError(exc.reason) from None
    o = _options(ctx, preset)
    base = None
    if preset is not None:
        from vmtool.training.presets import get_preset

        p = get_preset(preset)
        base = p.settings.get("loss")
        info(f"preset {p.name} ({p.paper}): {p.describe()}; options given explicitly win", quiet)
    data = DataConfig(audio_features=_names(audio_features), video_features=_names(video_features),
                      level=o["level"], segments=o["segments"], aggregation=o["aggregation"], frames=o["frames"],
                      sampling=o["frame_sampling"])
    dpvm = o["model"] == "dpvm"
    lcfg = loss_config(loss, model=o["model"], base=base)
    tcfg = TrainConfig(batch_size=o["batch_size"], lr=o["lr"], weight_decay=o["weight_decay"], epochs=o["epochs"],
                       max_time=max_time, patience=o["patience"], val_fraction=o["val_fraction"], seed=seed)
    dropout = o["dropout"]
    audio_layers, video_layers = o["audio_layers"], o["video_layers"]
    layers = {"audio": _ints(audio_layers, "--audio-layers"), "video": _ints(video_layers, "--video-layers")}
    ids = read_ids(ids_file)
    with _Reporter(quiet) as rep:
        res = train(features, output, data=data, model_layers=layers, dropout=dropout, loss=lcfg,
                    config=tcfg, device=resolve_device(device), resume=resume, reporter=rep,
                    command=command_line(ctx), ids=ids, wait=wait, model=o["model"],
                    model_options={"fusion": o["fusion"]} if dpvm else None)
    best = res.best
    summary = f"wrote {res.path}: {res.epochs} epochs ({res.stopped}), best epoch {res.best_epoch}"
    if "v2m_r10" in best:
        summary += f", val V2M R@10 {best['v2m_r10']:.1f}%, mean rank {best['v2m_mean_rank']:.1f}"
    info(summary + f", {res.seconds:.1f} s", quiet)
