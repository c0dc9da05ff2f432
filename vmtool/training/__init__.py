"""Training the joint embedding: data preparation and the training loop.

The names below are loaded on first use (PEP 562 ``__getattr__``): importing a light
submodule such as :mod:`vmtool.training.presets`, which ``vmtool --help`` reads, then
costs neither numpy nor the training loop.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - for type checkers and readers
    from vmtool.training.data import DataConfig
    from vmtool.training.loop import TrainConfig, TrainResult, train

__all__ = ["DataConfig", "TrainConfig", "TrainResult", "train"]

_HOME = {"DataConfig": "vmtool.training.data", "TrainConfig": "vmtool.training.loop",
         "TrainResult": "vmtool.training.loop", "train": "vmtool.training.loop"}


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
