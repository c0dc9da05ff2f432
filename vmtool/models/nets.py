"""The VM-Net family of two-branch embedding networks (PyTorch).

A *branch* maps one modality's input to the joint space: an optional learned temporal
aggregation over T frames (attention or auto-pool), fully connected layers with ReLU
and dropout, a last linear layer followed by batch normalisation, then L2
normalisation (VM-Net, Hong et al. 2018). The two branches (music, video) have their
own sizes. An optional fusion head scores a (video, music) pair (the binary
cross-entropy baseline of Prétet et al. 2021).

Everything here is rebuilt from a plain configuration (:class:`ModelConfig`); a
checkpoint stores that configuration and the ``state_dict``, never pickled classes.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from vmtool.models.config import ModelConfig

__all__ = ["ModelConfig", "Attention", "AutoPool", "Branch", "FusionHead", "VMNet", "AGGREGATIONS"]

AGGREGATIONS = ("stats", "attention", "autopool")


class Attention(nn.Module):
    """Attention pooling over time: ``a_t = softmax_t(tanh(w . x_t + b))``, ``y = sum_t a_t x_t``.

    Input ``(B, T, d)`` (and an optional ``(B, T)`` bool mask of valid frames), output ``(B, d)``.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        s = torch.tanh(self.score(x)).squeeze(-1)  # (B, T)
        if mask is not None:
            s = s.masked_fill(~mask, float("-inf"))
        a = torch.softmax(s, dim=1)
        return torch.einsum("bt,btd->bd", a, x)


class AutoPool(nn.Module):
    """Auto-pool (McFee, Salamon & Bello 2018): per-dimension softmax pooling.

    ``y_k = sum_t x_tk softmax_t(alpha_k x_tk)``; ``alpha = 0`` is the mean, large
    ``alpha`` tends to the max, negative to the min. ``alpha`` is learned, starting at 0.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        s = x * self.alpha
        if mask is not None:
            s = s.masked_fill(~mask[..., None], float("-inf"))
        w = torch.softmax(s, dim=1)
        return (w * x).sum(dim=1)


class Branch(nn.Module):
    """One modality's branch: [aggregation] -> (Linear, ReLU, Dropout)* -> Linear -> BatchNorm -> L2."""

    def __init__(self, in_dim: int, layers: list[int], dropout: float, aggregation: str):
        super().__init__()
        if aggregation == "attention":
            self.pool: nn.Module | None = Attention(in_dim)
        elif aggregation == "autopool":
            self.pool = AutoPool(in_dim)
        else:
            self.pool = None
        mods: list[nn.Module] = []
        prev = in_dim
        for width in layers[:-1]:
            mods += [nn.Linear(prev, width), nn.ReLU(), nn.Dropout(dropout)]
            prev = width
        mods += [nn.Linear(prev, layers[-1]), nn.BatchNorm1d(layers[-1])]
        self.mlp = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.pool is not None:
            x = self.pool(x, mask)
        return F.normalize(self.mlp(x), dim=-1)


class FusionHead(nn.Module):
    """Scores a pair: concat(video, music) -> (Linear, ReLU)* -> Linear -> 1 (a logit).

    The sigmoid of the logit is the probability that the two come from the same clip.
    """

    def __init__(self, dim: int, hidden: list[int] | tuple[int, ...] = (1024, 128)):
        super().__init__()
        mods: list[nn.Module] = []
        prev = 2 * dim
        for width in hidden:
            mods += [nn.Linear(prev, int(width)), nn.ReLU()]
            prev = int(width)
        mods.append(nn.Linear(prev, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, video: torch.Tensor, music: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([video, music], dim=-1)).squeeze(-1)


class VMNet(nn.Module):
    """Two branches into one unit-norm space (+ optional fusion head and prototypes)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.audio_layers[-1] != config.video_layers[-1]:
            raise ValueError("the two branches must end with the same width")
        self.config = config
        self.audio = Branch(config.audio_dim, list(config.audio_layers), config.dropout, config.aggregation)
        self.video = Branch(config.video_dim, list(config.video_layers), config.dropout, config.aggregation)
        self.head = FusionHead(config.dim, list(config.head_layers)) if config.fusion_head else None
        if config.prototypes > 0:
            self.prototypes = nn.Parameter(torch.randn(config.prototypes, config.dim) / config.dim ** 0.5)
        else:
            self.register_parameter("prototypes", None)

    def forward(self, audio: torch.Tensor, video: torch.Tensor,
                audio_mask: torch.Tensor | None = None,
                video_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.audio(audio, audio_mask), self.video(video, video_mask)

    def embed(self, modality: str, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        branch = self.audio if modality == "audio" else self.video
        return branch(x, mask)
