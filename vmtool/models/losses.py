"""Training objectives for the joint space.

Every loss takes a batch of ``b`` matched pairs: video embeddings ``v`` and music
embeddings ``m`` (``(b, D)``, unit norm), the clip each pair comes from (``(b,)``
int; pairs of the same clip are never used as each other's negatives, which matters
at segment level) and, for the structure terms, the pairs' input vectors. Each returns
the scalar loss and a dict of its parts (floats, for logs).

=========  =================================================================  ==========================
name       what                                                               from
=========  =================================================================  ==========================
vmnet      triplets on squared Euclidean distances with margin alpha:         Hong et al. 2018 (VM-Net),
           inter-modal V->M and M->V, plus soft intra-modal structure         as Prétet et al. 2021
           triplets V->V and M->M (lambda3 = lambda4 = 0: Seg-VM-Net's two    (000) and 2023 (001) state
           terms)                                                             it
bce        a fusion head (1024-128-1) scores matched vs. mismatched pairs      Prétet et al. 2021
           (sigmoid + binary cross-entropy)
cosface    VMCML: lifting loss (eq. 4) L_C(v) + alpha L_C(m), CosFace onto     Lee et al. (VMCML)
           class prototypes shared by the two modalities, plus beta times
           the similarity loss (eq. 5) max(tau, cos(v, m')) - cos(v, m)
           with a randomly drawn negative music m' of another class
infonce    symmetric contrastive loss with a temperature                      Oord et al. 2018; CLIP
ppml       polarity-penalty metric loss: pull pairs together, push away the    Gu, Shen and Lv (DPVM,
           pairs ranked above the match in proportion to their polarity gap    eqs. 10-12)
=========  =================================================================  ==========================

The triplet loss of VM-Net (000, section III; 001, section III-C) is
``max(||f(a) - f(p)||^2 - ||f(a) - f(n)||^2 + alpha, 0)``: squared distances.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.nn import functional as F

from vmtool.models import loss_registry

__all__ = ["LossConfig", "LOSSES", "compute_loss", "negatives_mask", "vmnet_loss", "bce_loss", "cosface_loss",
           "infonce_loss", "ppml_loss"]

#: the losses of the VM-Net family (declared, with their parameters, in :mod:`vmtool.models.loss_registry`)
LOSSES = loss_registry.names("vmnet")
_D = loss_registry.defaults("vmnet")
_CONFIG = f"{__name__}:LossConfig"


@dataclass
class LossConfig:
    """Loss hyper-parameters; defaults follow the paper each loss comes from.

    The defaults, ranges and ``--loss`` keys are declared in
    :data:`vmtool.models.loss_registry.LOSSES` (``cosface``'s ``margin`` is the field
    ``cos_margin``); the fields are what a model file stores under ``config.loss``.

    Attributes
    ----------
    name : {"vmnet", "bce", "cosface", "infonce"}
    margin : float
        vmnet: triplet margin alpha on squared distances (0.1, VM-Net and Seg-VM-Net).
    lambdas : (float, float, float, float)
        vmnet: weights of L_VM, L_MV, L_VV, L_MM. VM-Net's code weighs the video->music
        term most: (3, 1, 0.2, 0.2); Seg-VM-Net uses (1, 1, 0, 0) (001, section III-C).
    hard_negatives : int
        vmnet: 0 averages over every negative of the batch (b(b-1) triplets per
        direction); K > 0 keeps, per anchor, the K most violating negatives (VM-Net: 100).
    neighbours : int
        vmnet: per anchor, how many nearest neighbours in the *input* space are the
        positives of the intra-modal structure triplets (others are its negatives).
    scale, cos_margin, music_weight : float
        cosface: scale s (30; VMCML does not state it), margin mu (0.2) and weight alpha
        of the music term in eq. 4 (0.38, VMCML section 4).
    max_classes : int
        cosface: prototypes per softmax; beyond it, the batch's classes plus random
        others (a sampled softmax; 0: always all).
    sim_margin, sim_weight : float
        cosface: similarity loss (eq. 5) ``max(tau, cos(v, m')) - cos(v, m)`` with tau
        (0.2) and its weight beta in eq. 6 (2).
    temperature : float
        infonce: softmax temperature (0.07, as CLIP's initial value).
    polarity : str
        ppml: the label column holding each item's polarity.
    class_label : str
        cosface: a label column of the features file; items with the same value share one
        prototype (VMCML section 3: one class per music track, so every video of a track
        lifts towards that track's prototype). ``""``: one prototype per training clip.
    """

    name: str = "vmnet"
    margin: float = _D["margin"]
    lambdas: tuple[float, float, float, float] = _D["lambdas"]
    hard_negatives: int = _D["hard_negatives"]
    neighbours: int = _D["neighbours"]
    scale: float = _D["scale"]
    cos_margin: float = _D["cos_margin"]
    music_weight: float = _D["music_weight"]
    max_classes: int = _D["max_classes"]
    sim_margin: float = _D["sim_margin"]
    sim_weight: float = _D["sim_weight"]
    temperature: float = _D["temperature"]
    polarity: str = "polarity"
    class_label: str = _D["class_label"]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lambdas"] = list(self.lambdas)
        return d

    def validate(self) -> None:
        """Refuse values the losses cannot use, naming the loss and its ``--loss`` key.

        A negative margin rewards pairs for being on the wrong side of it; a zero or
        negative temperature or scale divides by zero or inverts the softmax; NaN
        makes every loss NaN. Each used to surface only later, as a NaN loss. The ranges
        are the registry's (:class:`vmtool.models.loss_registry.Param`).
        """
        for loss in loss_registry.LOSSES.values():
            if loss.config == _CONFIG:  # a loss declared with a configuration of its own checks its own
                for p in loss.params:
                    p.check(getattr(self, p.attr), f"--loss {loss.name}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LossConfig:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if "lambdas" in known:
            known["lambdas"] = tuple(float(x) for x in known["lambdas"])
        return cls(**known)


def negatives_mask(clips: torch.Tensor) -> torch.Tensor:
    """``(b, b)`` bool: True where pair j may serve as a negative of anchor i (another clip)."""
    return clips[:, None] != clips[None, :]


def _sqdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``||a_i - b_j||^2`` for every pair (the triplet loss's distance in VM-Net)."""
    return torch.clamp((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, min=0.0)


def _triplet(d_pos: torch.Tensor, d: torch.Tensor, neg: torch.Tensor, margin: float, hard: int) -> torch.Tensor:
    """Mean hinge ``max(0, d_pos_i - d_ij + margin)`` over allowed negatives j (or the *hard* worst)."""
    hinge = torch.clamp(d_pos[:, None] - d + margin, min=0.0)
    if hard > 0:
        hinge = hinge.masked_fill(~neg, -1.0)
        k = min(hard, hinge.shape[1])
        top = torch.topk(hinge, k, dim=1).values
        valid = top >= 0
        return (top.clamp(min=0) * valid).sum() / valid.sum().clamp(min=1)
    hinge = hinge * neg
    return hinge.sum() / neg.sum().clamp(min=1)


_PROJ: dict[tuple[int, str], torch.Tensor] = {}
PROJECTION_DIM = 256


def _project(x: torch.Tensor) -> torch.Tensor:
    """Inputs wider than 256 go through a fixed random Gaussian projection to 256 dims.

    Neighbour search then costs b^2 * 256 instead of b^2 * d; by the Johnson-Lindenstrauss
    lemma distances are kept to within a few percent on average, which is all the soft
    structure constraint needs. The projection is seeded, so training stays reproducible.
    """
    d = x.shape[1]
    if d <= PROJECTION_DIM:
        return x
    key = (d, str(x.device))
    if key not in _PROJ:
        g = torch.Generator().manual_seed(1234 + d)
        _PROJ[key] = (torch.randn(d, PROJECTION_DIM, generator=g) / PROJECTION_DIM ** 0.5).to(x.device)
    return x @ _PROJ[key]


def _structure(emb: torch.Tensor, inputs: torch.Tensor, neg: torch.Tensor, margin: float, hard: int,
               neighbours: int) -> torch.Tensor:
    """Soft intra-modal structure: keep each anchor's input-space neighbours closer than the rest.

    For anchor i, its *neighbours* nearest pairs (of other clips) by distance of the
    input vectors are positives p; every farther pair k is a negative:
    ``max(0, d(e_i, e_p) - d(e_i, e_k) + margin)``.
    """
    b = emb.shape[0]
    if b < 3:
        return emb.new_zeros(())
    with torch.no_grad():
        x = _project(inputs.reshape(b, -1).float())
        sq = (x * x).sum(1)
        dx = (sq[:, None] + sq[None, :] - 2.0 * x @ x.T).clamp(min=0.0)
        dx = dx.masked_fill(~neg, float("inf"))
        n = max(1, min(neighbours, b - 2))
        nn_idx = torch.topk(dx, n, dim=1, largest=False).indices  # (b, n)
        far = neg.clone()
        far.scatter_(1, nn_idx, False)
        ok = torch.isfinite(dx.gather(1, nn_idx))  # anchors whose neighbours are real
    d = _sqdist(emb, emb)
    total = emb.new_zeros(())
    for j in range(n):
        d_pos = d.gather(1, nn_idx[:, j:j + 1]).squeeze(1)
        mask = far & ok[:, j:j + 1]
        total = total + _triplet(d_pos, d, mask, margin, hard)
    return total / n


def _sample_classes(protos: torch.Tensor, labels: torch.Tensor, max_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's own prototypes plus random others, at most *max_classes* in all.

    With tens of thousands of training tracks the full softmax over every prototype
    dominates the step (b x C x D, twice); a sampled softmax keeps every positive and a
    random share of the negatives. ``max_classes <= 0`` or C <= max_classes: all of them.
    """
    c = protos.shape[0]
    if max_classes <= 0 or c <= max_classes:
        return protos, labels
    present = torch.unique(labels)
    need = max(0, max_classes - len(present))
    mask = torch.ones(c, dtype=torch.bool, device=protos.device)
    mask[present] = False
    others = torch.nonzero(mask).squeeze(1)
    others = others[torch.randperm(len(others), device=protos.device)[:need]]
    chosen = torch.cat([present, others])
    remap = torch.full((c,), -1, dtype=torch.long, device=protos.device)
    remap[chosen] = torch.arange(len(chosen), device=protos.device)
    return protos[chosen], remap[labels]


def _cosface(x: torch.Tensor, protos: torch.Tensor, labels: torch.Tensor, s: float, mu: float) -> torch.Tensor:
    """CosFace: cross-entropy of ``s * (cos(x, W_c) - mu [c = label])`` over the prototypes W."""
    logits = s * (x @ protos.T)
    rows = torch.arange(len(labels), device=x.device)
    logits = logits.index_put((rows, labels), logits[rows, labels] - s * mu)
    return F.cross_entropy(logits, labels)


def random_negatives(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each pair, a uniformly drawn other pair of another class (VMCML's m').

    Returns the index of the drawn pair and a bool mask of the pairs that have one (a
    batch holding a single class has none). Uses torch's global generator.
    """
    b = labels.shape[0]
    other = labels[:, None] != labels[None, :]
    r = torch.rand(b, b, device=labels.device).masked_fill(~other, -1.0)
    return r.argmax(dim=1), other.any(dim=1)


def similarity_loss(v: torch.Tensor, m: torch.Tensor, labels: torch.Tensor, tau: float) -> torch.Tensor:
    """VMCML eq. 5, mean over the batch: ``max(tau, cos(v, m')) - cos(v, m)``.

    ``m'`` is the music of a randomly drawn pair of another class (:func:`random_negatives`).
    """
    j, ok = random_negatives(labels)
    cos_pos = F.cosine_similarity(v, m, dim=-1)
    cos_neg = F.cosine_similarity(v, m[j], dim=-1)
    sl = torch.clamp(cos_neg, min=tau) - cos_pos
    return sl[ok].mean() if bool(ok.any()) else v.new_zeros(())


def compute_loss(cfg: LossConfig, v: torch.Tensor, m: torch.Tensor, clips: torch.Tensor, *,
                 v_in: torch.Tensor | None = None, m_in: torch.Tensor | None = None,
                 model=None, labels: torch.Tensor | None = None,
                 polarity: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of a batch: the function that :data:`vmtool.models.loss_registry.LOSSES` names for *cfg*'s loss.

    Parameters
    ----------
    cfg : LossConfig
    v, m : torch.Tensor [shape=(b, D)]
        Unit-norm video and music embeddings of b matched pairs.
    clips : torch.Tensor [shape=(b,), int]
        Clip of each pair; same-clip pairs are never negatives of each other.
    v_in, m_in : torch.Tensor, optional
        Input vectors (need ``raw_inputs``: ``vmnet``'s structure terms).
    model : VMNet, optional
        Its fusion head (need ``fusion_head``: ``bce``) or prototypes (``prototypes``: ``cosface``).
    labels : torch.Tensor [shape=(b,), int], optional
        Class (prototype index) of each pair (need ``class_labels``: ``cosface``): by default
        the training clip it comes from; ``train(classes=...)`` can give several clips one class.
    polarity : torch.Tensor [shape=(b,), float], optional
        Polarity of each pair (need ``polarity``: ``ppml``).
    """
    loss = loss_registry.LOSSES.get(cfg.name)
    if loss is None or loss.model != "vmnet":
        raise ValueError(f"unknown loss {cfg.name!r}")
    total, parts = loss.function()(cfg, v, m, clips, negatives_mask(clips), model=model, v_in=v_in, m_in=m_in,
                                   labels=labels, polarity=polarity)
    return total, {k: float(t.detach()) for k, t in parts.items()}


def vmnet_loss(cfg: LossConfig, v: torch.Tensor, m: torch.Tensor, clips: torch.Tensor, neg: torch.Tensor, *,
               v_in: torch.Tensor | None = None, m_in: torch.Tensor | None = None, **_: Any):
    """VM-Net's triplets: inter-modal V->M and M->V, and the structure terms V->V, M->M given the inputs."""
    l1, l2, l3, l4 = cfg.lambdas
    d = _sqdist(v, m)  # d[i, j] = ||v_i - m_j||^2
    pos = torch.diagonal(d)
    vm = _triplet(pos, d, neg, cfg.margin, cfg.hard_negatives)
    mv = _triplet(pos, d.T, neg, cfg.margin, cfg.hard_negatives)
    parts = {"vm": vm, "mv": mv}
    total = l1 * vm + l2 * mv
    if (l3 or l4) and v_in is not None and m_in is not None:
        vv = _structure(v, v_in, neg, cfg.margin, cfg.hard_negatives, cfg.neighbours)
        mm = _structure(m, m_in, neg, cfg.margin, cfg.hard_negatives, cfg.neighbours)
        parts.update(vv=vv, mm=mm)
        total = total + l3 * vv + l4 * mm
    return total, parts


def bce_loss(cfg: LossConfig, v: torch.Tensor, m: torch.Tensor, clips: torch.Tensor, neg: torch.Tensor, *,
             model=None, **_: Any):
    """000's Experiment 2: the fusion head scores each matched pair and one mismatched pair per video."""
    if model is None or model.head is None:
        raise ValueError("the bce loss needs a model with a fusion head")
    b = v.shape[0]
    # one mismatched music per video: the next pair of another clip in a random order
    perm = torch.randperm(b, device=v.device)
    shifted = torch.roll(perm, 1)
    j = torch.empty_like(perm)
    j[perm] = shifted
    ok = clips[j] != clips
    pos_logit = model.head(v, m)
    neg_logit = model.head(v[ok], m[j[ok]])
    logits = torch.cat([pos_logit, neg_logit])
    target = torch.cat([torch.ones_like(pos_logit), torch.zeros_like(neg_logit)])
    total = F.binary_cross_entropy_with_logits(logits, target)
    return total, {"bce": total}


def cosface_loss(cfg: LossConfig, v: torch.Tensor, m: torch.Tensor, clips: torch.Tensor, neg: torch.Tensor, *,
                 model=None, labels: torch.Tensor | None = None, **_: Any):
    """VMCML eq. 6: the lifting loss (eq. 4) on the model's prototypes plus the similarity loss (eq. 5)."""
    if model is None or model.prototypes is None or labels is None:
        raise ValueError("the cosface loss needs prototypes and labels")
    sim = similarity_loss(v, m, labels, cfg.sim_margin)  # eq. 5
    protos, plabels = _sample_classes(model.prototypes, labels, cfg.max_classes)
    protos = F.normalize(protos, dim=-1)
    lv = _cosface(v, protos, plabels, cfg.scale, cfg.cos_margin)  # eq. 3 on both sides, eq. 4
    lm = _cosface(m, protos, plabels, cfg.scale, cfg.cos_margin)
    total = lv + cfg.music_weight * lm + cfg.sim_weight * sim  # eq. 6
    return total, {"lift_v": lv, "lift_m": lm, "sim": sim}


def infonce_loss(cfg: LossConfig, v: torch.Tensor, m: torch.Tensor, clips: torch.Tensor, neg: torch.Tensor,
                 **_: Any):
    """Symmetric InfoNCE over the batch; pairs of the same clip are left out of each other's softmax."""
    logits = (v @ m.T) / cfg.temperature
    eye = torch.eye(len(v), dtype=torch.bool, device=v.device)
    logits = logits.masked_fill(~neg & ~eye, float("-inf"))
    target = torch.arange(len(v), device=v.device)
    a = F.cross_entropy(logits, target)
    b = F.cross_entropy(logits.T, target)
    return (a + b) / 2, {"v2m": a, "m2v": b}


def ppml_loss(cfg: LossConfig, v: torch.Tensor, m: torch.Tensor, clips: torch.Tensor, neg: torch.Tensor, *,
              polarity: torch.Tensor | None = None, **_: Any):
    """DPVM's polarity-penalty metric loss (eqs. 10-12) on the joint space."""
    from vmtool.models.dpvm import polarity_penalty_loss

    if polarity is None:
        raise ValueError("the ppml loss needs polarity labels")
    total = polarity_penalty_loss(v, m, polarity, neg)
    return total, {"ppml": total}
