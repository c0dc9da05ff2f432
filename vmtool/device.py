"""Choosing the torch device at run time.

``auto`` means CUDA when available, else the CPU; on a Linux machine without a GPU
driver the answer is known without importing torch (which costs about 2 s), so commands
that only need numpy start fast. An impossible request (``cuda`` on a
machine without a GPU, an index past the last GPU) falls back to the CPU with a
warning, as whisper and demucs do, instead of failing.
"""

from __future__ import annotations

import os
import re
import sys
import warnings

from vmtool.errors import ParameterError

__all__ = ["gpu_driver_present", "resolve_device", "validate_device"]

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


def validate_device(spec: str) -> str:
    """Check the syntax of a device string; return it normalised (lower case)."""
    s = (spec or "auto").strip().lower()
    if not _DEVICE_RE.match(s):
        raise ParameterError(f"invalid device {spec!r}: use auto, cpu, cuda or cuda:N")
    return s


def gpu_driver_present() -> bool:
    """Whether this machine may have a GPU torch can use, judged without importing torch.

    On Linux a CUDA GPU needs the NVIDIA driver (``/proc/driver/nvidia``, ``/dev/nvidia*``),
    a ROCm one ``/dev/kfd``, WSL's ``/dev/dxg``. Elsewhere the answer is always True (ask torch).
    """
    if not sys.platform.startswith("linux"):
        return True
    if os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/kfd") or os.path.exists("/dev/dxg"):
        return True
    try:
        return any(n.startswith("nvidia") for n in os.listdir("/dev"))
    except OSError:
        return True


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
    if s == "auto" and "torch" not in sys.modules and not gpu_driver_present():
        return "cpu"  # what torch would answer, without its ~2 s import
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
