"""Training the joint embedding: data preparation and the training loop.

The names below are loaded on first use, so ``vmtool.training.presets`` (read by
``vmtool train --help``) imports neither numpy nor torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"DataConfig": "data", "TrainConfig": "loop", "TrainResult": "loop", "train": "loop"}

__all__ = ["DataConfig", "TrainConfig", "TrainResult", "train"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"vmtool.training.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'vmtool.training' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
