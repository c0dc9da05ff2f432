"""Feature extractors and their registry.

Extractors are registered by name with the module that defines them, so listing
them imports nothing heavy until one is used. A third-party or future backend
(AudioSet VGGish, OpenL3, MusiCNN, ImageNet CNNs...) registers itself with
:func:`register` and reports through ``availability()`` whether it can run offline
now (for instance, whether its weights file is present).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

from vmtool.errors import ExtractorUnavailable, ParameterError

__all__ = ["register", "get_extractor", "extractor_class", "list_extractors", "ExtractorInfo", "names"]

# name -> "module:Class"
_REGISTRY: dict[str, str] = {
    "handcrafted": "vmtool.features.handcrafted:HandcraftedExtractor",
    "vmnet-handcrafted": "vmtool.features.vmnet_handcrafted:VmnetHandcraftedExtractor",
    "vggish": "vmtool.features.vggish:VGGishExtractor",
    "transnet": "vmtool.features.transnet:TransNetExtractor",
    "color": "vmtool.features.color:ColorExtractor",
}


@dataclass(frozen=True)
class ExtractorInfo:
    """One line of ``vmtool extract --list``."""

    name: str
    modality: str
    dim: int
    summary: str
    available: bool
    reason: str
    curves: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "modality": self.modality,
            "dim": self.dim,
            "summary": self.summary,
            "available": self.available,
            "reason": self.reason,
            "curves": list(self.curves),
        }


def register(name: str, target: str) -> None:
    """Register an extractor class given as ``"package.module:ClassName"``."""
    if ":" not in target:
        raise ParameterError(f"extractor target must look like 'module:Class', got {target!r}")
    _REGISTRY[name] = target


def names(modality: str | None = None) -> list[str]:
    """Registered extractor names (of one modality, when given)."""
    if modality is None:
        return list(_REGISTRY)
    return [n for n in _REGISTRY if extractor_class(n).modality == modality]


def extractor_class(name: str):
    """The class registered under *name*."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise ParameterError(f"unknown extractor {name!r}; known: {', '.join(_REGISTRY)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def get_extractor(name: str, *, modality: str | None = None, device: str = "cpu", **params: Any):
    """Build the extractor *name* (checking its modality and that it can run).

    Raises
    ------
    ParameterError
        Unknown name, or an extractor of the other modality.
    ExtractorUnavailable
        The extractor cannot run here (e.g. its weights are absent).
    """
    cls = extractor_class(name)
    if modality is not None and cls.modality != modality:
        others = ", ".join(names(modality)) or "none"
        raise ParameterError(f"{name!r} is a {cls.modality} extractor, not a {modality} one (use: {others})")
    # an extractor whose availability depends on its parameters (a weights path) gets them
    accepted = inspect.signature(cls.availability).parameters
    ok, reason = cls.availability(**{k: v for k, v in params.items() if k in accepted})
    if not ok:
        raise ExtractorUnavailable(f"extractor {name!r} cannot run: {reason}")
    return cls(device=device, **params)


def list_extractors() -> list[ExtractorInfo]:
    """Every registered extractor with its dimension and whether it can run offline now."""
    out = []
    for name in _REGISTRY:
        try:
            cls = extractor_class(name)
        except ImportError as exc:  # a backend whose module or dependency is missing
            out.append(ExtractorInfo(name, "?", 0, "", False, f"cannot import {_REGISTRY[name]}: {exc}"))
            continue
        ok, reason = cls.availability()
        out.append(
            ExtractorInfo(
                name=name,
                modality=cls.modality,
                dim=int(cls.default_dim()) if hasattr(cls, "default_dim") else len(cls().columns),
                summary=cls.summary,
                available=ok,
                reason=reason,
                curves=tuple(getattr(cls, "curve_names", {}) or ()),
            )
        )
    return out
