"""The training losses, each declared once: name, parameters, paper, configuration class.

``vmtool train --loss NAME[:KEY=VALUE,...]``, its help, the shell completions, the
parameter table of ``docs/training.md`` and the presets (``vmtool.training.presets``)
all read :data:`LOSSES`. Adding a loss is one :class:`Loss` entry here and the function it
names (:attr:`Loss.compute`); the entry's :attr:`Loss.needs` tell the training loop what
to give it (a fusion head, prototypes, labels, raw inputs), so neither
``vmtool.models.losses`` nor ``vmtool.training.loop`` names a loss. This module imports
no torch (the function is imported on first use), so listing and checking losses costs
nothing at start-up.

The option's grammar follows ``vmtool rank --method nw-dtw:0.1``: the loss's name, then
``:`` and comma-separated ``key=value`` pairs, e.g. ``cosface:scale=30,margin=0.2``. A
value may itself hold commas (``vmnet:lambdas=1,1,0,0,margin=0.1``): a comma starts a
new pair only where a ``key=`` follows it.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vmtool.errors import ParameterError

__all__ = ["Param", "Loss", "LOSSES", "NEEDS", "names", "get_loss", "register", "parse_loss", "loss_config",
           "defaults", "old_option", "spec_text"]

#: what a loss can ask the training loop for (:attr:`Loss.needs`), and what the loop does for it
NEEDS: dict[str, str] = {
    "fusion_head": "the model gets a fusion head (``model.head``) scoring a (video, music) pair",
    "prototypes": "the model gets one prototype per class of the training items (``model.prototypes``); "
                  "the classes are the values of the config's ``class_label`` column when it names one, "
                  "else one per clip, and the model file records their names",
    "class_labels": "each batch passes ``labels``, the class (prototype index) of every pair",
    "polarity": "the config's ``polarity`` label column is read; each batch passes ``polarity`` per pair",
    "raw_inputs": "each batch passes ``v_in``, ``m_in``: the pairs' normalised input vectors (frames averaged)",
}


@dataclass(frozen=True)
class Param:
    """One parameter of a loss.

    Attributes
    ----------
    name : str
        The key in ``--loss NAME:KEY=VALUE``.
    default : Any
        Its value when not given.
    meaning : str
        One line, for help and docs.
    field : str
        The attribute of the loss's configuration (stored in model files); ``""``: *name*.
    kind : {"float", "int", "str", "weights", "choice"}
        ``weights``: four numbers (``3,1,0.2,0.2``).
    least : {"", ">=0", ">0", ">=1"}
        The smallest value allowed (numbers); ``""``: any finite number.
    choices : tuple of str
        The values of a ``choice``.
    old : str
        The ``vmtool train`` option that held it before ``--loss`` took parameters; using
        it is refused with the new spelling.
    """

    name: str
    default: Any
    meaning: str
    field: str = ""
    kind: str = "float"
    least: str = ">=0"
    choices: tuple[str, ...] = ()
    old: str = ""

    @property
    def attr(self) -> str:
        return self.field or self.name

    @property
    def need(self) -> str:
        """What a value must be, in words (for errors)."""
        if self.kind == "weights":
            return "four numbers >= 0 like 3,1,0.2,0.2"
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "str":
            return "a text"
        if self.kind == "int":
            return {"": "an integer", ">0": "a positive integer", ">=0": "an integer >= 0",
                    ">=1": "an integer >= 1"}[self.least]
        return {"": "a finite number", ">0": "a positive number", ">=0": "a number >= 0",
                ">=1": "a number >= 1"}[self.least]

    def check(self, value: Any, where: str) -> None:
        """Raise :class:`ParameterError` ``"{where}: {name} must be ..., got {value!r}"`` for a bad value."""
        if self.kind == "str":
            ok = isinstance(value, str)
        elif self.kind == "choice":
            ok = value in self.choices
        elif self.kind == "weights":
            ok = len(value) == 4 and all(math.isfinite(x) and x >= 0 for x in value)
            if not ok:
                raise ParameterError(f"{where}: {self.name} must be {self.need}, got {','.join(map(str, value))}")
        else:
            x = float(value)
            ok = math.isfinite(x) and {"": True, ">0": x > 0, ">=0": x >= 0, ">=1": x >= 1}[self.least]
        if not ok:
            raise ParameterError(f"{where}: {self.name} must be {self.need}, got {value!r}")

    def convert(self, text: str, where: str) -> Any:
        """The value of *text* (as typed after ``key=``), checked."""
        try:
            if self.kind == "float":
                value: Any = float(text)
            elif self.kind == "int":
                value = int(text)
            elif self.kind == "weights":
                value = tuple(float(x) for x in text.split(","))
            else:
                value = text
            self.check(value, where)
        except (ValueError, ParameterError):  # name the value as typed
            raise ParameterError(f"{where}: {self.name} must be {self.need}, got {text!r}") from None
        return value

    def show(self, value: Any) -> str:
        """*value* as typed in a spec (``3,1,0.2,0.2``, ``0.1``)."""
        if self.kind == "weights":
            return ",".join(f"{float(x):g}" for x in value)
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)


@dataclass(frozen=True)
class Loss:
    """A training objective.

    Attributes
    ----------
    name : str
        The ``--loss`` value.
    summary : str
        One line, for ``vmtool train --help``.
    paper : str
        Where it comes from.
    params : tuple of Param
    model : {"vmnet", "dpvm"}
        The model family it trains (``--model``).
    config : str
        ``"module:Class"`` of its configuration (built by :meth:`build`; the module may import torch).
    compute : str
        ``"module:function"`` computing it (imported by :meth:`function` on first use). For the
        VM-Net family, ``vmtool.models.losses.compute_loss`` calls it as
        ``fn(cfg, v, m, clips, negatives, *, model, v_in, m_in, labels, polarity)`` (embeddings
        ``(b, D)``, clip per pair, the ``(b, b)`` mask of allowed negatives, the network; the
        other keywords are None unless :attr:`needs` asks for them) and it returns the scalar loss and a dict of
        its parts (tensors, logged per epoch as ``loss_PART``). DPVM's objective takes its
        network and raw inputs (:func:`vmtool.models.dpvm.dpvm_loss`).
    needs : frozenset of str
        What it needs beyond a batch of embedded pairs, always (keys of :data:`NEEDS`).
    needs_when : tuple of (str, callable)
        A need that depends on the configuration: ``(need, predicate(config) -> bool)``.
    """

    name: str
    summary: str
    paper: str
    params: tuple[Param, ...] = ()
    model: str = "vmnet"
    config: str = "vmtool.models.losses:LossConfig"
    compute: str = ""
    needs: frozenset[str] = frozenset()
    needs_when: tuple[tuple[str, Callable[[Any], bool]], ...] = ()

    def __post_init__(self) -> None:
        if self.compute.count(":") != 1:
            raise ValueError(f"loss {self.name!r}: compute must be 'module:function', got {self.compute!r}")
        unknown = sorted((set(self.needs) | {n for n, _ in self.needs_when}) - set(NEEDS))
        if unknown:
            raise ValueError(f"loss {self.name!r}: unknown need(s) {', '.join(unknown)}; needs: {', '.join(NEEDS)}")

    def needs_of(self, config: Any) -> frozenset[str]:
        """What this loss needs with *config* (its configuration object)."""
        return self.needs | {n for n, when in self.needs_when if when(config)}

    def function(self) -> Callable[..., Any]:
        """The function of :attr:`compute` (importing its module)."""
        module, fn = self.compute.split(":")
        return getattr(importlib.import_module(module), fn)

    def param(self, key: str) -> Param:
        for p in self.params:
            if p.name == key:
                return p
        takes = f"{self.name} takes " + ", ".join(p.name for p in self.params) if self.params else \
            f"{self.name} takes no parameters"
        raise ParameterError(f"--loss {self.name}: unknown parameter {key!r}; {takes}")

    def build(self, fields: Mapping[str, Any] | None = None) -> Any:
        """The configuration object (``LossConfig``, ``DPVMLossConfig``) with *fields* set."""
        module, cls = self.config.split(":")
        return getattr(importlib.import_module(module), cls)(name=self.name, **dict(fields or {}))


_VMNET = "Hong et al. 2018 (VM-Net); Prétet et al. 2021 (000), 2023 (001)"
_VMCML = "Lee et al. (VMCML), with CosFace (Wang et al. 2018)"
_DPVM = "Gu, Shen and Lv (DPVM)"

#: every loss, in the order of ``vmtool train --help``
LOSSES: dict[str, Loss] = {x.name: x for x in (
    Loss("vmnet", "triplets on squared distances, inter- and intra-modal", _VMNET, (
        Param("margin", 0.1, "triplet margin alpha on squared distances (000 III, 001 III-C)", old="--margin"),
        Param("lambdas", (3.0, 1.0, 0.2, 0.2), "weights of L_VM, L_MV, L_VV, L_MM (VM-Net's code; Seg-VM-Net: 1,1,0,0)",
              kind="weights", old="--lambdas"),
        Param("hard_negatives", 0, "keep the K most violating negatives per anchor (0: all; VM-Net's code: 100)",
              kind="int", old="--hard-negatives"),
        Param("neighbours", 1, "input-space neighbours that are the structure terms' positives", kind="int",
              least=">=1", old="--neighbours"),
    ), compute="vmtool.models.losses:vmnet_loss",
         # the intra-modal structure terms (lambda3, lambda4) find their positives in the input space
         needs_when=(("raw_inputs", lambda c: bool(c.lambdas[2] or c.lambdas[3])),)),
    Loss("bce", "a fusion head scores matched vs. mismatched pairs (sigmoid, BCE)",
         "Prétet et al. 2021 (000), Experiment 2", compute="vmtool.models.losses:bce_loss",
         needs=frozenset({"fusion_head"})),
    Loss("cosface", "CosFace lifting onto shared class prototypes + similarity loss", _VMCML, (
        Param("scale", 30.0, "CosFace scale s (VMCML does not state it)", least=">0", old="--cos-scale"),
        Param("margin", 0.2, "CosFace margin mu (VMCML section 4)", field="cos_margin", old="--cos-margin"),
        Param("music_weight", 0.38, "weight alpha of the music lifting term (eq. 4)", old="--cos-music-weight"),
        Param("sim_margin", 0.2, "margin tau of the similarity loss (eq. 5)", old="--sim-margin"),
        Param("sim_weight", 2.0, "weight beta of the similarity loss (eq. 6)", old="--sim-weight"),
        Param("max_classes", 4096, "prototypes per softmax, sampled beyond it (0: all)", kind="int",
              old="--max-classes"),
        Param("class_label", "", "label column whose items share one prototype (VMCML: track; empty: one per clip)",
              kind="str", old="--class-label"),
    ), compute="vmtool.models.losses:cosface_loss", needs=frozenset({"prototypes", "class_labels"})),
    Loss("infonce", "symmetric contrastive loss over the batch", "Oord et al. 2018; as in CLIP", (
        Param("temperature", 0.07, "softmax temperature (CLIP's initial value)", least=">0", old="--temperature"),
    ), compute="vmtool.models.losses:infonce_loss"),
    Loss("ppml", "polarity-penalty metric loss (needs a 'polarity' label)", _DPVM + ", eqs. 10-12",
         compute="vmtool.models.losses:ppml_loss", needs=frozenset({"polarity"})),
    Loss("dpvm", "DPVM's own objective, eq. 8 (--model dpvm)", _DPVM, (
        Param("margin", 0.5, "margin of eq. 2 on the cosine distance (the paper gives none)", old="--dpvm-margin"),
        Param("mu2", 1.0, "weight of eq. 5 (paper: 1; -1 pulls a pair's emotions together)", least="",
              old="--dpvm-mu2"),
        Param("metric", "contrastive", "metric terms: eq. 2, or eqs. 10-12 (ppml)", kind="choice",
              choices=("contrastive", "ppml"), old="--metric"),
    ), model="dpvm", config="vmtool.models.dpvm:DPVMLossConfig", compute="vmtool.models.dpvm:dpvm_loss",
         needs_when=(("polarity", lambda c: c.metric == "ppml"),)),
)}


def register(loss: Loss) -> Loss:
    """Add *loss* to :data:`LOSSES` (after the built-in ones) and return it.

    For a loss defined outside vmtool (a plug-in, a test): it then trains like the built-in
    ones, ``vmtool.training.train(loss=loss.build())``. Raises ``ValueError`` for a name
    already taken.
    """
    if loss.name in LOSSES:
        raise ValueError(f"a loss named {loss.name!r} exists")
    LOSSES[loss.name] = loss
    return loss


def names(model: str | None = None) -> tuple[str, ...]:
    """The losses (of one model family, when given)."""
    return tuple(n for n, x in LOSSES.items() if model is None or x.model == model)


def get_loss(name: str) -> Loss:
    try:
        return LOSSES[name]
    except KeyError:
        raise ParameterError(f"--loss: unknown loss {name!r}; losses: {', '.join(LOSSES)}") from None


def defaults(model: str = "vmnet") -> dict[str, Any]:
    """Configuration field -> default, over every loss of *model*'s family (the config classes' defaults)."""
    return {p.attr: p.default for x in LOSSES.values() if x.model == model for p in x.params}


def parse_loss(spec: str) -> tuple[Loss, dict[str, Any]]:
    """The loss and the parameters (by key, converted and checked) of ``NAME[:KEY=VALUE,...]``.

    Raises
    ------
    ParameterError
        Unknown loss or key, a key given twice, a value of the wrong type or range.
    """
    text = str(spec).strip()
    name, _, rest = text.partition(":")
    loss = get_loss(name.strip().lower())
    where = f"--loss {loss.name}"
    pairs: list[list[str]] = []
    for piece in rest.split(",") if rest.strip() else []:
        if "=" in piece:
            key, _, value = piece.partition("=")
            pairs.append([key.strip(), value])
        elif pairs:  # a comma inside a value (lambdas=3,1,0.2,0.2)
            pairs[-1][1] += "," + piece
        else:
            raise ParameterError(f"{where}: expected KEY=VALUE after ':', got {piece.strip()!r}")
    out: dict[str, Any] = {}
    for key, value in pairs:
        p = loss.param(key)
        if key in out:
            raise ParameterError(f"{where}: {key} is given twice")
        out[key] = p.convert(value.strip(), where)
    return loss, out


def spec_text(loss: Loss, params: Mapping[str, Any]) -> str:
    """``NAME:KEY=VALUE,...``, the spelling :func:`parse_loss` reads."""
    body = ",".join(f"{k}={loss.param(k).show(v)}" for k, v in params.items())
    return f"{loss.name}:{body}" if body else loss.name


def loss_config(spec: str | None = None, *, model: str = "vmnet", base: str | None = None) -> Any:
    """The configuration of the loss *spec* for a *model*, over the parameters of *base*.

    Parameters
    ----------
    spec : str, optional
        ``NAME[:KEY=VALUE,...]``; None: *base*'s loss, else the model's own default
        (``vmnet``, or ``dpvm`` for DPVM).
    model : {"vmnet", "dpvm"}
    base : str, optional
        A preset's loss: its parameters hold where *spec* sets none (for a loss of the same
        model family, so a preset's settings survive ``--loss`` naming another loss of it).

    Raises
    ------
    ParameterError
        A bad spec, or a loss of another model family than *model*.
    """
    chosen, params = parse_loss(spec) if spec is not None else (None, {})
    fields: dict[str, Any] = {}
    if base is not None:
        b, bparams = parse_loss(base)
        if b.model == model:
            fields = {b.param(k).attr: v for k, v in bparams.items()}
            chosen = chosen or b
    chosen = chosen or get_loss("dpvm" if model == "dpvm" else "vmnet")
    if chosen.model != model:
        if model == "dpvm":
            raise ParameterError(f"--model dpvm trains its own objective (eq. 8): --loss {chosen.name} applies to "
                                 f"the VM-Net family; DPVM's parameters are --loss dpvm:KEY=VALUE")
        raise ParameterError(f"--loss {chosen.name} is DPVM's objective (eq. 8): add --model dpvm")
    fields.update({chosen.param(k).attr: v for k, v in params.items()})
    return chosen.build(fields)


def old_option(option: str) -> tuple[Loss, Param] | None:
    """The loss and parameter that the retired ``vmtool train`` *option* (``--cos-scale``) set."""
    for x in LOSSES.values():
        for p in x.params:
            if p.old == option:
                return x, p
    return None
