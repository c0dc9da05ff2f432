"""From a features file to model inputs: windows, statistics, sampled frames, pairs.

A *window* is a time span of an item: the whole clip (``level="clip"``) or one segment
of a stored segmentation (``level="segment"``). Each window of an item with both
modalities is one training pair. A window becomes a model input by

- ``aggregation="stats"``: statistics of the frame rows it covers (mean, var, max for
  clips as VM-Net; the mean for segments as Seg-VM-Net), a vector;
- ``aggregation="attention"|"autopool"``: T frame rows of it (default 100), a
  ``(T, d)`` matrix pooled by the model. ``sampling="random"`` (Prétet's thesis,
  section 5.2.3) draws the T frames at random again at every epoch and, at inference,
  once with a fixed seed; ``sampling="even"`` (vmtool) takes T frames evenly spaced.

Several features of one modality are concatenated per frame. Features imported at
clip level (one vector per item, attribute ``level="clip"``) are used as they are.

Prepared inputs are written to memory-mapped files, item after item, so a features
file larger than RAM trains with bounded memory; batches read from the maps.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vmtool.errors import ParameterError
from vmtool.segmentation.base import segment_edges
from vmtool.segmentation.aggregate import segment_features

__all__ = ["DataConfig", "InputBuilder", "Prepared", "prepare", "split_items", "MODALITIES"]

MODALITIES = ("audio", "video")


@dataclass
class DataConfig:
    """How items become model inputs.

    Attributes
    ----------
    audio_features, video_features : list of str
        Names under ``/features`` (empty: every feature of that modality in the file).
    level : {"clip", "segment"}
    segments : str or None
        Segmentation name for ``level="segment"`` (e.g. ``olda``).
    aggregation : {"stats", "attention", "autopool"}
    stats : list of str
        Statistics for ``stats`` (empty: mean,var,max at clip level, mean at segment level).
    frames : int
        T, frames sampled per window for learned aggregations.
    sampling : {"random", "even"}
        How the T frames are chosen: at random each epoch (the thesis) or evenly spaced.
    """

    audio_features: list[str] = field(default_factory=list)
    video_features: list[str] = field(default_factory=list)
    level: str = "clip"
    segments: str | None = None
    aggregation: str = "stats"
    stats: list[str] = field(default_factory=list)
    frames: int = 100
    sampling: str = "random"

    def resolved_stats(self) -> list[str]:
        if self.stats:
            return list(self.stats)
        return ["mean", "var", "max"] if self.level == "clip" else ["mean"]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stats"] = self.resolved_stats()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataConfig:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        known.setdefault("sampling", "even")  # files from before the setting sampled evenly
        return cls(**known)

    @property
    def random_frames(self) -> bool:
        """Whether inputs are T frames drawn at random (learned aggregation, ``random``)."""
        return self.aggregation != "stats" and self.sampling == "random"

    def validate(self) -> None:
        if self.level not in ("clip", "segment"):
            raise ParameterError(f"--level must be clip or segment, got {self.level!r}")
        if self.aggregation not in ("stats", "attention", "autopool"):
            raise ParameterError(f"--aggregation must be stats, attention or autopool, got {self.aggregation!r}")
        if self.level == "segment" and not self.segments:
            raise ParameterError("--level segment needs --segments METHOD (a segmentation stored in the file)")
        if self.sampling not in ("random", "even"):
            raise ParameterError(f"--frame-sampling must be random or even, got {self.sampling!r}")
        if not 1 <= int(self.frames) <= 10000:
            raise ParameterError(f"--frames must be between 1 and 10000, got {self.frames!r}")
        bad = [s for s in self.stats if s not in ("mean", "var", "max")]
        if bad:
            raise ParameterError(f"unknown statistic(s) {bad}; use mean, var, max")


class InputBuilder:
    """Turns an item of an open collection into model inputs, per modality.

    Also used at inference (``vmtool embed``, ``vmtool rank``) so that a query goes
    through exactly the same steps as the training data.
    """

    def __init__(self, collection, config: DataConfig, *, optional_modality: bool = False):
        """With *optional_modality* (embedding), a modality none of whose wanted features
        is in the file is left out (e.g. a music catalog extracted with ``-v none``)."""
        config.validate()
        self.c = collection
        self.cfg = config
        names = collection.names("features")
        self.features: dict[str, list[str]] = {}
        self.clip_level: dict[str, bool] = {}
        self.frame_dim: dict[str, int] = {}
        for mod in MODALITIES:
            wanted = list(getattr(config, f"{mod}_features"))
            have = [n for n in names if collection.feature(n).modality == mod]
            if not wanted:
                wanted = sorted(have)
            if optional_modality and wanted and not any(n in names for n in wanted):
                self.features[mod], self.clip_level[mod], self.frame_dim[mod] = [], False, 0
                continue
            for n in wanted:
                if n not in names:
                    raise ParameterError(f"no feature {n!r} in the file (it has: {', '.join(names) or 'none'})",
                                         collection.path)
                if collection.feature(n).modality != mod:
                    raise ParameterError(f"feature {n!r} is {collection.feature(n).modality}, not {mod}",
                                         collection.path)
            if not wanted:
                raise ParameterError(f"the file has no {mod} features (run vmtool extract with {mod} features, "
                                     f"or vmtool import)", collection.path)
            setattr(config, f"{mod}_features", list(wanted))
            self.features[mod] = wanted
            levels = {self._is_clip_level(n) for n in wanted}
            if len(levels) > 1:
                raise ParameterError(f"{mod} features mix clip-level and frame-level arrays: {', '.join(wanted)}",
                                     collection.path)
            self.clip_level[mod] = levels.pop()
            if self.clip_level[mod] and config.level == "segment":
                raise ParameterError(f"{mod} features are clip-level vectors; segment level needs frame-level "
                                     f"features", collection.path)
            if self.clip_level[mod] and config.aggregation != "stats":
                raise ParameterError(f"{mod} features are clip-level vectors; --aggregation "
                                     f"{config.aggregation} needs frame-level features", collection.path)
            self.frame_dim[mod] = int(sum(collection.feature(n).dim or 1 for n in wanted))
        if config.level == "segment":
            segs = collection.names("segmentations")
            if config.segments not in segs:
                raise ParameterError(f"no segmentation {config.segments!r} in the file (it has: "
                                     f"{', '.join(segs) or 'none'}); run vmtool segment first", collection.path)
            self.seg = collection.ragged("segmentations", config.segments)
        else:
            self.seg = None
        self.stats = config.resolved_stats()

    def _is_clip_level(self, name: str) -> bool:
        f = self.c.feature(name)
        if str(f.attrs.get("level", "")) == "clip":
            return True
        return False

    def input_dim(self, modality: str) -> int:
        d = self.frame_dim[modality]
        if self.cfg.aggregation == "stats" and not self.clip_level[modality]:
            return d * len(self.stats)
        return d

    def input_shape(self, modality: str) -> tuple[int, ...]:
        if self.cfg.aggregation == "stats":
            return (self.input_dim(modality),)
        return (int(self.cfg.frames), self.frame_dim[modality])

    def has(self, index: int, modality: str) -> bool:
        return bool(self.features[modality]) and all(self.c.feature(n).offsets[index + 1] > self.c.feature(n).offsets[index]
                   for n in self.features[modality])

    def duration(self, index: int) -> float:
        d = float(self.c.column("duration")[index])
        if math.isfinite(d) and d > 0:
            return d
        # imported frame-level features may have no duration: rows / rate
        for mod in MODALITIES:
            for n in self.features[mod]:
                f = self.c.feature(n)
                rows = int(f.offsets[index + 1] - f.offsets[index])
                if rows and math.isfinite(f.rate(index)) and f.rate(index) > 0:
                    return rows / f.rate(index)
        return 1.0

    def windows(self, index: int) -> np.ndarray | None:
        """``(k, 2)`` window spans in seconds, or None when the item has no segmentation."""
        dur = self.duration(index)
        if self.seg is None:
            return np.array([[0.0, dur]])
        if not self.seg.present(index):
            return None
        b = np.asarray(self.seg.rows(index), dtype=np.float64)
        b = b[(b > 0) & (b < dur)]
        return segment_edges(b, dur)

    def frames(self, index: int, modality: str) -> tuple[np.ndarray, float]:
        """The item's frame rows of *modality* (features concatenated) and their rate."""
        parts = []
        rate = math.nan
        for n in self.features[modality]:
            f = self.c.feature(n)
            rows = np.asarray(f.rows(index), dtype=np.float32)
            if rows.ndim == 1:
                rows = rows[:, None]
            r = f.rate(index)
            if parts and math.isfinite(rate) and math.isfinite(r) and abs(r - rate) > 1e-9:
                # put this feature on the first feature's time grid (nearest row)
                idx = np.minimum((np.arange(len(parts[0])) * r / rate).astype(np.int64), len(rows) - 1)
                rows = rows[idx]
            if not parts:
                rate = r
            parts.append(rows)
        n = min(len(p) for p in parts)
        return np.concatenate([p[:n] for p in parts], axis=1), rate

    def checked_frames(self, index: int, modality: str) -> tuple[np.ndarray, float]:
        """:meth:`frames`, refusing an item without rows or with non-finite values."""
        rows, rate = self.frames(index, modality)
        if rows.shape[0] == 0:
            raise ParameterError(f"item {self.c.ids[index]!r} has no {modality} features", self.c.path)
        if not np.all(np.isfinite(rows)):
            raise ParameterError(f"item {self.c.ids[index]!r} has non-finite {modality} features", self.c.path)
        return rows, rate

    def inputs(self, index: int, modality: str, windows: np.ndarray) -> np.ndarray:
        """Model inputs of one item for the given windows: ``(k, in_dim)`` or ``(k, T, d)``.

        With random frame sampling the draw is seeded (0): a query gives the same input
        every time, as the thesis repeats its sampling at inference.
        """
        rows, rate = self.checked_frames(index, modality)
        return window_inputs(rows, rate, windows, clip_level=self.clip_level[modality],
                             aggregation=self.cfg.aggregation, stats=self.stats, frames=int(self.cfg.frames),
                             duration=self.duration(index),
                             rng=np.random.default_rng(0) if self.cfg.random_frames else None)


def window_range(n: int, rate: float, start: float, end: float) -> tuple[int, int]:
    """Frame rows ``lo:hi`` covering ``[start, end)`` seconds (at least one row)."""
    lo = min(n - 1, max(0, int(math.floor(start * rate + 1e-9))))
    hi = max(lo + 1, min(n, int(math.ceil(end * rate - 1e-9))))
    return lo, hi


def draw_frames(lo: int, hi: int, frames: int, rng: np.random.Generator) -> np.ndarray:
    """T row indices drawn at random in ``lo:hi``, in time order (without replacement when
    the window has at least T rows)."""
    n = hi - lo
    idx = rng.choice(n, size=frames, replace=n < frames)
    return lo + np.sort(idx)


def window_inputs(rows: np.ndarray, rate: float, windows: np.ndarray, *, clip_level: bool, aggregation: str,
                  stats: list[str], frames: int, duration: float,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """Model inputs for time windows of one item's frame rows.

    Parameters
    ----------
    rows : np.ndarray [shape=(n, d)]
        Frame rows; row ``j`` covers ``[j / rate, (j + 1) / rate)`` seconds.
    windows : np.ndarray [shape=(k, 2)]
        Start and end of each window in seconds.

    rng : np.random.Generator, optional
        Learned aggregations: draw the frames at random with it; None: evenly spaced.

    Returns
    -------
    np.ndarray [shape=(k, d * len(stats))] or [shape=(k, frames, d)], float32
    """
    k = len(windows)
    if clip_level:
        return np.repeat(rows[:1], k, axis=0).astype(np.float32)
    if not (math.isfinite(rate) and rate > 0):
        raise ParameterError(f"frame-level features need a frame rate, got {rate!r}")
    if aggregation == "stats":
        edges = windows[:, 0][1:]
        if k == 1:
            return segment_features(rows, rate, np.zeros(0), float(windows[0, 1]), stats=stats)
        return segment_features(rows, rate, edges, float(windows[-1, 1]), stats=stats)
    n = rows.shape[0]
    out = np.empty((k, frames, rows.shape[1]), dtype=np.float32)
    for w, (s, e) in enumerate(windows):
        lo, hi = window_range(n, rate, s, e)
        if rng is not None:
            idx = draw_frames(lo, hi, frames, rng)
        else:
            idx = lo + np.minimum(((np.arange(frames) + 0.5) * (hi - lo) / frames).astype(np.int64), hi - lo - 1)
        out[w] = rows[idx]
    return out


def split_items(n_items: int, val_fraction: float, seed: int) -> np.ndarray:
    """Bool array, True for validation items: a seeded random *val_fraction* of the items."""
    if not 0 <= val_fraction < 1:
        raise ParameterError(f"--val-fraction must be in [0, 1), got {val_fraction!r}")
    rng = np.random.default_rng([int(seed), 7919])
    n_val = int(round(n_items * val_fraction))
    if val_fraction > 0:
        n_val = max(2, n_val) if n_items >= 4 else 0
    val = np.zeros(n_items, dtype=bool)
    val[rng.permutation(n_items)[:n_val]] = True
    return val


@dataclass
class Prepared:
    """Prepared pairs: memory-mapped inputs plus, per pair, its item index and window.

    With random frame sampling, ``audio``/``video`` hold every frame row of every pair
    (``(R, d)``), pair ``i`` owning rows ``frame_offsets[mod][i]:frame_offsets[mod][i+1]``;
    :meth:`sample` draws the T frames of a batch.
    """

    audio: np.ndarray
    video: np.ndarray
    item: np.ndarray  # (n,) int64, the collection item of each pair
    spans: np.ndarray  # (n, 2) float64 seconds
    skipped: dict[str, int]
    directory: Path
    frame_offsets: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.item)

    def frame_rows(self, modality: str, pairs: np.ndarray) -> np.ndarray:
        """Indices of every frame row of *pairs* (random sampling only)."""
        off = self.frame_offsets[modality]
        pairs = np.asarray(pairs, dtype=np.int64)
        lens = off[pairs + 1] - off[pairs]
        start = np.cumsum(lens) - lens
        return np.arange(int(lens.sum()), dtype=np.int64) + np.repeat(off[pairs] - start, lens)

    def sample(self, modality: str, pairs: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
        """``(len(pairs), T, d)`` float32: T frames of each pair drawn at random."""
        off = self.frame_offsets[modality]
        x = self.audio if modality == "audio" else self.video
        idx = np.stack([draw_frames(int(off[p]), int(off[p + 1]), frames, rng) for p in pairs])
        return np.asarray(x[idx.ravel()], dtype=np.float32).reshape(len(pairs), frames, -1)


def prepare(collection, builder: InputBuilder, items: np.ndarray, directory: str | os.PathLike | None = None,
            on_item: Callable[[int], None] | None = None) -> Prepared:
    """Write the training pairs of *items* to memory-mapped files in *directory*.

    Items without both modalities (or without the segmentation) are skipped and counted.
    """
    directory = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="vmtool-train-"))
    # count windows first (cheap: from offsets), so the maps have their final size
    plan: list[tuple[int, np.ndarray]] = []
    skipped = {"no audio": 0, "no video": 0, "no segmentation": 0}
    for i in items:
        i = int(i)
        if not builder.has(i, "audio"):
            skipped["no audio"] += 1
            continue
        if not builder.has(i, "video"):
            skipped["no video"] += 1
            continue
        w = builder.windows(i)
        if w is None or len(w) == 0:
            skipped["no segmentation"] += 1
            continue
        plan.append((i, w))
    n = int(sum(len(w) for _, w in plan))
    if builder.cfg.random_frames:
        return _prepare_frames(builder, plan, n, directory, skipped, on_item)
    shapes = {mod: builder.input_shape(mod) for mod in MODALITIES}
    maps = {}
    for mod in MODALITIES:
        maps[mod] = np.lib.format.open_memmap(directory / f"{mod}.npy", mode="w+", dtype=np.float32,
                                              shape=(max(n, 1),) + shapes[mod])
    item = np.zeros(n, dtype=np.int64)
    spans = np.zeros((n, 2), dtype=np.float64)
    pos = 0
    for i, w in plan:
        k = len(w)
        for mod in MODALITIES:
            maps[mod][pos:pos + k] = builder.inputs(i, mod, w)
        item[pos:pos + k] = i
        spans[pos:pos + k] = w
        pos += k
        if on_item is not None:
            on_item(i)
    for mod in MODALITIES:
        maps[mod].flush()
    return Prepared(maps["audio"][:n], maps["video"][:n], item, spans,
                    {k: v for k, v in skipped.items() if v}, directory)


def _prepare_frames(builder: InputBuilder, plan: list[tuple[int, np.ndarray]], n: int, directory: Path,
                    skipped: dict[str, int], on_item: Callable[[int], None] | None) -> Prepared:
    """Every frame row of every window, for drawing T of them at random each epoch."""
    item = np.zeros(n, dtype=np.int64)
    spans = np.zeros((n, 2), dtype=np.float64)
    offsets = {mod: np.zeros(n + 1, dtype=np.int64) for mod in MODALITIES}
    files = {mod: open(directory / f"{mod}.f32", "wb") for mod in MODALITIES}  # noqa: SIM115
    try:
        pos = 0
        for i, w in plan:
            k = len(w)
            for mod in MODALITIES:
                rows, rate = builder.checked_frames(i, mod)
                if not (math.isfinite(rate) and rate > 0):
                    raise ParameterError(f"frame-level features need a frame rate, got {rate!r}", builder.c.path)
                for j, (s, e) in enumerate(w):
                    lo, hi = window_range(len(rows), rate, s, e)
                    files[mod].write(np.ascontiguousarray(rows[lo:hi], dtype=np.float32).tobytes())
                    offsets[mod][pos + j + 1] = offsets[mod][pos + j] + hi - lo
            item[pos:pos + k] = i
            spans[pos:pos + k] = w
            pos += k
            if on_item is not None:
                on_item(i)
    finally:
        for f in files.values():
            f.close()
    maps = {}
    for mod in MODALITIES:
        d = builder.frame_dim[mod]
        total = int(offsets[mod][-1])
        maps[mod] = (np.memmap(directory / f"{mod}.f32", dtype=np.float32, mode="r", shape=(total, d))
                     if total else np.zeros((0, d), dtype=np.float32))
    return Prepared(maps["audio"], maps["video"], item, spans, {k: v for k, v in skipped.items() if v}, directory,
                    frame_offsets=offsets)


def normalisation(x: np.ndarray, rows: np.ndarray, *, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std of ``x[rows]`` (last axis), computed in chunks.

    Sequences ``(n, T, d)`` pool all their frames. A dimension with std below 1e-6 gets
    std 1 (it is constant; standardising would only amplify noise).
    """
    d = x.shape[-1]
    s = np.zeros(d, dtype=np.float64)
    s2 = np.zeros(d, dtype=np.float64)
    count = 0
    rows = np.sort(np.asarray(rows))
    for lo in range(0, len(rows), chunk):
        block = np.asarray(x[rows[lo:lo + chunk]], dtype=np.float64).reshape(-1, d)
        s += block.sum(0)
        s2 += (block ** 2).sum(0)
        count += block.shape[0]
    if count == 0:
        return np.zeros(d, np.float32), np.ones(d, np.float32)
    mean = s / count
    var = np.maximum(s2 / count - mean ** 2, 0.0)
    std = np.sqrt(var)
    std[std < 1e-6] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)
