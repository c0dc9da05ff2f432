"""Colour, brightness, motion and edge descriptors of video frames (no learned weights).

Every decoded frame, scaled to :attr:`ColorExtractor.frame_size`, gives one row of
descriptors; rows are averaged into output steps by the frames' times
(:class:`vmtool.features.base.StepPooler`, the streaming form of
:func:`~vmtool.features.base.pool_by_time`). ``docs/features-color.md`` defines every
column; in short, with the default parameters (26 columns):

- ``hue_00`` .. ``hue_11``: fraction of the frame's pixels that are chromatic (HSV
  saturation and value above 0.1) and whose hue falls in the bin; bins are centred on
  0, 30, ..., 330 degrees (``hue_00`` red, ``hue_04`` green, ``hue_08`` blue), so the
  hue part sums to the fraction of chromatic pixels;
- ``sat_0`` .. ``sat_3``, ``val_0`` .. ``val_3``: HSV saturation and value histograms
  over all pixels (each sums to 1);
- ``brightness_mean``, ``brightness_std``: mean and spatial standard deviation of the
  Rec. 601 luma ``Y = 0.299 R + 0.587 G + 0.114 B`` in [0, 1];
- ``saturation_mean``: mean HSV saturation in [0, 1];
- ``colorfulness``: Hasler & Suesstrunk (2003) on the [0, 1] scale (the paper's 0-255
  value divided by 255);
- ``motion_energy``: mean absolute luma difference with the previous decoded frame, in
  [0, 1], 0 for the first frame (so it depends on the frame rate);
- ``edge_density``: fraction of interior pixels whose Sobel luma gradient exceeds
  :data:`EDGE_THRESHOLD`.

Frames are processed in batches of :data:`BATCH_FRAMES` with vectorised numpy;
motion energy is carried across batch boundaries.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vmtool.errors import ParameterError
from vmtool.features.base import Accumulator, ExtractorOutput, StepPooler, VideoExtractor, n_steps_for

__all__ = [
    "ColorExtractor",
    "ColorAccumulator",
    "frame_descriptors",
    "descriptor_columns",
    "CHROMA_MIN_SATURATION",
    "CHROMA_MIN_VALUE",
    "EDGE_THRESHOLD",
    "BATCH_FRAMES",
]

#: a pixel counts in the hue histogram only when its HSV saturation and value both exceed these
CHROMA_MIN_SATURATION = 0.1
CHROMA_MIN_VALUE = 0.1
#: Sobel gradient magnitude threshold, in luma units (0-1) per pixel; the Sobel response
#: is divided by 8 so that a ramp of slope s gives s, and an ideal step edge of height h
#: gives h / 2 on the two pixels beside it: a step edge counts when h > 0.1 (~26/255)
EDGE_THRESHOLD = 0.05
#: frames processed together by the accumulator
BATCH_FRAMES = 64

_LUMA = (0.299, 0.587, 0.114)  # Rec. 601
_SCALAR_COLUMNS = [
    "brightness_mean",
    "brightness_std",
    "saturation_mean",
    "colorfulness",
    "motion_energy",
    "edge_density",
]


def descriptor_columns(hue_bins: int = 12, sat_bins: int = 4, val_bins: int = 4) -> list[str]:
    """Column names of :func:`frame_descriptors` for the given bin counts.

    Examples
    --------
    >>> descriptor_columns(2, 2, 2)[:6]
    ['hue_00', 'hue_01', 'sat_0', 'sat_1', 'val_0', 'val_1']
    >>> len(descriptor_columns())
    26
    """
    hw = max(2, len(str(hue_bins - 1)))
    sw = max(1, len(str(sat_bins - 1)))
    vw = max(1, len(str(val_bins - 1)))
    return (
        [f"hue_{i:0{hw}d}" for i in range(hue_bins)]
        + [f"sat_{i:0{sw}d}" for i in range(sat_bins)]
        + [f"val_{i:0{vw}d}" for i in range(val_bins)]
        + list(_SCALAR_COLUMNS)
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_frames(frames: Any) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ParameterError(f"expected RGB frames of shape (n, height, width, 3), got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ParameterError(f"expected uint8 RGB frames, got dtype {frames.dtype}")
    if frames.shape[1] < 1 or frames.shape[2] < 1:
        raise ParameterError(f"expected frames of at least 1x1 pixels, got shape {frames.shape}")
    return frames


def _planes_luma(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rec. 601 luma in [0, 1] from float32 colour planes on the 0-255 scale."""
    return r * np.float32(_LUMA[0] / 255) + g * np.float32(_LUMA[1] / 255) + b * np.float32(_LUMA[2] / 255)


def _luma(frames: np.ndarray) -> np.ndarray:
    """Rec. 601 luma in [0, 1], float32 [shape=(n, h, w)]."""
    return _planes_luma(*np.ascontiguousarray(np.moveaxis(frames, -1, 0)).astype(np.float32))


def frame_descriptors(
    frames: np.ndarray,
    *,
    hue_bins: int = 12,
    sat_bins: int = 4,
    val_bins: int = 4,
    previous: np.ndarray | None = None,
) -> np.ndarray:
    """Descriptors of a batch of consecutive RGB frames, one row per frame.

    Parameters
    ----------
    frames : np.ndarray [shape=(n, height, width, 3), dtype=uint8]
        Consecutive RGB frames.
    hue_bins, sat_bins, val_bins : int
        Histogram bin counts.
    previous : np.ndarray [shape=(height, width, 3), dtype=uint8], optional
        The frame decoded just before ``frames[0]``; without it the first row's
        motion energy is 0.

    Returns
    -------
    np.ndarray [shape=(n, hue_bins + sat_bins + val_bins + 6), dtype=float32]
        Columns as :func:`descriptor_columns`.

    Examples
    --------
    >>> red = np.zeros((1, 4, 4, 3), np.uint8); red[..., 0] = 255
    >>> row = frame_descriptors(red)
    >>> float(row[0, 0]), float(row[0, 12 + 3])  # all mass in hue_00 (red) and sat_3
    (1.0, 1.0)
    """
    frames = _check_frames(frames)
    n, h, w, _ = frames.shape
    npx = h * w
    out = np.empty((n, hue_bins + sat_bins + val_bins + len(_SCALAR_COLUMNS)), dtype=np.float32)
    if n == 0:
        return out

    # --- HSV (hexcone), on contiguous float32 colour planes (0-255) -------------------------
    r, g, b = np.ascontiguousarray(np.moveaxis(frames, -1, 0)).astype(np.float32)
    maxc = np.maximum(np.maximum(r, g), b)
    delta = maxc - np.minimum(np.minimum(r, g), b)
    v = maxc * np.float32(1 / 255)
    # values are integers on 0-255: where maxc or delta is 0 the numerator is 0 too
    s = delta / np.maximum(maxc, np.float32(1))

    safe = np.maximum(delta, np.float32(1))
    # hue in sixths of a turn, as colorsys.rgb_to_hsv
    hue = np.where(
        r == maxc,
        (g - b) / safe,
        np.where(g == maxc, np.float32(2) + (b - r) / safe, np.float32(4) + (r - g) / safe),
    )
    # bins centred on k * 360 / hue_bins degrees: bin 0 straddles pure red
    # (hue >= -1 sixth, so adding hue_bins keeps it positive and truncation is floor)
    hbin = (hue * np.float32(hue_bins / 6) + np.float32(hue_bins + 0.5)).astype(np.int32) % np.int32(hue_bins)
    chroma = (s > CHROMA_MIN_SATURATION) & (v > CHROMA_MIN_VALUE)
    frame_idx = np.arange(n, dtype=np.int32)[:, None, None]
    hist = np.bincount((frame_idx * hue_bins + hbin)[chroma], minlength=n * hue_bins)
    out[:, :hue_bins] = hist.reshape(n, hue_bins) / npx

    col = hue_bins
    for values, nb in ((s, sat_bins), (v, val_bins)):
        bins = np.minimum((values * np.float32(nb)).astype(np.int32), np.int32(nb - 1))
        hist = np.bincount((frame_idx * nb + bins).ravel(), minlength=n * nb)
        out[:, col : col + nb] = hist.reshape(n, nb) / npx
        col += nb

    # --- luma statistics --------------------------------------------------------------------
    y = _planes_luma(r, g, b)
    yflat = y.reshape(n, npx)
    out[:, col] = yflat.mean(axis=1)
    out[:, col + 1] = yflat.std(axis=1)
    out[:, col + 2] = s.reshape(n, npx).mean(axis=1)

    # --- colourfulness (Hasler & Suesstrunk 2003), on the [0, 1] scale -----------------------
    rg = ((r - g) * np.float32(1 / 255)).reshape(n, npx)
    yb = ((np.float32(0.5) * (r + g) - b) * np.float32(1 / 255)).reshape(n, npx)
    mrg, myb = rg.mean(axis=1), yb.mean(axis=1)
    srg, syb = rg.std(axis=1), yb.std(axis=1)
    out[:, col + 3] = np.sqrt(srg**2 + syb**2) + 0.3 * np.sqrt(mrg**2 + myb**2)

    # --- motion energy: mean |dY| with the previous decoded frame -----------------------------
    motion = np.zeros(n, dtype=np.float32)
    if n > 1:
        motion[1:] = np.abs(np.diff(yflat, axis=0)).mean(axis=1)
    if previous is not None:
        prev = _check_frames(np.asarray(previous)[None])
        if prev.shape[1:] != frames.shape[1:]:
            raise ParameterError(f"previous frame has shape {prev.shape[1:]}, frames have {frames.shape[1:]}")
        motion[0] = np.abs(yflat[0] - _luma(prev).reshape(npx)).mean()
    out[:, col + 4] = motion

    # --- edge density: Sobel on luma, interior pixels ----------------------------------------
    if h >= 3 and w >= 3:
        dx = y[:, :, 2:] - y[:, :, :-2]  # (n, h, w-2)
        gx = dx[:, :-2] + 2 * dx[:, 1:-1] + dx[:, 2:]  # (n, h-2, w-2)
        dy = y[:, 2:, :] - y[:, :-2, :]  # (n, h-2, w)
        gy = dy[:, :, :-2] + 2 * dy[:, :, 1:-1] + dy[:, :, 2:]
        # |(gx, gy)| / 8 > T  <=>  gx^2 + gy^2 > (8 T)^2
        strong = (gx * gx + gy * gy) > np.float32((8 * EDGE_THRESHOLD) ** 2)
        out[:, col + 5] = strong.reshape(n, -1).mean(axis=1)
    else:
        out[:, col + 5] = 0.0
    return out


class ColorAccumulator(Accumulator):
    """Per-item state of :class:`ColorExtractor`.

    ``push(t, frame)`` takes the frame's time in seconds and one RGB frame,
    ``np.ndarray [shape=(h, w, 3), dtype=uint8]``; every frame of an item must have the
    same shape. Frames are buffered and processed :data:`BATCH_FRAMES` at a time, and
    their rows summed per output step, so memory does not grow with the item's length.
    """

    def __init__(self, extractor: ColorExtractor, rate: float, n_steps: int):
        self._ex = extractor
        self._pooler = StepPooler(rate, n_steps, extractor.dim)
        self._batch: np.ndarray | None = None  # [shape=(BATCH_FRAMES, h, w, 3)], filled up to _fill
        self._fill = 0
        self._times: list[float] = []
        self._previous: np.ndarray | None = None

    def push(self, t: float, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ParameterError(
                f"expected one uint8 RGB frame of shape (height, width, 3), got shape {frame.shape} dtype {frame.dtype}"
            )
        if self._batch is None:
            self._batch = np.empty((BATCH_FRAMES, *frame.shape), dtype=np.uint8)
        elif frame.shape != self._batch.shape[1:]:
            raise ParameterError(f"frame shape changed within an item from {self._batch.shape[1:]} to {frame.shape}")
        self._batch[self._fill] = frame  # a copy: the caller may reuse its array
        self._fill += 1
        self._times.append(float(t))
        if self._fill == BATCH_FRAMES:
            self._flush()

    def _flush(self) -> None:
        if not self._fill:
            return
        batch = self._batch[: self._fill]
        ex = self._ex
        rows = frame_descriptors(
            batch, hue_bins=ex.hue_bins, sat_bins=ex.sat_bins, val_bins=ex.val_bins, previous=self._previous
        )
        self._pooler.add(np.asarray(self._times, dtype=np.float64), rows)
        self._previous = batch[-1].copy()
        self._times = []
        self._fill = 0

    def finish(self) -> ExtractorOutput:
        self._flush()
        return ExtractorOutput(frames=self._pooler.result())


class ColorExtractor(VideoExtractor):
    """Weight-free colour, brightness, motion and edge descriptors per output step.

    Parameters
    ----------
    frame_size : (int, int)
        ``(width, height)`` the frames are scaled to before analysis; at least 3x3.
    hue_bins : int
        Hue histogram bins, centred on ``k * 360 / hue_bins`` degrees.
    sat_bins, val_bins : int
        HSV saturation and value histogram bins, uniform on [0, 1].
    device : str
        Ignored (numpy on the CPU); accepted like every extractor's.

    Examples
    --------
    >>> ex = ColorExtractor()
    >>> ex.dim, ex.columns[0], ex.columns[-1]
    (26, 'hue_00', 'edge_density')
    >>> acc = ex.begin(None, rate=1.0, n_steps=1)
    >>> acc.push(0.0, np.full((36, 64, 3), 128, np.uint8))
    >>> acc.finish().frames.shape
    (1, 26)
    """

    name = "color"
    version = "1"
    summary = "HSV histograms, brightness, saturation, colourfulness, motion energy and edge density (no weights)"

    def __init__(
        self,
        device: str = "cpu",
        *,
        frame_size: tuple[int, int] | list[int] = (64, 36),
        hue_bins: int = 12,
        sat_bins: int = 4,
        val_bins: int = 4,
        **unknown: Any,
    ):
        super().__init__(device=device, **unknown)  # raises ParameterError on unknown keywords
        if (
            not isinstance(frame_size, (tuple, list))
            or len(frame_size) != 2
            or not all(_is_int(v) and v >= 3 for v in frame_size)
        ):
            raise ParameterError(f"frame_size must be (width, height), two integers of at least 3, got {frame_size!r}")
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        for key, value in (("hue_bins", hue_bins), ("sat_bins", sat_bins), ("val_bins", val_bins)):
            if not _is_int(value) or value < 1:
                raise ParameterError(f"{key} must be a positive integer, got {value!r}")
        self.hue_bins = int(hue_bins)
        self.sat_bins = int(sat_bins)
        self.val_bins = int(val_bins)
        self._columns = descriptor_columns(self.hue_bins, self.sat_bins, self.val_bins)

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def params(self) -> dict[str, Any]:
        return {
            "frame_size": list(self.frame_size),
            "hue_bins": self.hue_bins,
            "sat_bins": self.sat_bins,
            "val_bins": self.val_bins,
        }

    def begin(self, info, rate: float, n_steps: int | None = None) -> ColorAccumulator:
        """Start one item.

        Parameters
        ----------
        info : MediaInfo or None
            The item's probe result; used only when *n_steps* is None.
        rate : float
            Output steps per second.
        n_steps : int, optional
            Number of output rows; default ``n_steps_for(info.duration, rate)``.
        """
        if not (rate > 0):
            raise ParameterError(f"rate must be positive, got {rate!r}")
        if n_steps is None:
            if info is None:
                raise ParameterError("begin() needs n_steps or a MediaInfo with a duration")
            n_steps = n_steps_for(info.duration, rate)
        if n_steps < 1:
            raise ParameterError(f"n_steps must be at least 1, got {n_steps!r}")
        return ColorAccumulator(self, rate, n_steps)
