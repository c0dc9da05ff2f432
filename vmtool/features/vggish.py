"""AudioSet VGGish embeddings (Hershey et al., 2017), 128 per step.

A PyTorch implementation of the VGGish network and of its input and output
processing, following Google's TensorFlow reference (``tensorflow/models``,
``research/audioset/vggish``: ``mel_features.py``, ``vggish_input.py``,
``vggish_slim.py``, ``vggish_postprocess.py``), with the state-dict layout of the
widely used torch port (harritaylor/torchvggish, ``vggish-10086976.pth``).

Pipeline
--------
1. Input: mono audio at 16 kHz (:data:`SR`).
2. Log-mel frames (``mel_features.log_mel_spectrogram``): frames of 400 samples
   (25 ms) every 160 samples (10 ms), no padding, a periodic Hann window, the
   magnitude of a 512-point FFT, 64 mel bands between 125 and 7500 Hz (HTK mel
   scale ``1127 ln(1 + f / 700)``, triangles in the mel domain, DC bin excluded),
   then ``log(mel + 0.01)``. Frame ``j`` covers samples ``[160 j, 160 j + 400)``, so
   ``n`` samples give ``1 + (n - 400) // 160`` frames.
3. Examples: 96 consecutive frames x 64 bands (0.96 s of frame hops; 15 600
   samples, 0.975 s, of signal). The reference takes them without overlap; here
   consecutive examples start every ``hop_seconds`` (0.48 s by default: 50 %
   overlap; a multiple of the 10 ms frame hop). Trailing frames that do not fill an
   example are dropped, as in the reference; an item shorter than one example is
   zero-padded to one example.
4. Network: conv64-pool-conv128-pool-conv256-conv256-pool-conv512-conv512-pool
   (3x3 convolutions with padding 1, ReLU, 2x2 max pools), flattened in the
   TensorFlow order (height, width, channels), then fully connected 12288 -> 4096
   -> 4096 -> 128 with ReLU after the two hidden layers.
5. Optional postprocessing (``postprocess``), as the released AudioSet embeddings:
   PCA with whitening ``(x - means) @ eigvecs.T``, clipping to [-2, 2] and 8-bit
   quantisation to the integers 0..255 (``floor((x + 2) * 255 / 4)``, the
   reference's ``astype(uint8)``).
6. Each example's row is placed at the example's centre time (start + 0.4875 s) and
   rows are averaged per output step.

Deliberate choices, and why:

- The 128-d embedding is **pre-activation** by default (``embedding_relu=False``),
  as in the TensorFlow reference (``activation_fn=None`` on ``fc2``) and in the
  released AudioSet embeddings. The torch port applies a ReLU there (its issue #24);
  ``embedding_relu=True`` reproduces the port's raw output.
- Quantisation truncates like the reference; the torch port rounds.

Weights
-------
No weights are bundled and none are downloaded. The state dict of the torch port
(``vggish-10086976.pth``, 288 MB) is looked up in this order:

1. the ``weights=PATH`` parameter;
2. the environment variable ``VMTOOL_VGGISH_WEIGHTS``;
3. ``$VMTOOL_HOME/weights/vggish.pth`` (``VMTOOL_HOME`` defaults to
   ``~/.cache/vmtool``).

The PCA parameters (the port's ``vggish_pca_params-970ea276.pth``, or Google's
``vggish_pca_params.npz``; keys ``pca_eigen_vectors`` [128 x 128] and
``pca_means`` [128] or [128 x 1]) likewise: ``pca=PATH``, ``VMTOOL_VGGISH_PCA``,
``$VMTOOL_HOME/weights/vggish_pca_params.pth``. Postprocessing is on by default
when that file exists.

Files are read with ``torch.load(..., weights_only=True)`` (numpy arrays inside are
allowed, nothing else is unpickled); a checkpoint of the form
``{"state_dict": ...}`` is also accepted, and ``pproc.*`` entries (the port's
postprocessor saved with the model) are ignored. A file that cannot be read, or
whose keys or shapes are not VGGish's, raises
:class:`~vmtool.errors.ExtractorUnavailable` naming the file and the first
offending key. The extractor's configuration records the SHA-256 of the weights
(and PCA) file, not its path.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from vmtool.errors import ExtractorUnavailable, ParameterError
from vmtool.features.base import Accumulator, AudioExtractor, ExtractorOutput, StepPooler

__all__ = [
    "VGGishExtractor",
    "VGGishAccumulator",
    "weights_path",
    "pca_path",
    "load_model",
    "load_pca_params",
    "build_network",
    "expected_state_shapes",
    "mel_matrix",
    "log_mel_spectrogram",
    "waveform_to_examples",
    "postprocess_embeddings",
    "file_sha256",
    "clear_caches",
    "SR",
    "EMBEDDING_DIM",
    "EXAMPLE_FRAMES",
    "EXAMPLE_SAMPLES",
]

#: sample rate of the input (Hz)
SR = 16000
#: STFT window (25 ms) and hop (10 ms) in samples
WIN = 400
HOP = 160
#: FFT size: the next power of two above the window
N_FFT = 512
N_MELS = 64
FMIN = 125.0
FMAX = 7500.0
LOG_OFFSET = 0.01
#: frames per example (0.96 s of frame hops)
EXAMPLE_FRAMES = 96
#: samples spanned by one example
EXAMPLE_SAMPLES = (EXAMPLE_FRAMES - 1) * HOP + WIN
#: width of the embedding
EMBEDDING_DIM = 128
QUANTIZE_MIN = -2.0
QUANTIZE_MAX = 2.0

ENV_WEIGHTS = "VMTOOL_VGGISH_WEIGHTS"
ENV_PCA = "VMTOOL_VGGISH_PCA"
ENV_HOME = "VMTOOL_HOME"
DEFAULT_WEIGHTS_NAME = "vggish.pth"
DEFAULT_PCA_NAME = "vggish_pca_params.pth"

#: STFT frames computed per chunk (bounds memory when one huge block is pushed)
_FRAME_CHUNK = 4096

# (torch name, out channels) of the convolutions; None marks a max pool
_CONV_PLAN: list[int | None] = [64, None, 128, None, 256, 256, None, 512, 512, None]
_FC_PLAN = [(512 * 6 * 4, 4096), (4096, 4096), (4096, EMBEDDING_DIM)]


# ---------------------------------------------------------------------------------------
# file lookup
# ---------------------------------------------------------------------------------------


def _home() -> Path:
    home = os.environ.get(ENV_HOME) or "~/.cache/vmtool"
    return Path(home).expanduser()


def _lookup(explicit: str | os.PathLike | None, env: str, default_name: str) -> tuple[Path, str]:
    if explicit is not None and os.fspath(explicit) != "":
        return Path(explicit).expanduser(), "the weights parameter" if env == ENV_WEIGHTS else "the pca parameter"
    value = os.environ.get(env)
    if value:
        return Path(value).expanduser(), f"${env}"
    source = f"${ENV_HOME}/weights" if os.environ.get(ENV_HOME) else "the default location"
    return _home() / "weights" / default_name, source


def weights_path(weights: str | os.PathLike | None = None) -> Path:
    """Where the VGGish state dict is looked for (it may not exist).

    ``weights`` if given, else ``$VMTOOL_VGGISH_WEIGHTS``, else
    ``$VMTOOL_HOME/weights/vggish.pth`` (``VMTOOL_HOME`` defaults to ``~/.cache/vmtool``).
    """
    return _lookup(weights, ENV_WEIGHTS, DEFAULT_WEIGHTS_NAME)[0]


def pca_path(pca: str | os.PathLike | None = None) -> Path:
    """Where the PCA parameters are looked for (it may not exist).

    ``pca`` if given, else ``$VMTOOL_VGGISH_PCA``, else
    ``$VMTOOL_HOME/weights/vggish_pca_params.pth``.
    """
    return _lookup(pca, ENV_PCA, DEFAULT_PCA_NAME)[0]


def _missing_weights_reason(weights: str | os.PathLike | None = None) -> str:
    path, source = _lookup(weights, ENV_WEIGHTS, DEFAULT_WEIGHTS_NAME)
    return (f"weights not found: looked in {path} ({source}); put the torchvggish state dict "
            f"(vggish-10086976.pth) there or set {ENV_WEIGHTS}")


def _file_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


_LOCK = threading.Lock()
_SHA_CACHE: dict[tuple[str, int, int], str] = {}
_MODEL_CACHE: dict[tuple[tuple[str, int, int], str], Any] = {}
_PCA_CACHE: dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray]] = {}


def clear_caches() -> None:
    """Forget the loaded models, PCA parameters and file hashes of this process."""
    with _LOCK:
        _SHA_CACHE.clear()
        _MODEL_CACHE.clear()
        _PCA_CACHE.clear()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file, cached per (path, size, mtime) in this process."""
    p = Path(path)
    try:
        key = _file_key(p)
    except OSError as exc:
        raise ExtractorUnavailable(f"cannot read the file: {exc.strerror or exc}", p) from None
    with _LOCK:
        if key in _SHA_CACHE:
            return _SHA_CACHE[key]
    h = hashlib.sha256()
    try:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise ExtractorUnavailable(f"cannot read the file: {exc.strerror or exc}", p) from None
    digest = h.hexdigest()
    with _LOCK:
        _SHA_CACHE[key] = digest
    return digest


# ---------------------------------------------------------------------------------------
# reading weights
# ---------------------------------------------------------------------------------------


def _numpy_safe_globals() -> list:
    """The numpy globals a pickled ndarray needs (numpy 1.x and 2.x module names)."""
    try:
        from numpy._core import multiarray as ma  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray as ma
    out: list = [
        (ma._reconstruct, "numpy.core.multiarray._reconstruct"),
        (ma._reconstruct, "numpy._core.multiarray._reconstruct"),
        (np.ndarray, "numpy.ndarray"),
        (np.dtype, "numpy.dtype"),
    ]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        for name in ("Float64DType", "Float32DType", "Float16DType"):
            cls = getattr(dtypes, name, None)
            if cls is not None:
                out.append((cls, f"numpy.dtypes.{name}"))
    return out


def _torch_load(path: Path, what: str) -> Any:
    import torch

    if not path.is_file():
        raise ExtractorUnavailable(f"{what} file not found", path)
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read is reported the same way
        msg = " ".join(str(exc).split()) or type(exc).__name__
        if len(msg) > 300:
            msg = msg[:300] + "..."
        raise ExtractorUnavailable(f"cannot read the {what} file with torch.load(weights_only=True): {msg}",
                                   path) from None


def _as_array(value: Any) -> np.ndarray | None:
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    return None


def expected_state_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the VGGish state dict (the torch port's names), in layer order."""
    shapes: dict[str, tuple[int, ...]] = {}
    idx, cin = 0, 1
    for v in _CONV_PLAN:
        if v is None:
            idx += 1  # max pool
            continue
        shapes[f"features.{idx}.weight"] = (v, cin, 3, 3)
        shapes[f"features.{idx}.bias"] = (v,)
        idx += 2  # conv + ReLU
        cin = v
    for k, (fin, fout) in enumerate(_FC_PLAN):
        shapes[f"embeddings.{2 * k}.weight"] = (fout, fin)
        shapes[f"embeddings.{2 * k}.bias"] = (fout,)
    return shapes


def _check_state_dict(obj: Any, path: Path) -> dict[str, Any]:
    """The state dict as float32 tensors, or ExtractorUnavailable naming the first bad key."""
    import torch

    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ExtractorUnavailable(f"not a VGGish state dict: the file holds a {type(obj).__name__}, not a dict", path)
    expected = expected_state_shapes()
    out: dict[str, Any] = {}
    for key, shape in expected.items():
        if key not in obj:
            raise ExtractorUnavailable(f"not a VGGish state dict: missing key {key!r}", path)
        value = obj[key]
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
        if not isinstance(value, torch.Tensor):
            raise ExtractorUnavailable(f"not a VGGish state dict: key {key!r} holds a {type(value).__name__}, "
                                       "not a tensor", path)
        if tuple(value.shape) != shape:
            raise ExtractorUnavailable(f"not a VGGish state dict: key {key!r} has shape {tuple(value.shape)}, "
                                       f"expected {shape}", path)
        if not value.is_floating_point():
            raise ExtractorUnavailable(f"not a VGGish state dict: key {key!r} has dtype {value.dtype}, "
                                       "expected floating point", path)
        out[key] = value.detach().to(torch.float32).contiguous()
    for key in obj:
        if key not in expected and not str(key).startswith("pproc."):
            raise ExtractorUnavailable(f"not a VGGish state dict: unexpected key {key!r}", path)
    return out


_NETWORK_CLASS: Any = None


def _network_class():
    global _NETWORK_CLASS
    if _NETWORK_CLASS is not None:
        return _NETWORK_CLASS
    import torch
    from torch import nn

    class VGGishNetwork(nn.Module):
        """VGGish up to the 128-d pre-activation embedding.

        Input ``[batch, 96, 64]`` (or ``[batch, 1, 96, 64]``) log-mel examples;
        output ``[batch, 128]``.
        """

        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            cin = 1
            for v in _CONV_PLAN:
                if v is None:
                    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                else:
                    layers += [nn.Conv2d(cin, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                    cin = v
            self.features = nn.Sequential(*layers)
            (f1i, f1o), (f2i, f2o), (f3i, f3o) = _FC_PLAN
            # indices 0, 2, 4 as in the torch port; the port's final ReLU (index 5) is
            # applied, when asked for, by the caller
            self.embeddings = nn.Sequential(
                nn.Linear(f1i, f1o), nn.ReLU(inplace=True), nn.Linear(f2i, f2o), nn.ReLU(inplace=True),
                nn.Linear(f3i, f3o),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.dim() == 3:
                x = x.unsqueeze(1)
            x = self.features(x)  # [batch, 512, 6, 4]
            x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # TensorFlow's NHWC flattening
            return self.embeddings(x)

    _NETWORK_CLASS = VGGishNetwork
    return VGGishNetwork


def build_network(device: Any = None):
    """A VGGish network with torch's default (random) initialisation, in eval mode.

    ``device="meta"`` builds it without allocating (or initialising) any weight.
    """
    import torch

    with torch.device(device or "cpu"):
        return _network_class()().eval()


def load_model(weights: str | os.PathLike | None = None, device: str = "cpu"):
    """The VGGish network with the weights found by :func:`weights_path`, on *device*.

    One model per (file, device) is kept for the life of the process.

    Raises
    ------
    ExtractorUnavailable
        The file is absent, unreadable, or not a VGGish state dict (the message
        names the file and the first offending key).
    """
    path = weights_path(weights)
    if not path.is_file():
        raise ExtractorUnavailable(_missing_weights_reason(weights))
    key = (_file_key(path), str(device))
    with _LOCK:
        model = _MODEL_CACHE.get(key)
    if model is not None:
        return model
    state = _check_state_dict(_torch_load(path, "VGGish weights"), path)
    model = build_network("meta")  # no allocation nor random init: the weights come next
    model.load_state_dict(state, strict=True, assign=True)
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    with _LOCK:
        model = _MODEL_CACHE.setdefault(key, model)
    return model


def load_pca_params(pca: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The PCA eigenvectors ``[128, 128]`` and means ``[128]`` (float64).

    Reads a torch file (the port's ``vggish_pca_params-970ea276.pth``) or an ``.npz``
    (Google's ``vggish_pca_params.npz``).
    """
    path = pca_path(pca)
    if not path.is_file():
        raise ExtractorUnavailable(f"PCA parameters not found: looked in {path}; put the torchvggish "
                                   f"vggish_pca_params file there or set {ENV_PCA}")
    key = _file_key(path)
    with _LOCK:
        if key in _PCA_CACHE:
            return _PCA_CACHE[key]
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                obj: Any = {k: z[k] for k in z.files}
        except Exception as exc:  # noqa: BLE001
            raise ExtractorUnavailable(f"cannot read the PCA parameters file: {' '.join(str(exc).split())}",
                                       path) from None
    else:
        obj = _torch_load(path, "PCA parameters")
    if not isinstance(obj, dict):
        raise ExtractorUnavailable(f"not VGGish PCA parameters: the file holds a {type(obj).__name__}, not a dict",
                                   path)
    arrays = {}
    for name, shapes in (("pca_eigen_vectors", [(EMBEDDING_DIM, EMBEDDING_DIM)]),
                         ("pca_means", [(EMBEDDING_DIM,), (EMBEDDING_DIM, 1)])):
        if name not in obj:
            raise ExtractorUnavailable(f"not VGGish PCA parameters: missing key {name!r}", path)
        arr = _as_array(obj[name])
        if arr is None or tuple(arr.shape) not in shapes:
            got = "a " + type(obj[name]).__name__ if arr is None else f"shape {tuple(arr.shape)}"
            raise ExtractorUnavailable(f"not VGGish PCA parameters: key {name!r} has {got}, expected "
                                       + " or ".join(str(s) for s in shapes), path)
        arrays[name] = np.asarray(arr, dtype=np.float64)
    out = (arrays["pca_eigen_vectors"], arrays["pca_means"].reshape(-1))
    with _LOCK:
        _PCA_CACHE[key] = out
    return out


# ---------------------------------------------------------------------------------------
# input and output processing
# ---------------------------------------------------------------------------------------

_MEL: np.ndarray | None = None
_WINDOW: np.ndarray | None = None


def _hertz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_matrix() -> np.ndarray:
    """The reference's mel weights, ``np.ndarray [shape=(257, 64)]`` (spectrum bins x bands)."""
    global _MEL
    if _MEL is None:
        n_bins = N_FFT // 2 + 1
        bins_mel = _hertz_to_mel(np.linspace(0.0, SR / 2.0, n_bins))
        edges = np.linspace(_hertz_to_mel(FMIN), _hertz_to_mel(FMAX), N_MELS + 2)
        lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
        lo = (bins_mel[:, None] - lower[None, :]) / (center - lower)[None, :]
        hi = (upper[None, :] - bins_mel[:, None]) / (upper - center)[None, :]
        m = np.maximum(0.0, np.minimum(lo, hi))
        m[0, :] = 0.0  # HTK excludes the DC bin
        _MEL = m
    return _MEL


def _periodic_hann() -> np.ndarray:
    global _WINDOW
    if _WINDOW is None:
        _WINDOW = 0.5 - 0.5 * np.cos(2.0 * np.pi / WIN * np.arange(WIN))
    return _WINDOW


def log_mel_spectrogram(y: np.ndarray) -> np.ndarray:
    """VGGish's log-mel frames of a 16 kHz signal.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)]
        Samples at 16 kHz, nominally in [-1, 1].

    Returns
    -------
    np.ndarray [shape=(n_frames, 64), dtype=float32]
        ``log(mel + 0.01)`` of frame ``j`` = samples ``[160 j, 160 j + 400)``;
        ``n_frames = 1 + (n_samples - 400) // 160`` (0 when shorter than 400 samples).
    """
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if y.size < WIN:
        return np.zeros((0, N_MELS), dtype=np.float32)
    from numpy.lib.stride_tricks import sliding_window_view

    frames = sliding_window_view(y, WIN)[::HOP]
    spec = np.abs(np.fft.rfft(frames * _periodic_hann(), N_FFT, axis=1))
    return np.log(spec @ mel_matrix() + LOG_OFFSET).astype(np.float32)


def waveform_to_examples(y: np.ndarray, hop_frames: int = EXAMPLE_FRAMES) -> np.ndarray:
    """VGGish input examples of a 16 kHz signal (the reference's ``waveform_to_examples``).

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)]
    hop_frames : int
        Frames between example starts (96 in the reference: no overlap).

    Returns
    -------
    np.ndarray [shape=(n_examples, 96, 64), dtype=float32]
        Frames that do not fill a last example are dropped (no padding).
    """
    mel = log_mel_spectrogram(y)
    if mel.shape[0] < EXAMPLE_FRAMES:
        return np.zeros((0, EXAMPLE_FRAMES, N_MELS), dtype=np.float32)
    n = 1 + (mel.shape[0] - EXAMPLE_FRAMES) // hop_frames
    return np.stack([mel[k * hop_frames : k * hop_frames + EXAMPLE_FRAMES] for k in range(n)])


def postprocess_embeddings(emb: np.ndarray, eigen_vectors: np.ndarray, means: np.ndarray) -> np.ndarray:
    """PCA (with whitening), clipping to [-2, 2] and 8-bit quantisation, as the reference.

    Parameters
    ----------
    emb : np.ndarray [shape=(n, 128)]
        Raw embeddings.
    eigen_vectors : np.ndarray [shape=(128, 128)]
    means : np.ndarray [shape=(128,)]

    Returns
    -------
    np.ndarray [shape=(n, 128), dtype=float32]
        Integers 0..255 (the reference's uint8 values) as floats.
    """
    pca = (np.asarray(emb, dtype=np.float64) - np.asarray(means, dtype=np.float64).reshape(1, -1)) @ eigen_vectors.T
    clipped = np.clip(pca, QUANTIZE_MIN, QUANTIZE_MAX)
    q = np.floor((clipped - QUANTIZE_MIN) * (255.0 / (QUANTIZE_MAX - QUANTIZE_MIN)))
    return q.astype(np.float32)


# ---------------------------------------------------------------------------------------
# streaming
# ---------------------------------------------------------------------------------------


class VGGishAccumulator(Accumulator):
    """Streams one item through the log-mel frontend and the network.

    Keeps only the samples of STFT frames not yet computed and the log-mel frames of
    examples not yet taken. Examples go through the network in batches of exactly
    ``batch_size`` (the remainder at :meth:`finish`), so the result does not depend on
    how the audio is split into blocks.
    """

    def __init__(self, model: Any, device: str, rate: float, n_steps: int, *, hop_frames: int, batch_size: int,
                 embedding_relu: bool, pca: tuple[np.ndarray, np.ndarray] | None):
        self.model = model
        self.device = device
        self.hop_frames = int(hop_frames)
        self.batch_size = int(batch_size)
        self.embedding_relu = bool(embedding_relu)
        self.pca = pca
        self._pooler = StepPooler(rate, n_steps, EMBEDDING_DIM)
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0  # global index of _buf[0]
        self._n_samples = 0
        self._next_frame = 0  # first STFT frame not yet computed
        self._mel = np.zeros((0, N_MELS), dtype=np.float32)
        self._mel_start = 0  # global frame index of _mel[0]
        self._next_example = 0
        self._pending: list[np.ndarray] = []
        self._pending_times: list[float] = []
        self._finished = False

    # -- input ---------------------------------------------------------------------------
    def push(self, block: np.ndarray) -> None:
        if self._finished:
            raise ParameterError("push() after finish()")
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        if block.size == 0:
            return
        self._n_samples += block.size
        self._feed(block)

    def _feed(self, block: np.ndarray) -> None:
        self._buf = np.concatenate([self._buf, block]) if self._buf.size else block.copy()
        end = self._buf_start + self._buf.size
        if end < WIN:
            return
        last = (end - WIN) // HOP  # last frame computable now
        while self._next_frame <= last:
            a = self._next_frame
            b = min(last + 1, a + _FRAME_CHUNK)
            s0 = a * HOP - self._buf_start
            s1 = (b - 1) * HOP + WIN - self._buf_start
            mel = log_mel_spectrogram(self._buf[s0:s1])
            # frames before the next example's start (a hop longer than an example) are not kept
            mel = mel[max(0, self._mel_start + self._mel.shape[0] - a) :]
            self._mel = np.concatenate([self._mel, mel]) if self._mel.size else mel
            self._next_frame = b
            self._take_examples()
        cut = self._next_frame * HOP - self._buf_start
        if cut > 0:
            self._buf = self._buf[cut:]
            self._buf_start += cut

    def _take_examples(self) -> None:
        have_until = self._mel_start + self._mel.shape[0]
        while True:
            f0 = self._next_example * self.hop_frames
            if f0 + EXAMPLE_FRAMES > have_until:
                break
            i0 = f0 - self._mel_start
            self._pending.append(self._mel[i0 : i0 + EXAMPLE_FRAMES])
            self._pending_times.append((f0 * HOP + EXAMPLE_SAMPLES / 2.0) / SR)
            self._next_example += 1
            if len(self._pending) >= self.batch_size:
                self._flush()
        keep = self._next_example * self.hop_frames - self._mel_start
        if keep > 0:
            self._mel = self._mel[keep:].copy() if keep < self._mel.shape[0] else self._mel[:0]
            self._mel_start += keep

    def _flush(self) -> None:
        if not self._pending:
            return
        import torch

        batch = np.stack(self._pending).astype(np.float32)
        times = np.asarray(self._pending_times)
        self._pending, self._pending_times = [], []
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            emb = self.model(x)
            if self.embedding_relu:
                emb = torch.relu(emb)
            out = emb.float().cpu().numpy()
        if self.pca is not None:
            out = postprocess_embeddings(out, *self.pca)
        self._pooler.add(times, out)

    # -- output --------------------------------------------------------------------------
    def finish(self) -> ExtractorOutput:
        if not self._finished:
            self._finished = True
            if self._next_example == 0 and not self._pending and self._n_samples < EXAMPLE_SAMPLES:
                # shorter than one example: zero-pad to one example
                self._feed(np.zeros(EXAMPLE_SAMPLES - self._n_samples, dtype=np.float32))
            self._flush()
            self._buf = self._buf[:0]
            self._mel = self._mel[:0]
        return ExtractorOutput(frames=self._pooler.result())


# ---------------------------------------------------------------------------------------
# extractor
# ---------------------------------------------------------------------------------------


class VGGishExtractor(AudioExtractor):
    """AudioSet VGGish embeddings (128 per step), see the module docstring.

    Building the extractor is cheap and needs no weights; the model is loaded by
    :meth:`begin` (once per weights file and device per process).

    Parameters
    ----------
    device : str
        Torch device, already resolved (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
    weights : str or path, optional
        The torchvggish state dict; default ``$VMTOOL_VGGISH_WEIGHTS``, else
        ``$VMTOOL_HOME/weights/vggish.pth``.
    pca : str or path, optional
        The PCA parameters; default ``$VMTOOL_VGGISH_PCA``, else
        ``$VMTOOL_HOME/weights/vggish_pca_params.pth``.
    postprocess : bool, optional
        PCA + 8-bit quantisation (values 0..255). Default: on when the PCA file exists.
    hop_seconds : float
        Time between example starts; a multiple of 0.01 s. 0.48 (default) gives 50 %
        overlap, 0.96 the reference's non-overlapping examples.
    embedding_relu : bool
        Apply the torch port's ReLU to the 128-d embedding (default False: the
        reference's pre-activation embedding).
    batch_size : int
        Examples per forward pass (memory only; results do not depend on it beyond
        floating-point rounding).
    """

    name = "vggish"
    sample_rate = SR
    version = "1"
    summary = "AudioSet VGGish embedding (128-d) of 0.96 s log-mel examples every 0.48 s (torchvggish weights)"

    def __init__(self, device: str = "cpu", *, weights: str | os.PathLike | None = None,
                 pca: str | os.PathLike | None = None, postprocess: bool | None = None, hop_seconds: float = 0.48,
                 embedding_relu: bool = False, batch_size: int = 64, **params: Any):
        super().__init__(device, **params)
        try:
            hop = float(hop_seconds)
        except (TypeError, ValueError):
            raise ParameterError(f"hop_seconds must be a number of seconds, got {hop_seconds!r}") from None
        frames = round(hop * SR / HOP) if math.isfinite(hop) else 0
        if not (math.isfinite(hop) and hop > 0 and frames >= 1 and abs(frames * HOP / SR - hop) < 1e-6):
            raise ParameterError(f"hop_seconds must be a positive multiple of 0.01 s, got {hop_seconds!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ParameterError(f"batch_size must be a positive integer, got {batch_size!r}")
        if postprocess is not None and not isinstance(postprocess, bool):
            raise ParameterError(f"postprocess must be true or false, got {postprocess!r}")
        self.hop_frames = int(frames)
        self.hop_seconds = self.hop_frames * HOP / SR
        self.batch_size = batch_size
        self.embedding_relu = bool(embedding_relu)
        self.weights_file = weights_path(weights)
        self._missing_reason = _missing_weights_reason(weights)
        self.pca_file = pca_path(pca)
        if postprocess is None:
            postprocess = self.pca_file.is_file()
        elif postprocess and not self.pca_file.is_file():
            raise ExtractorUnavailable(f"postprocess needs the PCA parameters: not found in {self.pca_file}; put "
                                       f"the torchvggish vggish_pca_params file there or set {ENV_PCA}")
        self.postprocess = bool(postprocess)

    @property
    def columns(self) -> list[str]:
        return [f"vggish_{i:03d}" for i in range(EMBEDDING_DIM)]

    @classmethod
    def default_dim(cls) -> int:
        return EMBEDDING_DIM

    @classmethod
    def availability(cls, weights: str | os.PathLike | None = None) -> tuple[bool, str]:
        """(True, "") when a weights file exists where :func:`weights_path` looks."""
        if weights_path(weights).is_file():
            return True, ""
        return False, _missing_weights_reason(weights)

    def params(self) -> dict[str, Any]:
        self._check_weights()
        out: dict[str, Any] = {
            "sample_rate": SR,
            "window_samples": WIN,
            "hop_samples": HOP,
            "n_fft": N_FFT,
            "n_mels": N_MELS,
            "fmin": FMIN,
            "fmax": FMAX,
            "log_offset": LOG_OFFSET,
            "example_frames": EXAMPLE_FRAMES,
            "hop_seconds": self.hop_seconds,
            "embedding_relu": self.embedding_relu,
            "postprocess": self.postprocess,
            "weights_sha256": file_sha256(self.weights_file),
            "pooling": "mean",
        }
        if self.postprocess:
            out["pca_sha256"] = file_sha256(self.pca_file)
        return out

    def _check_weights(self) -> None:
        if not self.weights_file.is_file():
            raise ExtractorUnavailable(f"extractor 'vggish' cannot run: {self._missing_reason}")

    def begin(self, info, rate: float, n_steps: int) -> VGGishAccumulator:
        self._check_weights()
        model = load_model(self.weights_file, self.device)
        pca = load_pca_params(self.pca_file) if self.postprocess else None
        return VGGishAccumulator(model, self.device, rate, n_steps, hop_frames=self.hop_frames,
                                 batch_size=self.batch_size, embedding_relu=self.embedding_relu, pca=pca)
