"""Model files: plain data, loaded with ``torch.load(..., weights_only=True)``.

A model file is a ``torch.save`` of a dict of tensors, numbers, strings, lists and
dicts only::

    {"format": "vmtool-model", "version": 1,
     "config":   {"model": ModelConfig, "loss": LossConfig, "data": DataConfig, "train": {...}},
     "state_dict": {...best weights...},
     "normalisation": {"audio": {"mean": Tensor, "std": Tensor}, "video": {...}},
     "features": {...extraction config of the training file...},
     "segmentation": {"method": str, "config": {...}} or None,
     "training": {"epochs", "best_epoch", "best", "history": [...], "seconds", ...},
     "resume": {"state_dict", "optimizer", "epoch", "rng", ...} or absent}

The model is rebuilt from ``config["model"]``; nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any

from vmtool.errors import FormatError, ParameterError

__all__ = ["MODEL_FORMAT", "MODEL_VERSION", "save_model", "load_checkpoint", "load_model", "read_model_info",
           "is_model_file", "LoadedModel", "build_network"]

MODEL_FORMAT = "vmtool-model"
MODEL_VERSION = 1


def is_model_file(path: str | os.PathLike) -> bool:
    """Whether *path* looks like a torch checkpoint (a zip archive), without loading it."""
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def save_model(data: dict[str, Any], path: str | os.PathLike) -> None:
    """Write a checkpoint dict to *path* (the caller handles atomicity)."""
    import torch

    out = dict(data)
    out["format"] = MODEL_FORMAT
    out["version"] = MODEL_VERSION
    # through a file object, torch names the archive's records "archive/..."; given a path it
    # names them after the file, here the atomic writer's temporary (with a pid and a random
    # part), which made two model files of the same training differ in size and bytes
    with open(path, "wb") as fh:
        torch.save(out, fh)


def load_checkpoint(path: str | os.PathLike, *, map_location: str = "cpu") -> dict[str, Any]:
    """Read and check a model file (format and version) with ``weights_only=True``.

    Raises
    ------
    FormatError
        Not a vmtool model file, or an unknown version.
    """
    import torch

    p = Path(path)
    if not p.exists():
        raise FormatError("no such model file", p)
    if not is_model_file(p):
        raise FormatError("not a vmtool model file (expected a checkpoint written by 'vmtool train')", p)
    try:
        data = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for damaged or foreign files
        raise FormatError(f"cannot read as a vmtool model: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                          p) from exc
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
        raise FormatError("not a vmtool model file (attribute 'format' is missing)", p)
    if int(data.get("version", 0)) != MODEL_VERSION:
        raise FormatError(f"model file version {data.get('version')!r} is not supported "
                          f"(this vmtool reads version {MODEL_VERSION})", p)
    for key in ("config", "state_dict", "normalisation"):
        if key not in data:
            raise FormatError(f"model file lacks {key!r}", p)
    return data


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class LoadedModel:
    """A model ready for inference: network in eval mode + input normalisation + recipe."""

    def __init__(self, path: Path, data: dict[str, Any], device: str, sha256: str | None = None):
        import torch

        self.path = Path(path)
        self.data = data
        self.device = device
        cfg = data["config"]
        self.model_config, self.net = build_network(cfg["model"])
        self.data_config = dict(cfg["data"])
        try:
            self.net.load_state_dict(data["state_dict"])
        except RuntimeError as exc:
            raise FormatError(f"weights do not match the stored configuration: {str(exc).splitlines()[0]}",
                              path) from exc
        self.net.to(device).eval()
        self.norm = {mod: (torch.as_tensor(v["mean"], dtype=torch.float32, device=device),
                           torch.as_tensor(v["std"], dtype=torch.float32, device=device))
                     for mod, v in data["normalisation"].items()}
        self.sha256 = sha256 if sha256 is not None else file_sha256(path)

    @property
    def dim(self) -> int:
        return self.model_config.dim

    @property
    def level(self) -> str:
        return str(self.data_config.get("level", "clip"))

    def embed(self, modality: str, x, mask=None, *, batch: int = 512):
        """Embed inputs of one modality: ``(n, dim)`` or ``(n, T, dim)`` numpy -> ``(n, D)`` float32 numpy."""
        import numpy as np
        import torch

        mean, std = self.norm[modality]
        out = []
        with torch.inference_mode():
            for lo in range(0, len(x), batch):
                xb = torch.as_tensor(np.asarray(x[lo:lo + batch]), dtype=torch.float32, device=self.device)
                xb = (xb - mean) / std
                mb = None if mask is None else torch.as_tensor(mask[lo:lo + batch], device=self.device)
                out.append(self.net.embed(modality, xb, mb).float().cpu().numpy())
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)


    @property
    def has_head(self) -> bool:
        """Whether the model has the pair classifier of the BCE loss."""
        return getattr(self.net, "head", None) is not None  # DPVM has none

    def pair_logits(self, video, music, *, batch: int = 1 << 20):
        """The pair classifier's logit for every (video, music) pair of two embedding sets.

        ``(n, D)`` and ``(m, D)`` numpy -> ``(n, m)`` float32 numpy; the sigmoid of a logit
        is the model's probability that the two come from one clip (BCE models only).
        """
        import numpy as np
        import torch

        if not self.has_head:
            raise ParameterError("the model has no pair classifier (it was not trained with --loss bce)", self.path)
        v = torch.as_tensor(np.asarray(video, dtype=np.float32), device=self.device)
        m = torch.as_tensor(np.asarray(music, dtype=np.float32), device=self.device)
        out = np.empty((len(v), len(m)), dtype=np.float32)
        step = max(1, batch // max(1, len(m)))
        with torch.inference_mode():
            for lo in range(0, len(v), step):
                vb = v[lo:lo + step]
                pairs_v = vb[:, None, :].expand(-1, len(m), -1)
                pairs_m = m[None, :, :].expand(len(vb), -1, -1)
                out[lo:lo + len(vb)] = self.net.head(pairs_v, pairs_m).float().cpu().numpy()
        return out


def build_network(model_config: dict[str, Any]):
    """The network a stored ``config["model"]`` describes (VM-Net family, or DPVM when
    ``family`` is ``dpvm``), with fresh weights: ``(config object, module)``."""
    if model_config.get("family") == "dpvm":
        from vmtool.models.dpvm import DPVMConfig, DPVMNet

        c = DPVMConfig.from_dict(model_config)
        return c, DPVMNet(c)
    from vmtool.models.nets import ModelConfig, VMNet

    c = ModelConfig.from_dict(model_config)
    return c, VMNet(c)


def load_model(path: str | os.PathLike, device: str = "cpu") -> LoadedModel:
    """Load a model file for inference on *device* (already resolved)."""
    p = Path(path)
    return LoadedModel(p, load_checkpoint(p, map_location=device), device)


def read_model_info(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON-ready description of a model file (for ``vmtool info MODEL``)."""
    p = Path(path)
    data = load_checkpoint(p)
    cfg = data["config"]
    sd = data["state_dict"]
    n_params = int(sum(int(t.numel()) for t in sd.values() if hasattr(t, "numel")))
    training = dict(data.get("training", {}))
    history = training.pop("history", [])
    return {
        "file": str(p),
        "kind": MODEL_FORMAT,
        "version": data.get("version"),
        "vmtool_version": data.get("vmtool_version"),
        "created": data.get("created"),
        "command": data.get("command", ""),
        "sha256": file_sha256(p),
        "size_bytes": p.stat().st_size,
        "parameters": n_params,
        "model": cfg.get("model", {}),
        "loss": cfg.get("loss", {}),
        "data": cfg.get("data", {}),
        "train": cfg.get("train", {}),
        "features": data.get("features", {}),
        "segmentation": data.get("segmentation"),
        "training": training,
        "epochs_logged": len(history),
        "resumable": "resume" in data,
    }
