"""DPVM: the dual-path video-music retrieval network (Gu, Shen and Lv).

Two paths embed each modality, then a fusion combines them:

- **content path**: a modality's input goes through its own input layer to a common
  width, then through an encoder ``E`` and a decoder ``D`` whose weights both
  modalities share. Trained with the reconstruction loss (eq. 1) and a contrastive
  loss with margin on ``E``'s output (eq. 2): ``L_content = l1 L_R + l2 L_M`` (eq. 3).
- **emotion path**: an MLP emotion space ``F`` (an input layer per modality, then
  shared layers) with a shared classifier, trained with cross-entropy on the emotion
  labels of the video and of the music (eq. 4) and the inter-modal term (eq. 5):
  ``L_emotion = u1 L_D + u2 L_M'`` (eq. 6).
- **fusion**: *splicing* concatenates the unit content and emotion vectors of one
  modality; *interactive* passes the splice through a fully connected layer so content
  and emotion interact. ``L_fusion`` (eq. 7) on the fused vectors.

Total (eq. 8): ``k1 L_content + k2 L_emotion + k3 L_fusion``. The polarity-penalty
metric loss (eqs. 10-12) can replace the contrastive metric terms (``metric="ppml"``)
and is also a loss of its own for the VM-Net family (``--loss ppml``).

Where the paper leaves a detail open, the choice made here (docs/methods.md says so):

- the paper's features (3D-ResNet, VGGish for content; ViViT, ResNet-101 for emotion)
  have their own widths; a shared-weight encoder needs one width, so each modality has
  its own input layer to the common width, and its own output layer after the shared
  decoder; ``L_R`` compares the reconstruction with the (normalised) input. Both paths
  read the same collection features: the paper's pretrained emotion networks cannot be
  had offline;
- the distance ``||.||`` of eqs. 1, 2, 5 and 7 is the cosine distance (Sec. III-A);
- eq. 2 per batch: every matched pair is a ``Y = 0`` pair, every pair of different
  clips of the batch and every stored known negative (``/negatives``) a ``Y = 1`` pair;
  the two kinds are averaged separately and added (balanced), as a batch holds b
  matched and b(b-1) mismatched pairs;
- eq. 7 written as a distance alone lets the fusion layer map everything to one point
  (zero loss); the text calls it the "loss of contrast" between the fused features, so
  ``L_fusion`` is eq. 2's contrastive loss on them (with the same margin);
- eq. 5 is transcribed with the paper's sign (minus the cosine distance of a pair's
  video and music emotion vectors);
- sums over a batch are means (eq. 12 over its b(b-1) terms), so the weights of eq. 8
  do not depend on the batch size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from vmtool.models import loss_registry
from vmtool.models.config import DPVMConfig

__all__ = ["DPVM_PAPER_DEFAULTS", "FUSIONS", "METRICS", "DPVMConfig", "DPVMLossConfig", "DPVMNet",
           "cosine_distance", "reconstruction_loss", "contrastive_loss", "discrimination_loss",
           "emotion_intermodal_loss", "polarity_penalty_loss", "dpvm_loss"]

#: Sec. IV-B of the paper: optimiser, batch, epochs and the weights of eqs. 3, 6 and 8.
#: ``vmtool train --model dpvm`` without other options uses the loss weights; the
#: optimisation settings are what a ``dpvm`` preset sets (batch 16, lr 1e-4, 100 epochs).
DPVM_PAPER_DEFAULTS: dict[str, Any] = {
    "model": "dpvm",
    "fusion": "interactive",   # DPVM_In, the paper's best (Table I)
    "metric": "contrastive",   # Table I; "ppml" for Table II
    "lambda1": 0.8, "lambda2": 1.0,   # eq. 3: reconstruction, metric
    "mu1": 0.8, "mu2": 1.0,           # eq. 6: discrimination, inter-modal
    "k1": 0.5, "k2": 0.5, "k3": 1.0,  # eq. 8: content, emotion, fusion
    "lr": 1e-4, "betas": [0.5, 0.999], "batch_size": 16, "epochs": 100,
}

FUSIONS = ("interactive", "splicing", "content", "emotion")
METRICS = loss_registry.get_loss("dpvm").param("metric").choices  # eq. 2; eqs. 10-12


@dataclass
class DPVMLossConfig:
    """Weights and options of DPVM's objective (defaults: the paper's, Sec. IV-B).

    ``--loss dpvm:KEY=VALUE`` sets ``margin``, ``mu2`` and ``metric`` (their defaults are
    declared in :data:`vmtool.models.loss_registry.LOSSES`).

    Attributes
    ----------
    lambda1, lambda2 : float
        eq. 3: reconstruction and metric weights.
    mu1, mu2 : float
        eq. 6: discrimination (cross-entropy) and inter-modal weights.
    k1, k2, k3 : float
        eq. 8: content, emotion and fusion weights.
    margin : float
        eq. 2's margin on the cosine distance (the paper gives none; 0.5 here).
    metric : {"contrastive", "ppml"}
        The metric terms: eq. 2, or the polarity-penalty metric loss (eqs. 10-12).
    video_emotion, music_emotion : str
        Label columns of the video's and the music's emotion class (when absent, a
        column ``emotion`` serves both).
    polarity : str
        Label column of the polarity (``ppml``).
    """

    name: str = "dpvm"
    lambda1: float = DPVM_PAPER_DEFAULTS["lambda1"]
    lambda2: float = DPVM_PAPER_DEFAULTS["lambda2"]
    mu1: float = DPVM_PAPER_DEFAULTS["mu1"]
    mu2: float = loss_registry.defaults("dpvm")["mu2"]
    k1: float = DPVM_PAPER_DEFAULTS["k1"]
    k2: float = DPVM_PAPER_DEFAULTS["k2"]
    k3: float = DPVM_PAPER_DEFAULTS["k3"]
    margin: float = loss_registry.defaults("dpvm")["margin"]
    metric: str = loss_registry.defaults("dpvm")["metric"]
    video_emotion: str = "video_emotion"
    music_emotion: str = "music_emotion"
    polarity: str = "polarity"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DPVMLossConfig:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _mlp(widths: list[int], dropout: float, *, last_act: bool = False) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        mods.append(nn.Linear(a, b))
        if i < len(widths) - 2 or last_act:
            mods += [nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*mods)


class DPVMNet(nn.Module):
    """The two paths and the fusion; :meth:`embed` gives the final unit-norm embedding."""

    def __init__(self, config: DPVMConfig):
        super().__init__()
        if config.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {config.fusion!r}")
        self.config = c = config
        dims = {"audio": c.audio_dim, "video": c.video_dim}
        # content path: own input/output layers, shared encoder E and decoder D
        self.content_in = nn.ModuleDict({m: nn.Sequential(nn.Linear(d, c.common), nn.ReLU()) for m, d in dims.items()})
        self.encoder = _mlp([c.common, *c.content_layers], c.dropout)
        self.decoder = _mlp([*reversed(c.content_layers), c.common], c.dropout, last_act=True)
        self.content_out = nn.ModuleDict({m: nn.Linear(c.common, d) for m, d in dims.items()})
        self.emotion_in: nn.ModuleDict | None = None
        self.fuse: nn.Module | None = None
        if c.has_emotion:
            e0 = c.emotion_layers[0]
            self.emotion_in = nn.ModuleDict({m: nn.Sequential(nn.Linear(d, e0), nn.ReLU(), nn.Dropout(c.dropout))
                                             for m, d in dims.items()})
            self.emotion = _mlp(list(c.emotion_layers), c.dropout)
            self.classifier = nn.Linear(c.emotion_layers[-1], max(1, c.n_emotions))
            if c.fusion == "interactive":
                self.fuse = nn.Linear(c.content_layers[-1] + c.emotion_layers[-1], c.fusion_dim)

    def paths(self, modality: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every intermediate a loss needs: ``content`` E(x), ``recon`` D(E(x)), and with an
        emotion path ``emotion`` F(x), ``logits``, and ``fused`` (the final embedding)."""
        h = self.content_in[modality](x)
        content = self.encoder(h)
        out = {"content": content, "recon": self.content_out[modality](self.decoder(content))}
        if self.emotion_in is not None:
            emo = self.emotion(self.emotion_in[modality](x))
            out["emotion"] = emo
            out["logits"] = self.classifier(emo)
        out["fused"] = self._final(out)
        return out

    def _final(self, p: dict[str, torch.Tensor]) -> torch.Tensor:
        fusion = self.config.fusion
        if fusion == "content":
            return F.normalize(p["content"], dim=-1)
        if fusion == "emotion":
            return F.normalize(p["emotion"], dim=-1)
        splice = torch.cat([F.normalize(p["content"], dim=-1), F.normalize(p["emotion"], dim=-1)], dim=-1)
        if fusion == "splicing":
            return F.normalize(splice, dim=-1)
        return F.normalize(self.fuse(splice), dim=-1)

    def embed(self, modality: str, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.paths(modality, x)["fused"]

    def forward(self, audio: torch.Tensor, video: torch.Tensor, audio_mask=None, video_mask=None):
        return self.embed("audio", audio), self.embed("video", video)


# -- the losses, one function per equation ---------------------------------------------------

def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise ``1 - cos(a_i, b_i)``."""
    return 1.0 - F.cosine_similarity(a, b, dim=-1, eps=1e-8)


def _cosine_distance_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 1.0 - F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def reconstruction_loss(v: torch.Tensor, v_rec: torch.Tensor, m: torch.Tensor, m_rec: torch.Tensor) -> torch.Tensor:
    """Eq. 1: ``||V - D(E(V))|| + ||M - D(E(M))||``, cosine distance, mean over the batch."""
    return cosine_distance(v, v_rec).mean() + cosine_distance(m, m_rec).mean()


def contrastive_loss(v: torch.Tensor, m: torch.Tensor, negatives: torch.Tensor, margin: float, *,
                     extra: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Eq. 2 on a batch: ``1/2 d^2`` for matched pairs (Y = 0), ``1/2 max(0, margin - d)^2``
    for mismatched ones (Y = 1); d the cosine distance.

    Parameters
    ----------
    v, m : torch.Tensor [shape=(b, D)]
        Video and music vectors of b matched pairs (row i with row i).
    negatives : torch.Tensor [shape=(b, b), bool]
        Which ``(v_i, m_j)`` are mismatched (pairs of different clips).
    extra : (torch.Tensor, torch.Tensor), optional
        Video and music vectors of further known mismatched pairs (row i with row i).

    The matched and the mismatched terms are each averaged, then added.
    """
    d = _cosine_distance_matrix(v, m)
    pos = 0.5 * torch.diagonal(d) ** 2
    hinge = 0.5 * torch.clamp(margin - d, min=0.0) ** 2
    neg_terms = hinge[negatives]
    if extra is not None and len(extra[0]):
        neg_terms = torch.cat([neg_terms, 0.5 * torch.clamp(margin - cosine_distance(*extra), min=0.0) ** 2])
    neg = neg_terms.mean() if neg_terms.numel() else d.new_zeros(())
    return pos.mean() + neg


def discrimination_loss(logits_v: torch.Tensor, y_v: torch.Tensor, logits_m: torch.Tensor,
                        y_m: torch.Tensor) -> torch.Tensor:
    """Eq. 4: cross-entropy of the video's and of the music's emotion class (label -1: no label,
    left out), each averaged over the labelled pairs, then added."""
    out = logits_v.new_zeros(())
    for logits, y in ((logits_v, y_v), (logits_m, y_m)):
        ok = y >= 0
        if bool(ok.any()):
            out = out + F.cross_entropy(logits[ok], y[ok])
    return out


def emotion_intermodal_loss(f_v: torch.Tensor, f_m: torch.Tensor) -> torch.Tensor:
    """Eq. 5: ``-||F(V_i) - F(M_i)||`` (cosine distance, the paper's sign), mean over the batch."""
    return -cosine_distance(f_v, f_m).mean()


def polarity_penalty_loss(v: torch.Tensor, m: torch.Tensor, polarity: torch.Tensor,
                          negatives: torch.Tensor | None = None) -> torch.Tensor:
    """Eqs. 10-12, the polarity-penalty metric loss, mean over its terms.

    ``sum_k sum_{i != k} (P_ki rho_ki phi(v_k, m_i) - phi(v_k, m_k))`` with phi the cosine
    similarity, ``rho_ki = 0`` where ``phi(v_k, m_i) < phi(v_k, m_k)`` (a pair already less
    similar than the match, eq. 10) and 1 otherwise, ``P_ki = |label_k - label_i|`` the
    polarity difference (eq. 11). *negatives* (b, b) limits the terms to pairs of
    different clips (default: every ``i != k``).
    """
    s = F.normalize(v, dim=-1) @ F.normalize(m, dim=-1).T
    pos = torch.diagonal(s)
    rho = (s >= pos[:, None]).to(s.dtype).detach()
    p = (polarity[:, None] - polarity[None, :]).abs().to(s.dtype)
    if negatives is None:
        negatives = ~torch.eye(len(v), dtype=torch.bool, device=v.device)
    terms = p * rho * s - pos[:, None]
    n = negatives.sum()
    return (terms * negatives).sum() / n.clamp(min=1)


def dpvm_loss(cfg: DPVMLossConfig, net: DPVMNet, a: torch.Tensor, v: torch.Tensor, clips: torch.Tensor, *,
              y_video: torch.Tensor | None = None, y_music: torch.Tensor | None = None,
              polarity: torch.Tensor | None = None,
              extra: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 8 on a batch of b matched pairs (*a* music inputs, *v* video inputs, both normalised).

    *y_video*, *y_music*: emotion class per pair (-1: none); *polarity* per pair (``ppml``);
    *extra*: video and music inputs of known mismatched pairs.
    """
    c = net.config
    neg = clips[:, None] != clips[None, :]
    pv, pm = net.paths("video", v), net.paths("audio", a)
    ex = None
    if extra is not None and len(extra[0]):
        ev, em = net.paths("video", extra[0]), net.paths("audio", extra[1])
        ex = (ev, em)

    def metric(key: str) -> torch.Tensor:
        if cfg.metric == "ppml":
            if polarity is None:
                raise ValueError("the ppml metric needs polarity labels")
            return polarity_penalty_loss(pv[key], pm[key], polarity, neg)
        return contrastive_loss(pv[key], pm[key], neg, cfg.margin,
                                extra=None if ex is None else (ex[0][key], ex[1][key]))

    parts: dict[str, torch.Tensor] = {}
    total = v.new_zeros(())
    if c.fusion != "emotion":
        parts["recon"] = reconstruction_loss(v, pv["recon"], a, pm["recon"])
        parts["content_metric"] = metric("content")
        total = total + cfg.k1 * (cfg.lambda1 * parts["recon"] + cfg.lambda2 * parts["content_metric"])
    if c.has_emotion:
        if y_video is None or y_music is None:
            raise ValueError("the emotion path needs emotion labels")
        parts["discrimination"] = discrimination_loss(pv["logits"], y_video, pm["logits"], y_music)
        parts["emotion_intermodal"] = emotion_intermodal_loss(pv["emotion"], pm["emotion"])
        total = total + cfg.k2 * (cfg.mu1 * parts["discrimination"] + cfg.mu2 * parts["emotion_intermodal"])
        if c.fusion in ("interactive", "splicing"):
            parts["fusion"] = metric("fused")
            total = total + cfg.k3 * parts["fusion"]
    return total, {k: float(t.detach()) for k, t in parts.items()}
