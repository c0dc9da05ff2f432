"""A stored model's inference in numpy: the networks of :mod:`vmtool.models.nets` and
:mod:`vmtool.models.dpvm` in evaluation mode, without PyTorch.

Every network a catalog may hold is a small stack of matrix products: the VM-Net
branches (optional attention or auto-pool aggregation, linear layers with ReLU, a last
linear layer, batch normalisation with its running statistics, L2 normalisation), the
pair classifier of the BCE loss, and DPVM's content and emotion paths with their
fusion (dropout is the identity at inference). A one-file command such as ``vmtool
rank clip.mp4 catalog.h5`` would otherwise import torch (about 1 s of start-up,
docs/performance.md) to run a few products on one query.

:func:`numpy_model` takes a checkpoint as :mod:`vmtool.models.torchzip` reads it (tensors
as numpy arrays, no torch) and returns a :class:`NumpyModel`, which offers what inference uses of
:class:`vmtool.models.checkpoint.LoadedModel` (``embed``, ``pair_logits``, ``dim``,
``level``, ``data``...). The arithmetic is float64 and the results float32: they equal
torch's float32 results within 1e-6 (tests/test_inference.py, every architecture).
A checkpoint it does not read or a network it does not know raises
:class:`~vmtool.models.torchzip.Unsupported`; callers then use torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vmtool.errors import ParameterError
from vmtool.models.config import DPVMConfig, ModelConfig
from vmtool.models.torchzip import Unsupported

__all__ = ["NumpyModel", "numpy_model"]

#: nn.BatchNorm1d's default epsilon (vmtool's branches keep it)
BN_EPS = 1e-5
#: F.normalize's default epsilon
NORM_EPS = 1e-12
#: the aggregations and DPVM fusions computed here (others: torch)
AGGREGATIONS = ("stats", "attention", "autopool")
FUSIONS = ("interactive", "splicing", "content", "emotion")


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), NORM_EPS)


def _softmax(s: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(s - np.max(s, axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class _Weights:
    """A state dict as float64 arrays; records which keys were read."""

    def __init__(self, sd: dict[str, Any]):
        self.sd = sd
        self.used: set[str] = set()

    def __call__(self, key: str) -> np.ndarray:
        if key not in self.sd or not isinstance(self.sd[key], np.ndarray):
            raise Unsupported(f"no weight {key!r}")
        self.used.add(key)
        return self.sd[key].astype(np.float64)

    def linear(self, prefix: str) -> tuple[np.ndarray, np.ndarray]:
        """``nn.Linear`` at *prefix*: (W.T, b), so that ``y = x @ W.T + b`` (W.T a view)."""
        return self(f"{prefix}.weight").T, self(f"{prefix}.bias")


def _apply(layers: list[tuple[str, Any]], x: np.ndarray) -> np.ndarray:
    for kind, p in layers:
        if kind == "linear":
            x = x @ p[0] + p[1]
        elif kind == "relu":
            x = np.maximum(x, 0.0)
        elif kind == "bn":
            mean, var, w, b = p
            x = (x - mean) / np.sqrt(var + BN_EPS) * w + b
    return x


def _sequential(w: _Weights, prefix: str, widths: list[int], *, step: int, act_last: bool) -> list:
    """The linear layers of an ``nn.Sequential`` of (Linear, ReLU[, Dropout]) groups of *step* modules."""
    layers: list[tuple[str, Any]] = []
    n = len(widths) - 1
    for i in range(n):
        lin = w.linear(f"{prefix}.{i * step}")
        if lin[0].shape != (widths[i], widths[i + 1]):
            raise Unsupported(f"{prefix}.{i * step} is {lin[0].shape[::-1]}, not ({widths[i + 1]}, {widths[i]})")
        layers.append(("linear", lin))
        if i < n - 1 or act_last:
            layers.append(("relu", None))
    return layers


class _Branch:
    """:class:`vmtool.models.nets.Branch` in evaluation mode."""

    def __init__(self, w: _Weights, prefix: str, in_dim: int, widths: list[int], aggregation: str):
        self.aggregation = aggregation
        if aggregation == "attention":
            self.score = w.linear(f"{prefix}.pool.score")
        elif aggregation == "autopool":
            self.alpha = w(f"{prefix}.pool.alpha")
        dims = [in_dim, *widths]
        self.layers = _sequential(w, f"{prefix}.mlp", dims, step=3, act_last=False)
        bn = f"{prefix}.mlp.{3 * (len(dims) - 2) + 1}"
        self.layers.append(("bn", (w(f"{bn}.running_mean"), w(f"{bn}.running_var"), w(f"{bn}.weight"),
                                   w(f"{bn}.bias"))))
        w.used.add(f"{bn}.num_batches_tracked")

    def pool(self, x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        if self.aggregation == "attention":  # a_t = softmax_t(tanh(w . x_t + b)), y = sum_t a_t x_t
            s = np.tanh(x @ self.score[0] + self.score[1])[..., 0]
            if mask is not None:
                s = np.where(mask, s, -np.inf)
            return np.einsum("bt,btd->bd", _softmax(s, 1), x)
        s = x * self.alpha  # auto-pool: y_k = sum_t x_tk softmax_t(alpha_k x_tk)
        if mask is not None:
            s = np.where(mask[..., None], s, -np.inf)
        return (_softmax(s, 1) * x).sum(axis=1)

    def __call__(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        if self.aggregation != "stats":
            x = self.pool(x, mask)
        return _l2(_apply(self.layers, x))


class _VMNet:
    """:class:`vmtool.models.nets.VMNet` in evaluation mode."""

    def __init__(self, c: ModelConfig, w: _Weights):
        if c.aggregation not in AGGREGATIONS:
            raise Unsupported(f"aggregation {c.aggregation!r}")
        self.branches = {"audio": _Branch(w, "audio", c.audio_dim, list(c.audio_layers), c.aggregation),
                         "video": _Branch(w, "video", c.video_dim, list(c.video_layers), c.aggregation)}
        self.head = None
        if c.fusion_head:
            self.head = _sequential(w, "head.net", [2 * c.dim, *map(int, c.head_layers), 1], step=2, act_last=False)
        if c.prototypes > 0:
            w("prototypes")  # not used at inference; the state dict holds it

    def embed(self, modality: str, x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        return self.branches[modality](x, mask)


class _DPVM:
    """:class:`vmtool.models.dpvm.DPVMNet` in evaluation mode: :meth:`embed` is its ``fused`` output."""

    def __init__(self, c: DPVMConfig, w: _Weights):
        if c.fusion not in FUSIONS:
            raise Unsupported(f"fusion {c.fusion!r}")
        self.c = c
        dims = {"audio": c.audio_dim, "video": c.video_dim}
        self.content_in = {m: _sequential(w, f"content_in.{m}", [d, c.common], step=2, act_last=True)
                           for m, d in dims.items()}
        self.encoder = _sequential(w, "encoder", [c.common, *c.content_layers], step=3, act_last=False)
        # the decoder, reconstruction and classifier serve the losses only: read, not applied
        _sequential(w, "decoder", [*reversed(c.content_layers), c.common], step=3, act_last=True)
        for m in dims:
            w.linear(f"content_out.{m}")
        if c.has_emotion:
            e0 = c.emotion_layers[0]
            self.emotion_in = {m: _sequential(w, f"emotion_in.{m}", [d, e0], step=3, act_last=True)
                               for m, d in dims.items()}
            self.emotion = _sequential(w, "emotion", list(c.emotion_layers), step=3, act_last=False)
            w.linear("classifier")
            if c.fusion == "interactive":
                self.fuse = w.linear("fuse")

    def embed(self, modality: str, x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        content = _apply(self.encoder, _apply(self.content_in[modality], x))
        fusion = self.c.fusion
        if fusion == "content":
            return _l2(content)
        emotion = _apply(self.emotion, _apply(self.emotion_in[modality], x))
        if fusion == "emotion":
            return _l2(emotion)
        splice = np.concatenate([_l2(content), _l2(emotion)], axis=-1)
        if fusion == "splicing":
            return _l2(splice)
        return _l2(splice @ self.fuse[0] + self.fuse[1])


class NumpyModel:
    """A stored model ready for inference on the CPU, in numpy (see the module's text).

    The attributes and methods are those of :class:`vmtool.models.checkpoint.LoadedModel`
    that inference uses; ``device`` is always ``"cpu"``.
    """

    device = "cpu"

    def __init__(self, path: Path, data: dict[str, Any], sha256: str):
        cfg = data["config"]
        model = dict(cfg["model"])
        w = _Weights(data["state_dict"])
        if model.get("family") == "dpvm":
            self.model_config: Any = DPVMConfig.from_dict(model)
            self.net: Any = _DPVM(self.model_config, w)
        else:
            self.model_config = ModelConfig.from_dict(model)
            self.net = _VMNet(self.model_config, w)
        extra = set(data["state_dict"]) - w.used
        if extra:  # a network this module does not know all of
            raise Unsupported(f"weights {sorted(extra)[:3]} are not read")
        self.path = Path(path)
        self.data = data
        self.data_config = dict(cfg["data"])
        self.norm = {mod: (np.asarray(v["mean"], dtype=np.float64), np.asarray(v["std"], dtype=np.float64))
                     for mod, v in data["normalisation"].items()}
        self.sha256 = sha256

    @property
    def dim(self) -> int:
        return int(self.model_config.dim)

    @property
    def level(self) -> str:
        return str(self.data_config.get("level", "clip"))

    def embed(self, modality: str, x, mask=None, *, batch: int = 512) -> np.ndarray:
        """Embed inputs of one modality: ``(n, dim)`` or ``(n, T, dim)`` -> ``(n, D)`` float32."""
        mean, std = self.norm[modality]
        out = []
        for lo in range(0, len(x), batch):
            xb = (np.asarray(x[lo:lo + batch], dtype=np.float32).astype(np.float64) - mean) / std
            mb = None if mask is None else np.asarray(mask[lo:lo + batch], dtype=bool)
            out.append(self.net.embed(modality, xb, mb).astype(np.float32))
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(out)

    @property
    def has_head(self) -> bool:
        """Whether the model has the pair classifier of the BCE loss."""
        return getattr(self.net, "head", None) is not None

    def pair_logits(self, video, music, *, batch: int = 1 << 20) -> np.ndarray:
        """The pair classifier's logit for every (video, music) pair: ``(n, D)``, ``(m, D)`` -> ``(n, m)`` float32."""
        if not self.has_head:
            raise ParameterError("the model has no pair classifier (it was not trained with --loss bce)", self.path)
        v = np.asarray(video, dtype=np.float32).astype(np.float64)
        m = np.asarray(music, dtype=np.float32).astype(np.float64)
        first_w, first_b = self.net.head[0][1]
        d = v.shape[1]
        # the first layer on concat(v, m) is v @ Wv + m @ Wm + b: computed once per side
        hv, hm = v @ first_w[:d], m @ first_w[d:] + first_b
        out = np.empty((len(v), len(m)), dtype=np.float32)
        # float64 hidden layers: about 128 MB at a time
        step = max(1, min(batch // max(1, len(m)), (1 << 24) // max(1, len(m) * hv.shape[1])))
        for lo in range(0, len(v), step):
            h = hv[lo:lo + step, None, :] + hm[None, :, :]
            out[lo:lo + len(h)] = _apply(self.net.head[1:], h)[..., 0].astype(np.float32)
        return out


def numpy_model(data: dict[str, Any], path: Path, sha256: str) -> NumpyModel:
    """A :class:`NumpyModel` of a checkpoint read by :func:`vmtool.models.torchzip.read_checkpoint`.

    Raises
    ------
    Unsupported
        The network is not one this module computes, or the dict is not what vmtool
        writes: the caller uses torch (whose loader reports what is wrong).
    """
    try:
        return NumpyModel(path, data, sha256)
    except Unsupported:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise Unsupported(f"{type(exc).__name__}: {exc}") from exc
