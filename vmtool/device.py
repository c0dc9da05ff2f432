"""Choosing the torch device at run time.

``auto`` means CUDA when available, else the CPU. An impossible request (``cuda`` on a
machine without a GPU, an index past the last GPU) falls back to the CPU with a
warning, as whisper and demucs do, instead of failing.
"""

from __future__ import annotations

import re
import warnings

from vmtool.errors import ParameterError

__all__ = ["resolve_device", "validate_device"]

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


def validate_device(spec: str) -> str:
    """Check the syntax of a device string; return it normalised (lower case)."""
    s = (spec or "auto").strip().lower()
    if not _DEVICE_RE.match(s):
        raise ParameterError(f"invalid device {spec!r}: use auto, cpu, cuda or cuda:N")
    return s


def resolve_device(spec: str = "auto") -> str:
    """Turn ``auto|cpu|cuda[:N]|mps`` into a device torch can use here.

    Returns
    -------
    str
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Warns
    -----
    RuntimeWarning
        When the requested device is not available and the CPU is used instead.
    """
    s = validate_device(spec)
    if s == "cpu":
        return "cpu"
    import torch

    if s == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if s.startswith("cuda"):
        if not torch.cuda.is_available():
            warnings.warn(f"device {spec!r} requested but CUDA is not available; using the CPU", RuntimeWarning, stacklevel=2)
            return "cpu"
        if ":" in s and int(s.split(":")[1]) >= torch.cuda.device_count():
            warnings.warn(f"device {spec!r} does not exist ({torch.cuda.device_count()} GPU(s)); using cuda:0",
                          RuntimeWarning, stacklevel=2)
            return "cuda:0"
        return s
    if s == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            warnings.warn("device 'mps' requested but not available; using the CPU", RuntimeWarning, stacklevel=2)
            return "cpu"
        return "mps"
    return "cpu"  # pragma: no cover
