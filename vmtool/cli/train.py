"""``vmtool train``: learn a joint music/video embedding from paired clips (and, for DPVM, their labels)."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vmtool.atomic import DEFAULT_WAIT

from vmtool.cli._common import DeviceOpt, IdsOpt, OutputOpt, QuietOpt, WaitOpt, VersionOpt, command_line, handle_errors, info, read_ids

HELP = """Train a joint embedding (VM-Net family or DPVM) on the audio-visual pairs of a features file.

Every item with both audio and video features is a matched pair (a music video); the model learns to put each video next to its own music. A random --val-fraction of the items is held out; training stops early when the validation video-to-music R@10 stops improving, and MODEL keeps the best weights. MODEL is rewritten atomically at each improvement, so an interrupted run keeps its last checkpoint; --resume continues it.

\b
Levels:   clip (VM-Net) | segment (Seg-VM-Net: one pair per segment of --segments)
Inputs:   --aggregation stats (mean/var/max; mean for segments) | attention | autopool
Losses:   vmnet (triplets, Hong et al. 2018) | bce (Prétet et al. 2021)
          | cosface (VMCML, Lee et al.) | infonce (contrastive baseline)
          | ppml (polarity penalty, DPVM eqs. 10-12; needs a 'polarity' label)
Models:   vmnet (two branches, the losses above)
          | dpvm (Gu, Shen and Lv: content path + emotion path + fusion, eq. 8;
            needs emotion labels: vmtool label; --fusion, --metric)

\b
Presets (--preset NAME): every hyper-parameter of a paper's setup; options given
explicitly win. Settings and sources: docs/reproducing.md.
{presets}

\b
Examples:
  vmtool train feats.h5 -o model.pt
  vmtool train feats.h5 -o seg.pt --preset segvmnet --max-time 3600
  vmtool train feats.h5 -o vmcml.pt --preset vmcml --lr 1e-4
  vmtool train feats.h5 -o seg.pt --level segment --segments olda --max-time 600
  vmtool train feats.h5 -o att.pt --aggregation attention --loss infonce --seed 1
  vmtool train feats.h5 -o model.pt --resume --epochs 200
  vmtool train labelled.h5 -o dpvm.pt --model dpvm --batch-size 16 --lr 1e-4
"""


def _help() -> str:
    from vmtool.training.presets import PRESETS

    return HELP.replace("{presets}", "\n".join(f"  {p.name:<15} {p.summary}" for p in PRESETS.values()))


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


class Loss(str, enum.Enum):
    vmnet = "vmnet"
    bce = "bce"
    cosface = "cosface"
    infonce = "infonce"
    ppml = "ppml"


class Model(str, enum.Enum):
    vmnet = "vmnet"
    dpvm = "dpvm"


class Fusion(str, enum.Enum):
    interactive = "interactive"
    splicing = "splicing"
    content = "content"
    emotion = "emotion"


class Metric(str, enum.Enum):
    contrastive = "contrastive"
    ppml = "ppml"


def register(app: typer.Typer) -> None:
    app.command("train", help=_help(), no_args_is_help=True)(train_cmd)


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
    preset: Annotated[Optional[str], typer.Option("--preset", metavar="NAME",
                                                  help="A paper's settings: vmnet, pretet2021, pretet2021-bce, "
                                                       "segvmnet, vmcml (explicit options win).")] = None,
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
    metric: Annotated[Metric, typer.Option("--metric", help="dpvm: metric terms, eq. 2 or eqs. 10-12.")] = Metric.contrastive,
    dpvm_margin: Annotated[float, typer.Option("--dpvm-margin", min=0.0, help="dpvm: margin of eq. 2 (cosine distance).")] = 0.5,
    dpvm_mu2: Annotated[float, typer.Option("--dpvm-mu2", metavar="MU2",
                                            help="dpvm: weight of eq. 5 (paper: 1; -1 pulls a pair's emotions together).")] = 1.0,
    loss: Annotated[Optional[Loss], typer.Option("--loss", show_default=False,
                                                 help="Training objective (vmnet family; default vmnet).")] = None,
    margin: Annotated[float, typer.Option("--margin", help="vmnet: triplet margin alpha.")] = 0.1,
    lambdas: Annotated[str, typer.Option("--lambdas", metavar="VM,MV,VV,MM",
                                         help="vmnet: weights of the four terms.")] = "3,1,0.2,0.2",
    hard_negatives: Annotated[int, typer.Option("--hard-negatives", min=0, metavar="K",
                                                help="vmnet: keep the K worst negatives per anchor (0: all).")] = 0,
    temperature: Annotated[float, typer.Option("--temperature", help="infonce: softmax temperature.")] = 0.07,
    cos_scale: Annotated[float, typer.Option("--cos-scale", help="cosface: scale s.")] = 30.0,
    cos_margin: Annotated[float, typer.Option("--cos-margin", help="cosface: margin mu.")] = 0.2,
    cos_music_weight: Annotated[float, typer.Option("--cos-music-weight", min=0.0, metavar="ALPHA",
                                                    help="cosface: weight of the music lifting term.")] = 0.38,
    sim_margin: Annotated[float, typer.Option("--sim-margin", metavar="TAU",
                                              help="cosface: margin tau of the similarity loss.")] = 0.2,
    sim_weight: Annotated[float, typer.Option("--sim-weight", min=0.0, metavar="BETA",
                                              help="cosface: weight of the similarity loss.")] = 2.0,
    max_classes: Annotated[int, typer.Option("--max-classes", min=0, metavar="N",
                                             help="cosface: prototypes per softmax (sampled beyond N; 0: all).")] = 4096,
    class_label: Annotated[str, typer.Option("--class-label", metavar="COLUMN",
                                             help="cosface: items with the same value of this label column share "
                                                  "one prototype (VMCML: track); '': one per clip.")] = "",
    neighbours: Annotated[int, typer.Option("--neighbours", min=1, metavar="K",
                                            help="vmnet: input-space neighbours that are structure positives.")] = 1,
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
    from vmtool.errors import ParameterError
    from vmtool.models.losses import LossConfig
    from vmtool.training import DataConfig, TrainConfig, train

    o = _options(ctx, preset)
    if preset is not None:
        from vmtool.training.presets import get_preset

        p = get_preset(preset)
        info(f"preset {p.name} ({p.paper}): {p.describe()}; options given explicitly win", quiet)
    try:
        lam = tuple(float(x) for x in str(o["lambdas"]).split(","))
    except ValueError:
        raise ParameterError(f"--lambdas must be four numbers like 3,1,0.2,0.2, got {o['lambdas']!r}") from None
    if len(lam) != 4 or any(x < 0 for x in lam):
        raise ParameterError(f"--lambdas must be four numbers >= 0, got {o['lambdas']!r}")
    data = DataConfig(audio_features=_names(audio_features), video_features=_names(video_features),
                      level=o["level"], segments=o["segments"], aggregation=o["aggregation"], frames=o["frames"],
                      sampling=o["frame_sampling"])
    dpvm = o["model"] == "dpvm"
    dcfg = None
    if dpvm:
        from vmtool.models.dpvm import DPVMLossConfig

        if o["loss"] is not None:
            raise ParameterError("--loss applies to the VM-Net family; --model dpvm trains its own objective (eq. 8)")
        dcfg = DPVMLossConfig(margin=o["dpvm_margin"], metric=o["metric"], mu2=o["dpvm_mu2"])
    lcfg = LossConfig(name=o["loss"] or "vmnet", margin=o["margin"], lambdas=lam,  # type: ignore[arg-type]
                      hard_negatives=o["hard_negatives"],
                      temperature=o["temperature"], scale=o["cos_scale"], cos_margin=o["cos_margin"],
                      music_weight=o["cos_music_weight"], sim_margin=o["sim_margin"], sim_weight=o["sim_weight"],
                      max_classes=o["max_classes"], neighbours=o["neighbours"],
                      class_label=o["class_label"])
    tcfg = TrainConfig(batch_size=o["batch_size"], lr=o["lr"], weight_decay=o["weight_decay"], epochs=o["epochs"],
                       max_time=max_time, patience=o["patience"], val_fraction=o["val_fraction"], seed=seed)
    dropout = o["dropout"]
    audio_layers, video_layers = o["audio_layers"], o["video_layers"]
    layers = {"audio": _ints(audio_layers, "--audio-layers"), "video": _ints(video_layers, "--video-layers")}
    ids = read_ids(ids_file)
    with _Reporter(quiet) as rep:
        res = train(features, output, data=data, model_layers=layers, dropout=dropout, loss=dcfg if dpvm else lcfg,
                    config=tcfg, device=resolve_device(device), resume=resume, reporter=rep,
                    command=command_line(ctx), ids=ids, wait=wait, model=o["model"],
                    model_options={"fusion": o["fusion"]} if dpvm else None)
    best = res.best
    summary = f"wrote {res.path}: {res.epochs} epochs ({res.stopped}), best epoch {res.best_epoch}"
    if "v2m_r10" in best:
        summary += f", val V2M R@10 {best['v2m_r10']:.1f}%, mean rank {best['v2m_mean_rank']:.1f}"
    info(summary + f", {res.seconds:.1f} s", quiet)
