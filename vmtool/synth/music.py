"""Synthetic music with known ground truth: tempo, beats, bars and sections.

:func:`synth_music` renders a 4/4 track (drums, bass, chords, an optional arpeggio)
whose harmony, timbre and loudness change per section letter: the same letter means
the same material, so a structure algorithm can find ``A-B-A-C``. It returns the truth
the track was built from (:class:`MusicTruth`), so tests and benchmarks can check an
analysis against exact answers. Deterministic given ``seed``.

Glossary (as in librosa): ``sr`` is an audio sample rate in Hz, ``tempo`` is in beats
per minute, times are always in seconds. Audio is mono float32.

Examples
--------
>>> y, truth = synth_music(duration=8.0, tempo=120.0, sections="AB")
>>> y.shape, y.dtype, truth.boundaries.tolist()
((176400,), dtype('float32'), [4.0])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vmtool.errors import ParameterError, check_finite

__all__ = ["MusicTruth", "synth_music"]


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
    return tuple(check_finite("energy", e, 0.0, 1.0) for e in out)


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
    duration = check_finite("duration", duration, 0.0)
    tempo = check_finite("tempo", tempo, 0.0)
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
