"""The rhythm fit of a track to a video: does its tempo and metre suit the video's cuts?

Prétet's thesis (chapter 6) finds that the cuts of music videos follow the music:
shots last about a beat, a bar or a four-bar pattern (the mode of the shot-duration
histogram, ``D_shot_max``, against ``D_beat`` and ``D_bar``) and cuts fall near beats
and downbeats more often than chance (the co-occurrence ``S(l)`` of
:mod:`vmtool.structure.scores`). ``vmtool analyze-structure`` measures that for a clip
and its own soundtrack. The rhythm fit asks the same of a video and *another* track,
so that tracks can be ranked for a video without any trained model
(``vmtool rank -m rhythm``):

- the **period fit** ``F``: how close the video's dominant shot duration ``D_shot`` is
  to one of the track's periods ``D_beat``, ``2 D_beat``, ``D_bar``, ``2 D_bar``,
  ``4 D_bar``: ``F = exp(-e**2 / (2 tau**2))`` with ``e = min_P |ln(D_shot / P)|``;
- the **co-occurrence** ``C``: the track's beats (under the video, from the track's
  start) swept over every offset of one beat period (:func:`scores.offset_sweep`);
  ``C = (max S - mean S) / (n_cuts / n_beats - mean S)``, clipped to [0, 1]: 1 when
  every cut lands on a beat at the best offset, 0 when the best offset does no better
  than the average one (the chance level of a random phase);
- the **distance** ``1 - (F + C) / 2``, in [0, 1], 0 for a perfect fit.

The definitions and the choices that are vmtool's own (the refined ``D_shot``, the
levels, ``tau``, the normalisation of ``C``) are in ``docs/methods-ranking.md``.

:func:`video_rhythm` builds a video's side from its shot likelihood; :func:`rhythm_fit`
scores one track, :func:`rhythm_distances` a catalog's; :func:`query_rhythm` gets a
query's shot likelihood (stored in a vmtool file, or TransNetV2 run on the media by
``vmtool segment``'s per-item function, as ``analyze-structure`` does).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from vmtool.errors import MediaError, ParameterError, VmtoolError
from vmtool.ranking.rhythm import TrackGrid
from vmtool.structure import scores

__all__ = ["BIN_WIDTH", "TAU", "LEVELS", "VideoRhythm", "RhythmFit", "dominant_shot", "video_rhythm",
           "rhythm_fit", "rhythm_distances", "query_rhythm"]

#: width of the shot-duration histogram's bins, seconds (analyze-structure's default)
BIN_WIDTH = 0.2
#: tolerance of the period fit, natural-log units: a shot 5 % off a period scores exp(-1/2)
TAU = 0.05
#: the periods a shot may last: name -> (beats, bars)
LEVELS: dict[str, tuple[int, int]] = {"beat": (1, 0), "2 beats": (2, 0), "bar": (0, 1), "2 bars": (0, 2),
                                      "4 bars": (0, 4)}


@dataclass(frozen=True)
class VideoRhythm:
    """A video's cutting rhythm.

    Attributes
    ----------
    f_shot : np.ndarray [shape=(n,)]
        Shot likelihood at :data:`scores.RATE` Hz.
    cuts : np.ndarray
        Shot cuts, seconds.
    duration : float
        Seconds.
    d_shot : float
        Dominant shot duration (:func:`dominant_shot`), NaN without a cut.
    """

    f_shot: np.ndarray
    cuts: np.ndarray
    duration: float
    d_shot: float


@dataclass(frozen=True)
class RhythmFit:
    """One track's fit to one video (see the module docstring).

    Attributes
    ----------
    distance : float
        ``1 - (period_fit + cooccurrence) / 2``; NaN when the track has fewer than two beats.
    period_fit, cooccurrence : float
        ``F`` and ``C``, each in [0, 1].
    level : str
        The key of :data:`LEVELS` whose period is closest to ``D_shot``.
    period : float
        That period, seconds.
    offset : float
        The best offset of the beats, seconds in ``[-D_beat / 2, D_beat / 2)``.
    d_beat, d_bar : float
    """

    distance: float
    period_fit: float
    cooccurrence: float
    level: str
    period: float
    offset: float
    d_beat: float
    d_bar: float


def dominant_shot(cuts: np.ndarray, duration: float, bin_width: float = BIN_WIDTH) -> float:
    """The video's dominant shot duration: the mean of the durations in the modal bin.

    The mode of the histogram (:func:`scores.histogram_mode`, the thesis' ``D_shot_max``)
    picks the bin; the mean of the durations within half a bin of its centre refines it
    (0.2-s bins are 5-10 % of a 2-4 s shot, coarser than the tempo differences between
    tracks). NaN without a cut.

    Examples
    --------
    >>> dominant_shot(np.array([2.08, 4.16, 6.0]), 7.0)  # shots of 2.08, 2.08, 1.84 and 1.0 s
    2.08
    """
    durations = scores.shot_durations(cuts, duration)
    if durations.size < 2:
        return math.nan
    mode = scores.histogram_mode(durations, bin_width)
    near = durations[np.abs(durations - mode) <= bin_width / 2 + 1e-9]
    return round(float(near.mean()), 9)


def video_rhythm(likelihood: np.ndarray, fps: float, duration: float, *, threshold: float = 0.5) -> VideoRhythm:
    """A video's side of the fit from TransNetV2's per-frame shot likelihood.

    ``f_shot`` is :func:`scores.resample_likelihood`; the cuts are
    :func:`vmtool.segmentation.shots.shots_from_likelihood` at *threshold* (what
    ``vmtool segment -m transnet`` stores).
    """
    from vmtool.segmentation.shots import shots_from_likelihood

    p = np.asarray(likelihood, dtype=np.float64).reshape(-1)
    duration = float(duration) if math.isfinite(duration) and duration > 0 else p.size / float(fps)
    cuts = shots_from_likelihood(p, fps, duration, threshold=threshold, min_duration=0.0).boundaries
    return VideoRhythm(scores.resample_likelihood(p, fps), np.asarray(cuts, dtype=np.float64), duration,
                       dominant_shot(cuts, duration))


def _video_from_cuts(cuts: np.ndarray, duration: float) -> VideoRhythm:
    """A video's side from its cut times alone (a stored ``transnet`` segmentation): one
    likelihood-1 sample per cut on the 25-Hz grid."""
    c = np.asarray(cuts, dtype=np.float64)
    f = np.zeros(int(round(duration * scores.RATE)) + 1)
    f[np.clip(np.rint(c * scores.RATE).astype(np.int64), 0, f.size - 1)] = 1.0
    return VideoRhythm(f, c, float(duration), dominant_shot(c, duration))


def rhythm_fit(video: VideoRhythm, beats: np.ndarray, beats_per_bar: int, *, tau: float = TAU) -> RhythmFit:
    """The fit of a track (its *beats* from its start, seconds) to *video*.

    Raises
    ------
    ParameterError
        The video has no cut (no cutting rhythm to fit), or a bad *beats_per_bar*.
    """
    if video.cuts.size == 0 or not math.isfinite(video.d_shot):
        raise ParameterError("the video has no shot cut: no cutting rhythm to fit a track's tempo to")
    if beats_per_bar < 1:
        raise ParameterError(f"beats_per_bar must be >= 1, got {beats_per_bar!r}")
    b = np.sort(np.asarray(beats, dtype=np.float64).reshape(-1))
    nan = RhythmFit(math.nan, math.nan, math.nan, "", math.nan, math.nan, math.nan, math.nan)
    if b.size < 2:
        return nan
    d_beat = float(np.median(np.diff(b)))
    if not d_beat > 0:
        return nan
    d_bar = beats_per_bar * d_beat
    periods = {name: nb * d_beat + nbar * d_bar for name, (nb, nbar) in LEVELS.items()}
    errors = {name: abs(math.log(video.d_shot / p)) for name, p in periods.items()}
    level = min(errors, key=errors.get)
    f = math.exp(-errors[level] ** 2 / (2.0 * tau**2))
    under = b[(b >= 0.0) & (b <= video.duration)]
    c, offset = 0.0, 0.0
    if under.size:
        offsets, s = scores.offset_sweep(video.f_shot, under, d_beat)
        best, chance = float(s.max()), float(s.mean())
        ideal = video.cuts.size / under.size
        c = min(1.0, max(0.0, (best - chance) / (ideal - chance))) if ideal > chance else 0.0
        offset = float(offsets[int(np.argmax(s))])
    return RhythmFit(1.0 - (f + c) / 2.0, f, c, level, periods[level], offset, d_beat, d_bar)


def rhythm_distances(video: VideoRhythm, grids: Sequence[TrackGrid | None]) -> np.ndarray:
    """The rhythm distance of every track (NaN for a track without beats).

    Returns
    -------
    np.ndarray [shape=(len(grids),), dtype=float64]
    """
    out = np.full(len(grids), np.nan)
    for i, g in enumerate(grids):
        if g is not None:
            out[i] = rhythm_fit(video, g.beats, g.beats_per_bar).distance
    return out


def query_rhythm(spec: str | os.PathLike, *, threshold: float = 0.5, device: str = "cpu") -> VideoRhythm:
    """A video query's cutting rhythm.

    *spec* is ``FILE.h5#ITEM-ID`` (the item's stored shot likelihood, else its stored
    ``transnet`` shots, else its source media) or a media file; media are run through
    TransNetV2 by :func:`vmtool.segment.segment_item` (``vmtool segment -m transnet``).

    Raises
    ------
    VmtoolError
        No such file or item, no video stream, or undecodable media.
    """
    from vmtool.store import open_collection, parse_item_ref, resolve_source

    ref = parse_item_ref(spec)
    if ref is not None:
        path, item_id = ref
        with open_collection(path) as col:
            i = col.index(item_id)
            item = col.item(i)
            if "shot_likelihood" in col.names("curves"):
                g = col.curve("shot_likelihood")
                rows = np.asarray(g.rows(i), dtype=np.float64).reshape(-1)
                if rows.size and math.isfinite(g.rate(i)) and g.rate(i) > 0:
                    return video_rhythm(rows, g.rate(i), item.duration, threshold=threshold)
            if "transnet" in col.names("segmentations"):
                g = col.ragged("segmentations", "transnet")
                if g.present(i):
                    return _video_from_cuts(np.asarray(g.rows(i), dtype=np.float64).reshape(-1), item.duration)
        source = resolve_source(item.source, path)
    else:
        source = Path(spec)
        if not source.exists():
            raise VmtoolError("no such file (a query is a media file or file.h5#item-id)", source)
    return _media_rhythm(Path(source), threshold=threshold, device=device)


def _media_rhythm(path: Path, *, threshold: float, device: str) -> VideoRhythm:
    from vmtool import media
    from vmtool.batch import Failure
    from vmtool.segment import ItemTask, SegmentConfig, segment_item

    info = media.probe(path)
    if not info.has_video:
        raise MediaError("has no video stream: no shot cuts for the rhythm fit", path)
    task = ItemTask(str(path), path.stem, str(path), float(info.duration), info.has_audio, info.has_video)
    out = segment_item(task, SegmentConfig(methods=("transnet",), threshold=threshold), device)["transnet"]
    if isinstance(out, Failure):
        raise VmtoolError(out.message)
    return video_rhythm(out.curve, out.curve_rate, float(info.duration), threshold=threshold)
