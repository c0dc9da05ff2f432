"""Joint music/video embedding models: networks, losses, checkpoints.

The names below are loaded on first use, so ``vmtool.models.checkpoint`` helpers that
need no torch (``is_model_file``) do not import it; the networks do.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "MODEL_FORMAT": "checkpoint", "MODEL_VERSION": "checkpoint", "is_model_file": "checkpoint",
    "load_model": "checkpoint", "read_model_info": "checkpoint", "save_model": "checkpoint",
    "AGGREGATIONS": "nets", "ModelConfig": "nets", "VMNet": "nets",
}

__all__ = ["ModelConfig", "VMNet", "AGGREGATIONS", "save_model", "load_model", "read_model_info", "is_model_file",
           "MODEL_FORMAT", "MODEL_VERSION"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"vmtool.models.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'vmtool.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
