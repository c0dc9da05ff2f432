"""Training presets: every hyper-parameter of a paper's setup, under the paper's name.

One table, :data:`PRESETS`, from which ``vmtool train --preset``, its help, the
completions and the presets table of ``docs/training.md`` take the presets; adding one is
one entry here. A preset's settings are keyed by the names of ``vmtool train``'s options
(Python spelling: ``batch_size`` for ``--batch-size``); the loss and its parameters are
one ``loss`` setting in ``--loss``'s own spelling (``vmnet:margin=0.1,hard_negatives=100``,
see :mod:`vmtool.models.loss_registry`), and ``sources``/``unstated`` name a loss
parameter as ``loss.KEY``. Options given explicitly on the command line win over the
preset; a ``--loss`` given explicitly keeps the preset's loss parameters it does not set
(when it trains the same model family).

The settings a paper does not state keep vmtool's defaults (listed in each preset's
``unstated``), except the epoch bound: the papers stop early, so their presets allow as
many epochs as early stopping needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vmtool.errors import ParameterError

__all__ = ["Preset", "PRESETS", "get_preset", "apply_preset", "preset_names"]

#: the epoch bound of presets whose paper stops early (Prétet's thesis, 5.2.4: "after
#: 500,000 epochs on average" at lr 1e-6); bound the run with --max-time instead
EARLY_STOPPING_EPOCHS = 1_000_000


@dataclass(frozen=True)
class Preset:
    """A paper's training setup.

    Attributes
    ----------
    name : str
        The ``--preset`` value.
    paper : str
        Short citation.
    settings : dict
        ``vmtool train`` option (Python name) -> value.
    sources : dict
        Option -> where the paper states it (section, equation).
    unstated : tuple of str
        Options the paper leaves open (vmtool's defaults apply).
    summary : str
        One line for ``--help``.
    """

    name: str
    paper: str
    settings: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)
    unstated: tuple[str, ...] = ()
    summary: str = ""

    def describe(self) -> str:
        """``name=value`` pairs in the CLI's spelling, for help and logs."""
        return " ".join(f"--{k.replace('_', '-')} {_fmt(v)}" for k, v in self.settings.items())

    def markdown_row(self) -> str:
        """``| name | paper | settings |`` for the presets table of docs/training.md."""
        return f"| `{self.name}` | {self.paper} | `{self.describe()}` |"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


_VMNET_OPTIM = {"dropout": 0.5, "batch_size": 1000, "lr": 1e-6, "epochs": EARLY_STOPPING_EPOCHS}
_VMNET_OPTIM_SRC = {"dropout": "000 IV-E; 001 V-A", "batch_size": "000 IV-E; 001 IV-C, V-A",
                    "lr": "000 IV-E (Adam); 001 V-A", "epochs": "000 IV-E: early stopping"}

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(
        "vmnet", "Hong et al. 2018 (VM-Net), trained as Prétet et al. 2021 (000) reimplemented it",
        {"level": "clip", "aggregation": "stats", "loss": "vmnet:margin=0.1,lambdas=3,1,0.2,0.2,hard_negatives=100",
         "audio_layers": "2048,1024,512", "video_layers": "2048,512", **_VMNET_OPTIM},
        {"aggregation": "000 III: mean, variance, max over the clip", "loss.margin": "000 III (VM-Net's code)",
         "loss.lambdas": "000 III, four weighted terms (values from VM-Net's code)",
         "loss.hard_negatives": "VM-Net's code (top 100 violating negatives)",
         "audio_layers": "000 III: 2048, 1024, 512", "video_layers": "000 III: 2048, 512", **_VMNET_OPTIM_SRC},
        ("patience", "val_fraction", "weight_decay"),
        "VM-Net: clip, mean/var/max, 4 triplet terms, Adam 1e-6, dropout 0.5"),
    Preset(
        "pretet2021", "Prétet, Richard, Peeters 2021 (000) and Prétet's thesis ch. 5 (003): learned aggregation",
        {"level": "clip", "aggregation": "attention", "frames": 100, "frame_sampling": "random",
         "loss": "vmnet:margin=0.1,lambdas=3,1,0.2,0.2,hard_negatives=100", "audio_layers": "2048,1024,512",
         "video_layers": "2048,512", **_VMNET_OPTIM},
        {"aggregation": "003 5.2.3, Table 5.3: attention performs best", "frames": "003 5.2.3: T = 100",
         "frame_sampling": "003 5.2.3: drawn at random each epoch",
         "loss.margin": "003 5.2.4 (VM-Net's values kept)", "loss.lambdas": "003 5.2.4 (VM-Net's values kept)",
         "loss.hard_negatives": "VM-Net's code",
         "dropout": "003 5.2.4", "batch_size": "003 5.2.4", "lr": "003 5.2.4", "epochs": "003 5.2.4: early stopping",
         "audio_layers": "000 III", "video_layers": "000 III"},
        ("patience", "val_fraction", "weight_decay"),
        "vmnet with attention over 100 random frames per epoch (thesis ch. 5)"),
    Preset(
        "pretet2021-bce", "Prétet, Richard, Peeters 2021 (000), Experiment 2: the binary cross-entropy baseline",
        {"level": "clip", "aggregation": "stats", "loss": "bce", "audio_layers": "2048,1024,512",
         "video_layers": "2048,512", "dropout": 0.5, "batch_size": 1000, "lr": 1e-6, "epochs": 15000, "patience": 0},
        {"loss": "000 IV-B: head 1024-128-1, sigmoid, BCE", "epochs": "000 IV-E: 15,000 epochs, no early stopping",
         "patience": "000 IV-E: early stopping hurt the BCE system", "dropout": "000 IV-E",
         "batch_size": "000 IV-E", "lr": "000 IV-E"},
        ("val_fraction", "weight_decay"),
        "VM-Net + BCE head, 15,000 epochs, no early stopping"),
    Preset(
        "segvmnet", "Prétet, Richard, Souchier, Peeters 2023 (Seg-VM-Net, 001)",
        {"level": "segment", "segments": "olda", "aggregation": "stats",
         "loss": "vmnet:margin=0.1,lambdas=1,1,0,0,hard_negatives=0", "audio_layers": "2048,1024,512", "video_layers": "2048,512",
         **_VMNET_OPTIM},
        {"level": "001 IV-C: segment-level pairs", "segments": "001 VI-B: S_OLDA gives the best results",
         "aggregation": "001 IV-C: mean of the frame features over each segment",
         "loss.margin": "001 III-C: alpha = 0.1",
         "loss.lambdas": "001 III-C: lambda1 = lambda2 = 1, no intra-modal terms",
         "loss.hard_negatives": "001 IV-C: all b - 1 negatives of the batch", "audio_layers": "001 III-B",
         "video_layers": "001 III-B", **_VMNET_OPTIM_SRC},
        ("patience", "val_fraction", "weight_decay"),
        "Seg-VM-Net: OLDA segments, 2 triplet terms, all batch negatives"),
    Preset(
        "vmcml", "Lee et al. (VMCML, 002)",
        {"level": "clip", "aggregation": "stats", "loss": "cosface:margin=0.2,music_weight=0.38,sim_margin=0.2,sim_weight=2,max_classes=0,class_label=track",
         "audio_layers": "256",
         "video_layers": "256", "dropout": 0.0, "batch_size": 128, "lr": 1e-5, "weight_decay": 0.002, "epochs": EARLY_STOPPING_EPOCHS},
        {"loss.margin": "002 section 4: mu = 0.2", "loss.music_weight": "002 eq. 4, section 4: alpha = 0.38",
         "loss.sim_margin": "002 eq. 5, section 4: tau = 0.2", "loss.sim_weight": "002 eq. 6, section 4: beta = 2",
         "loss.max_classes": "002 eq. 3: softmax over every class",
         "loss.class_label": "002 Fig. 1, 3.2: one class (prototype) per music track, shared by its videos",
         "audio_layers": "002 3.3: one fully connected layer to l = 256",
         "video_layers": "002 3.3: one fully connected layer to l = 256", "batch_size": "002 section 4: 128",
         "lr": "002 section 4: Adam 1e-5", "weight_decay": "002 section 4: 0.002",
         "epochs": "002 section 4: selected on validation R@10", "dropout": "002: none mentioned"},
        ("loss.scale", "patience", "val_fraction"),
        "VMCML: CosFace lifting + similarity loss, 256-d, Adam 1e-5, batch 128"),
    Preset(
        "dpvm", "Gu, Shen and Lv (DPVM, 004)",
        {"model": "dpvm", "fusion": "interactive", "loss": "dpvm:metric=contrastive", "level": "clip", "aggregation": "stats",
         "batch_size": 16, "lr": 1e-4, "epochs": 100, "patience": 0},
        {"model": "004 section III: content path + emotion path + fusion, total loss eq. 8 with "
                  "k1 = k2 = 0.5, k3 = 1, lambda1 = 0.8, lambda2 = 1, mu1 = 0.8, mu2 = 1 (section IV-B)",
         "fusion": "004 Table I: the interactive fusion (DPVM_In) performs best",
         "loss.metric": "004 eq. 2 (Table I); eqs. 10-12 (--loss dpvm:metric=ppml) for Table II",
         "batch_size": "004 IV-B: 16", "lr": "004 IV-B: Adam 1e-4, betas (0.5, 0.999)",
         "epochs": "004 IV-B: 100 epochs", "patience": "004 IV-B: a fixed 100 epochs, no early stopping"},
        ("dropout", "val_fraction", "loss.margin"),
        "DPVM: dual path (content + emotion), interactive fusion, Adam 1e-4 (0.5, 0.999), batch 16, 100 epochs"),
)}


def preset_names() -> list[str]:
    return list(PRESETS)


def get_preset(name: str) -> Preset:
    """The preset *name*; a :class:`ParameterError` naming the known ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ParameterError(f"--preset: unknown preset {name!r}; presets: {', '.join(PRESETS)}") from None


def apply_preset(name: str, values: Mapping[str, Any], explicit: Iterable[str]) -> dict[str, Any]:
    """*values* with the preset's settings, except those in *explicit* (given by the user).

    Parameters
    ----------
    values : mapping
        Every option's value (defaults included), by option name.
    explicit : iterable of str
        The options the user gave; they win over the preset.
    """
    p = get_preset(name)
    out = dict(values)
    given = set(explicit)
    for k, v in p.settings.items():
        if k not in out:
            raise ParameterError(f"preset {name!r} sets unknown option {k!r}")  # a broken table, not user input
        if k not in given:
            out[k] = v
    return out
