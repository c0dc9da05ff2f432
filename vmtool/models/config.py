"""The shapes of vmtool's networks, as a model file stores them (``config["model"]``).

Plain dataclasses without PyTorch: a catalog's model is rebuilt from them by
:mod:`vmtool.models.nets` and :mod:`vmtool.models.dpvm` (training, ``torch`` inference)
and by :mod:`vmtool.models.inference` (numpy inference, no ``import torch``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ModelConfig", "DPVMConfig"]


@dataclass
class ModelConfig:
    """Shape of a two-branch model.

    Attributes
    ----------
    audio_dim, video_dim : int
        Input width of each branch (per frame for learned aggregations; of the
        statistics vector for ``stats``).
    audio_layers, video_layers : list of int
        Widths of the fully connected layers; the last is the embedding size and the
        two must agree. VM-Net: music 2048-1024-512, video 2048-512.
    dropout : float
        Dropout after each hidden ReLU.
    aggregation : {"stats", "attention", "autopool"}
        ``stats``: inputs are precomputed statistics vectors; otherwise inputs are
        ``(T, dim)`` sequences pooled by a learned layer.
    fusion_head : bool
        Add the pair scorer used by the ``bce`` loss.
    head_layers : list of int
        Hidden widths of the pair scorer before its 1-unit output: Prétet et al. 2021
        stack 1024, 128 and 1 units on the two embeddings (000, Experiment 2). Model
        files written before this setting existed had one hidden layer of 128.
    prototypes : int
        Number of shared class prototypes (``cosface`` loss), 0 for none.
    """

    audio_dim: int
    video_dim: int
    audio_layers: list[int] = field(default_factory=lambda: [2048, 1024, 512])
    video_layers: list[int] = field(default_factory=lambda: [2048, 512])
    dropout: float = 0.2
    aggregation: str = "stats"
    fusion_head: bool = False
    prototypes: int = 0
    head_layers: list[int] = field(default_factory=lambda: [1024, 128])

    @property
    def dim(self) -> int:
        return int(self.audio_layers[-1])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if "head_layers" not in known:  # files from before the setting: a 128-unit head
            known["head_layers"] = [128]
        return cls(**known)



@dataclass
class DPVMConfig:
    """Shape of a DPVM network (stored in the model file; the network is rebuilt from it).

    Attributes
    ----------
    audio_dim, video_dim : int
        Input widths (statistics vectors).
    common : int
        Width every modality is brought to before the shared encoder.
    content_layers : list of int
        Shared encoder widths; the last is the content embedding size. The decoder mirrors them.
    emotion_layers : list of int
        Emotion space widths (first: the per-modality input layer; the rest shared); the
        last is the emotion embedding size.
    n_emotions : int
        Emotion classes (0: no emotion path).
    emotion_classes : list of str
        Their names, in class-index order.
    fusion : {"interactive", "splicing", "content", "emotion"}
        What the final embedding is: the interactive fusion (DPVM_In), the splice
        (DPVM_Sp), the content path alone (DPVM_C) or the emotion path alone (DPVM_E).
    fusion_dim : int
        Output width of the interactive fusion layer.
    dropout : float
    """

    audio_dim: int
    video_dim: int
    common: int = 512
    content_layers: list[int] = field(default_factory=lambda: [256, 128])
    emotion_layers: list[int] = field(default_factory=lambda: [128, 64])
    n_emotions: int = 0
    emotion_classes: list[str] = field(default_factory=list)
    fusion: str = "interactive"
    fusion_dim: int = 128
    dropout: float = 0.2
    family: str = "dpvm"

    @property
    def dim(self) -> int:
        return {"interactive": self.fusion_dim, "content": self.content_layers[-1],
                "emotion": self.emotion_layers[-1]}.get(self.fusion,
                                                        self.content_layers[-1] + self.emotion_layers[-1])

    @property
    def has_emotion(self) -> bool:
        return self.fusion != "content"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DPVMConfig:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
