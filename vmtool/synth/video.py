"""Synthetic visuals that follow a synthetic track (:mod:`vmtool.synth.music`).

:func:`iter_video_frames` renders shots whose cuts fall on bar lines (:func:`bar_cuts`),
with a palette from the key and timbre, brightness from the section energy, and shapes
whose speed follows the tempo and that pulse on the beats; the cut times are the truth
a shot detector is checked against. Deterministic given ``seed``.

Frames are ``uint8`` arrays of shape ``(height, width, 3)`` (RGB); sizes are given as
``(width, height)``; ``fps`` is a video frame rate in Hz, times are in seconds.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from vmtool.errors import ParameterError, check_finite
from vmtool.synth.music import MusicTruth

__all__ = ["bar_cuts", "iter_video_frames", "synth_video_frames"]


def bar_cuts(music: MusicTruth, *, every_bars: int | Sequence[int] | None = None) -> tuple[np.ndarray, tuple[int, ...]]:
    """Shot cut times on bar lines: at every section boundary and every few bars within.

    Parameters
    ----------
    music : MusicTruth
    every_bars : int, sequence of int (one per section), or None
        Shot length in bars. None chooses it from each section's energy: 1 bar when
        the energy is above 0.8, 2 bars above 0.6, else 4 bars (louder = faster cuts).

    Returns
    -------
    cut_times : np.ndarray [shape=(n_cuts,), dtype=float64]
        Seconds, increasing, excluding 0 and the end.
    every : tuple of int [len=n_sections]
        The shot length in bars used in each section.
    """
    m = len(music.labels)
    if every_bars is None:
        every = tuple(1 if e > 0.8 else 2 if e > 0.6 else 4 for e in music.energies)
    elif np.ndim(every_bars) == 0:
        every = (int(every_bars),) * m
    else:
        every = tuple(int(x) for x in every_bars)
        if len(every) != m:
            raise ParameterError(f"every_bars has {len(every)} values for {m} sections")
    if any(k < 1 for k in every):
        raise ParameterError(f"every_bars must be >= 1, got {every_bars!r}")
    bar = music.bar_period
    cuts: list[float] = []
    for s, (a, b) in enumerate(zip(music.section_starts, music.section_ends)):
        if s > 0:
            cuts.append(a)
        k = 1
        while a + k * every[s] * bar < b - 1e-6:
            cuts.append(a + k * every[s] * bar)
            k += 1
    out = np.array([c for c in cuts if 1e-9 < c < music.duration - 1e-6], dtype=float)
    return out, every


@dataclass
class _Shot:
    bg0: np.ndarray  # (3,) float RGB in [0, 1]
    bg1: np.ndarray
    direction: float  # gradient angle, radians
    kinds: list[str]
    colours: np.ndarray  # (n, 3)
    pos0: np.ndarray  # (n, 2) fraction of (width, height)
    vel: np.ndarray  # (n, 2) fraction of width per second
    radius: np.ndarray  # (n,) fraction of height


def _plan_shots(
    music: MusicTruth, cut_times: np.ndarray, seed: int, brightness: float = 1.0, motion: float = 1.0
) -> list[_Shot]:
    """Draw every shot's look; neighbouring shots differ in hue and layout.

    *brightness* and *motion* scale the colours' value and the shapes' speed (an
    emotion's look, :data:`vmtool.synth.corpus.EMOTIONS`)."""
    rng = np.random.default_rng([int(seed), 0x7669])  # "vi"
    starts = np.concatenate([[0.0], cut_times])
    base_hue = (music.key / 12.0 + rng.uniform(-0.04, 0.04)) % 1.0
    sat = 0.45 + 0.45 * music.timbre + rng.uniform(-0.05, 0.05)
    n_shapes = int(rng.integers(2, 6))
    speed = motion * music.tempo / 60.0 * 0.035 * rng.uniform(0.8, 1.25)  # width fractions per second
    letter_hue = {c: rng.uniform(-0.08, 0.08) for c in dict.fromkeys(music.labels)}
    shots: list[_Shot] = []
    side = 1 if rng.random() < 0.5 else -1
    for s0 in starts:
        sec = int(music.section_index(s0 + 1e-6))
        energy = music.energies[sec]
        value = float(np.clip(brightness * (0.22 + 0.72 * energy) + rng.uniform(-0.04, 0.04), 0.0, 1.0))
        # shots alternate either side of the section's hue: neighbours differ by ~0.3 turn
        side = -side
        hue = (base_hue + letter_hue[music.labels[sec]] + side * 0.15 + rng.uniform(-0.03, 0.03)) % 1.0
        s = float(np.clip(sat, 0.0, 1.0))
        bg0 = np.array(colorsys.hsv_to_rgb(hue, s, value))
        bg1 = np.array(colorsys.hsv_to_rgb((hue + 0.08) % 1.0, s * 0.8, value * 0.55))
        kinds = ["circle" if rng.random() > music.timbre else "rect" for _ in range(n_shapes)]
        colours = np.array(
            [
                colorsys.hsv_to_rgb((hue + 0.5 + rng.uniform(-0.1, 0.1)) % 1.0, s, min(1.0, value * 1.1 + 0.1))
                for _ in range(n_shapes)
            ]
        )
        ang = rng.uniform(0, 2 * np.pi, n_shapes)
        vel = speed * rng.uniform(0.6, 1.4, n_shapes)[:, None] * np.stack([np.cos(ang), np.sin(ang)], axis=1)
        shots.append(
            _Shot(
                bg0=bg0,
                bg1=bg1,
                direction=float(rng.uniform(0, 2 * np.pi)),
                kinds=kinds,
                colours=colours,
                pos0=rng.uniform(0.1, 0.9, (n_shapes, 2)),
                vel=vel,
                radius=rng.uniform(0.08, 0.2, n_shapes),
            )
        )
    return shots


def _reflect(x: np.ndarray) -> np.ndarray:
    """Fold positions into [0, 1] as a ball bouncing between walls."""
    x = np.mod(x, 2.0)
    return np.where(x > 1.0, 2.0 - x, x)


def iter_video_frames(
    music: MusicTruth,
    *,
    fps: float = 25.0,
    size: tuple[int, int] = (160, 90),
    cut_times: Sequence[float] | np.ndarray | None = None,
    seed: int = 0,
    times: Sequence[float] | np.ndarray | None = None,
    brightness: float = 1.0,
    motion: float = 1.0,
) -> Iterator[np.ndarray]:
    """Render visuals that follow *music*, one frame at a time.

    Each shot has a two-colour gradient background and a few shapes. The palette's
    hue comes from the key (and varies a little per section letter and per shot),
    its saturation from the timbre, its brightness from the section's energy; the
    shapes are circles (dark timbre) or squares (bright timbre), drift at a speed
    proportional to the tempo, bounce off the frame edges and swell on every beat.
    Consecutive shots differ by at least a quarter turn of hue and have a new
    layout, so a shot detector finds every cut.

    Parameters
    ----------
    music : MusicTruth
        The music the visuals follow (only its truth is used, not its signal).
    fps : float > 0
        Frame rate in Hz (ignored when *times* is given).
    size : (int, int)
        ``(width, height)`` in pixels.
    cut_times : array-like of float, optional
        Shot cuts in seconds (increasing, excluding 0). Default: :func:`bar_cuts`
        with its default (energy-driven) shot lengths.
    seed : int
        Seed for the per-clip randomness (layout, exact hues, speeds).
    times : array-like of float, optional
        Explicit frame times in seconds (variable frame rate). Default: ``i / fps``
        for every frame in ``[0, music.duration)``.
    brightness, motion : float
        Factors on the colours' value and the shapes' speed (1: as the music sets them).

    Yields
    ------
    np.ndarray [shape=(height, width, 3), dtype=uint8]
        RGB frames. A frame at time ``t`` belongs to the shot that starts at the last
        cut ``<= t``.
    """
    w, h = _check_size(size)
    if times is None:
        fps = check_finite("fps", fps, 0.0)
        n_frames = max(1, math.ceil(round(music.duration * fps, 6)))
        times = np.arange(n_frames) / fps
    else:
        times = np.asarray(times, dtype=float)
    if cut_times is None:
        cut_times, _ = bar_cuts(music)
    cut_times = np.asarray(cut_times, dtype=float).reshape(-1)
    if cut_times.size and (cut_times[0] <= 0 or np.any(np.diff(cut_times) <= 0) or not np.all(np.isfinite(cut_times))):
        raise ParameterError(f"cut_times must be finite, positive and increasing, got {cut_times.tolist()}")
    shots = _plan_shots(music, cut_times, seed, brightness, motion)
    shot_starts = np.concatenate([[0.0], cut_times])
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    beats = music.beat_times
    bg: tuple[int, np.ndarray] | None = None  # one shot's background at a time

    for t in times:
        i = int(np.searchsorted(shot_starts, t + 1e-9, side="right") - 1)
        i = min(max(i, 0), len(shots) - 1)
        sh = shots[i]
        if bg is None or bg[0] != i:
            gx, gy = xs / max(w - 1, 1) - 0.5, ys / max(h - 1, 1) - 0.5
            u = gx * math.cos(sh.direction) + gy * math.sin(sh.direction)
            u = np.clip(u + 0.5, 0.0, 1.0)[..., None]
            bg = (i, _to_u8((1 - u) * sh.bg0 + u * sh.bg1))
            colours = _to_u8(sh.colours)
        img = bg[1].copy()
        dt = t - shot_starts[i]
        b = np.searchsorted(beats, t + 1e-9, side="right") - 1
        since = t - beats[b] if b >= 0 else 1e9
        pulse = 1.0 + 0.25 * math.exp(-since / (0.25 * music.beat_period))
        pos = _reflect(sh.pos0 + sh.vel * dt * np.array([1.0, w / h]))
        for k, kind in enumerate(sh.kinds):
            cx, cy = pos[k, 0] * (w - 1), pos[k, 1] * (h - 1)
            r = sh.radius[k] * h * pulse
            x0, x1 = max(0, int(cx - r)), min(w, int(cx + r) + 2)
            y0, y1 = max(0, int(cy - r)), min(h, int(cy + r) + 2)
            if x0 >= x1 or y0 >= y1:
                continue
            dx, dy = xs[:, x0:x1] - cx, ys[y0:y1] - cy
            if kind == "circle":
                mask = dx * dx + dy * dy <= r * r
            else:
                mask = (np.abs(dx) <= r) & (np.abs(dy) <= r)
            img[y0:y1, x0:x1][mask] = colours[k]
        yield img


def _to_u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def synth_video_frames(
    music: MusicTruth,
    *,
    fps: float = 25.0,
    size: tuple[int, int] = (160, 90),
    cut_times: Sequence[float] | np.ndarray | None = None,
    seed: int = 0,
    times: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """All frames of :func:`iter_video_frames` in one array.

    Returns
    -------
    frames : np.ndarray [shape=(n_frames, height, width, 3), dtype=uint8]
    """
    return np.stack(list(iter_video_frames(music, fps=fps, size=size, cut_times=cut_times, seed=seed, times=times)))


def _check_size(size) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ParameterError(f"size must be (width, height), got {size!r}") from None
    if w < 2 or h < 2:
        raise ParameterError(f"size must be at least 2x2 pixels, got {w}x{h}")
    return w, h
