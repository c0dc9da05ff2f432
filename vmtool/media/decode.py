"""Media probing and streamed decoding with PyAV.

Glossary (as in librosa): ``sr`` is an audio sample rate in Hz, ``fps`` a video frame
rate in Hz, times are always in seconds. Audio comes out mono float32; frames come out
``uint8`` arrays of shape ``(height, width, 3)`` (RGB).

Decoding is streamed: audio in blocks, video frame by frame, so memory stays bounded
on a two-hour file. PyAV's wheels carry FFmpeg's libraries; no ``ffmpeg`` binary is used.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vmtool.errors import MediaError, VmtoolError

__all__ = [
    "MediaInfo",
    "probe",
    "iter_audio",
    "load_audio",
    "load_audio_channels",
    "RESAMPLERS",
    "iter_frames",
    "AUDIO_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "MEDIA_PATTERNS",
    "find_media",
    "check_media_file",
]

AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".opus", ".aiff", ".aif", ".wma"}
VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".wmv", ".flv"}
MEDIA_PATTERNS = tuple(sorted(f"*{e}" for e in AUDIO_EXTENSIONS | VIDEO_EXTENSIONS))

# a stream is called truncated when decoding ends this much before its declared end
_TRUNCATION_TOLERANCE_S = 1.0
_TRUNCATION_TOLERANCE_FRAC = 0.05


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` finds in a media file.

    Attributes
    ----------
    path : str
    duration : float
        Seconds (the container's, else the longest stream's).
    has_audio, has_video : bool
    sample_rate : int
        Native audio rate (0 without audio).
    channels : int
    fps : float
        Average video frame rate (NaN without video).
    width, height : int
        Video frame size (0 without video).
    n_frames : int
        Number of video frames declared by the container (0 when unknown).
    audio_codec, video_codec, container : str
    """

    path: str
    duration: float
    has_audio: bool
    has_video: bool
    sample_rate: int = 0
    channels: int = 0
    fps: float = math.nan
    width: int = 0
    height: int = 0
    n_frames: int = 0
    audio_codec: str = ""
    video_codec: str = ""
    container: str = ""
    audio_duration: float = math.nan
    video_duration: float = math.nan

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def check_media_file(path: str | os.PathLike) -> Path:
    """Check that *path* is an existing, non-empty file (not a directory); return it."""
    p = Path(path)
    if not p.exists():
        raise VmtoolError("no such file", p)
    if p.is_dir():
        raise VmtoolError("is a directory, expected a media file", p)
    if p.stat().st_size == 0:
        raise MediaError("empty file", p)
    return p


def find_media(
    inputs: Sequence[str | os.PathLike], patterns: Sequence[str] | None = None
) -> tuple[list[str], list[tuple[str, str]]]:
    """Expand folders among *inputs* into the media files below them.

    A music library is a folder tree holding songs next to cover images, playlists
    and notes. Files are given as they are; each folder is walked recursively (in
    sorted order, symbolic links to folders not followed) and its files whose name
    matches one of *patterns* (``fnmatch``, case-insensitive) are kept.

    Parameters
    ----------
    inputs : sequence of path
    patterns : sequence of str, optional
        Default :data:`MEDIA_PATTERNS` (``*.mp3``, ``*.mp4``... every audio and video
        extension vmtool knows).

    Returns
    -------
    files : list of str
        The inputs, each folder replaced by its matching files.
    skipped : list of (str, str)
        Every file or folder left out below a folder, with the reason: ``"hidden"``
        (a name starting with a dot, e.g. a vmtool temporary file), ``"not matched"``
        (by *patterns*) or ``"unreadable folder (...)"``.
    """
    import fnmatch

    pats = [p.lower() for p in (patterns or MEDIA_PATTERNS)]
    files: list[str] = []
    skipped: list[tuple[str, str]] = []
    for x in inputs:
        root = Path(x)
        if not root.is_dir():
            files.append(os.fspath(x))
            continue

        def unreadable(err: OSError) -> None:
            skipped.append((err.filename or str(root), f"unreadable folder ({err.strerror})"))

        for d, dirs, names in os.walk(root, onerror=unreadable):
            for sub in sorted(dirs):
                if sub.startswith("."):
                    skipped.append((os.path.join(d, sub), "hidden"))
            dirs[:] = sorted(sub for sub in dirs if not sub.startswith("."))
            for name in sorted(names):
                path = os.path.join(d, name)
                if name.startswith("."):
                    skipped.append((path, "hidden"))
                elif any(fnmatch.fnmatchcase(name.lower(), p) for p in pats):
                    files.append(path)
                else:
                    skipped.append((path, "not matched"))
    return files, skipped


def _open(path: Path):
    import av

    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        from vmtool.store import is_hdf5

        if is_hdf5(path):
            raise MediaError("is an HDF5 file (a vmtool file?), not a media file", path) from exc
        raise MediaError(f"not a media file PyAV can read ({_ffmsg(exc)})", path) from exc
    except (UnicodeDecodeError, ValueError) as exc:  # pragma: no cover - defensive
        raise MediaError(f"not a media file PyAV can read ({exc})", path) from exc


def _ffmsg(exc: Exception) -> str:
    msg = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(msg).split())


def _stream_duration(stream, container) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return math.nan


def _not_video_mask():
    import av

    D = av.stream.Disposition
    return D.attached_pic | D.timed_thumbnails | D.still_image


def _video_stream(container):
    """The container's first real video stream, or None.

    Cover art (ID3 APIC in mp3, flac PICTURE blocks, ogg METADATA_BLOCK_PICTURE, m4a
    ``covr``) arrives as a one-frame mjpeg/png video stream flagged ``attached_pic``;
    thumbnails and still images carry their own flags. None of them is a video: a
    song with cover art is audio-only. Data and subtitle streams are never in
    ``streams.video``. PyAV 18 prints a disposition as a number, so the bits are tested.
    """
    mask = _not_video_mask()
    for s in container.streams.video:
        if s.disposition is not None and int(s.disposition & mask):
            continue
        return s
    return None


def probe(path: str | os.PathLike) -> MediaInfo:
    """Probe a media file's streams, duration and frame rate without decoding it.

    Raises
    ------
    VmtoolError
        The file is missing.
    MediaError
        The file is empty, not a media file, or has neither audio nor video.
    """
    p = check_media_file(path)
    with _open(p) as c:
        audio = c.streams.audio[0] if c.streams.audio else None
        video = _video_stream(c)
        if audio is None and video is None:
            raise MediaError("has neither an audio nor a video stream", p)
        a_dur = _stream_duration(audio, c) if audio is not None else math.nan
        v_dur = _stream_duration(video, c) if video is not None else math.nan
        if c.duration is not None:
            duration = c.duration / 1_000_000
        else:
            duration = np.nanmax([a_dur, v_dur, 0.0])
        fps = math.nan
        if video is not None:
            rate = video.average_rate or video.guessed_rate or video.base_rate
            fps = float(rate) if rate else math.nan
        info = MediaInfo(
            path=str(p),
            duration=float(duration),
            has_audio=audio is not None,
            has_video=video is not None,
            sample_rate=int(audio.rate or 0) if audio is not None else 0,
            channels=int(audio.channels or 0) if audio is not None else 0,
            fps=fps,
            width=int(video.width or 0) if video is not None else 0,
            height=int(video.height or 0) if video is not None else 0,
            n_frames=int(video.frames or 0) if video is not None else 0,
            audio_codec=audio.codec_context.name if audio is not None else "",
            video_codec=video.codec_context.name if video is not None else "",
            container=c.format.name,
            audio_duration=a_dur,
            video_duration=v_dur,
        )
    if not math.isfinite(info.duration) or info.duration <= 0:
        raise MediaError("has no duration (empty or damaged streams)", p)
    return info


def _audio_arrays(p: Path, resampler, *, pad_lead: bool) -> Iterator:
    """The first audio stream of *p* decoded and passed through *resampler* (an
    ``av.AudioResampler``): first ``(lead, rate)``, then each resampled array.

    *rate* is the stream's sample rate and *lead* the seconds before its first frame
    when *pad_lead* and the stream starts more than 1 ms after time 0 (else 0.0). Nothing
    is yielded for a stream without a decodable frame. FFmpeg's errors propagate to the
    caller, which knows how much it has decoded.
    """
    with _open(p) as c:
        stream = c.streams.audio[0]
        stream.thread_type = "AUTO"
        first = True
        for frame in c.decode(stream):
            if first:
                first = False
                t0 = frame.time if frame.time is not None else 0.0
                yield (float(t0) if pad_lead and t0 and t0 > 1e-3 else 0.0, int(frame.sample_rate))
            frame.pts = None  # let the resampler count samples; avoids pts gaps warnings
            for out in resampler.resample(frame):
                yield out.to_ndarray()
        for out in resampler.resample(None):
            yield out.to_ndarray()


def iter_audio(
    path: str | os.PathLike,
    sr: int,
    *,
    block_seconds: float = 30.0,
    info: MediaInfo | None = None,
) -> Iterator[np.ndarray]:
    """Stream a file's audio as mono float32 blocks at *sr* Hz.

    Parameters
    ----------
    path : path
    sr : int
        Output sample rate in Hz.
    block_seconds : float
        Approximate block length; memory use is bounded by it, not by the file.
    info : MediaInfo, optional
        The file's probe result, if already known.

    Yields
    ------
    np.ndarray [shape=(n,), dtype=float32]
        Consecutive blocks; their concatenation is the whole signal, starting at time 0
        (silence is prepended when the audio stream starts late).

    Raises
    ------
    MediaError
        No audio stream, a decoding error, or a stream that ends well before its
        declared duration (a truncated file).
    """
    import av

    p = check_media_file(path)
    info = info or probe(p)
    if not info.has_audio:
        raise MediaError("has no audio stream", p)
    block = max(1024, int(block_seconds * sr))
    buf: list[np.ndarray] = []
    nbuf = 0
    total = 0
    resampler = av.AudioResampler(format="flt", layout="mono", rate=int(sr))
    try:
        for a in _audio_arrays(p, resampler, pad_lead=True):
            if isinstance(a, tuple):  # the stream's start: silence before it
                a = np.zeros(int(round(a[0] * sr)), dtype=np.float32)
            a = a.reshape(-1).astype(np.float32, copy=False)
            buf.append(a)
            nbuf += a.size
            while nbuf >= block:
                cat = np.concatenate(buf)
                yield cat[:block]
                total += block
                rest = cat[block:]
                buf, nbuf = ([rest], rest.size) if rest.size else ([], 0)
    except av.error.FFmpegError as exc:
        raise MediaError(f"audio decoding failed after {total / sr:.1f} s ({_ffmsg(exc)})", p) from exc
    if nbuf:
        yield np.concatenate(buf)
        total += nbuf
    if total == 0:
        raise MediaError("audio stream holds no decodable samples", p)
    _check_truncation(p, "audio", total / sr, info.audio_duration if math.isfinite(info.audio_duration) else info.duration)


def _check_truncation(p: Path, what: str, decoded: float, declared: float) -> None:
    if not math.isfinite(declared):
        return
    if decoded < declared - max(_TRUNCATION_TOLERANCE_S, _TRUNCATION_TOLERANCE_FRAC * declared):
        raise MediaError(
            f"truncated or damaged file: decoded {decoded:.1f} s of {what} where {declared:.1f} s are declared", p
        )


RESAMPLERS = ("ffmpeg", "librosa")
"""How :func:`load_audio` gets from the file's samples to mono at the requested rate."""


def load_audio(
    path: str | os.PathLike,
    sr: int,
    *,
    info: MediaInfo | None = None,
    resampler: str = "ffmpeg",
) -> np.ndarray:
    """Decode a whole file's audio, mono float32 at *sr* Hz.

    Parameters
    ----------
    path : path
    sr : int
        Output sample rate in Hz.
    info : MediaInfo, optional
        The file's probe result, if already known.
    resampler : {"ffmpeg", "librosa"}
        ``"ffmpeg"``: FFmpeg's downmix and resampler, streamed (see :func:`iter_audio`);
        the array is allocated once from the declared duration and filled block by
        block, so a long file peaks at about one copy of the signal (two hours at
        22,050 Hz: 635 MB), not two.
        ``"librosa"``: the signal ``librosa.load(path, sr=sr)`` returns for the files
        libsndfile reads (WAV, FLAC, Ogg, MP3): decoded at the native rate, the channels
        averaged, resampled with soxr (``res_type="soxr_hq"``). msaf loads its audio with
        ``librosa.load``, so its features and boundaries need this signal (FFmpeg's
        resampler shifts it by a few milliseconds and its beats, hence msaf's frames,
        move). An audio stream that starts after the file's time 0 (an MP3's start time
        is its encoder delay) is padded with silence only in a file with a video stream,
        to keep sound and frames on one timeline; in an audio-only file the first decoded
        sample is at 0 s, as in libsndfile and the ``ffmpeg`` command line.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]

    Raises
    ------
    MediaError
        No audio stream, a decoding error, or a truncated stream.
    ParameterError
        An unknown *resampler*.
    """
    if resampler == "ffmpeg":
        return _load_audio_ffmpeg(path, int(sr), info)
    if resampler != "librosa":
        from vmtool.errors import ParameterError

        raise ParameterError(f"unknown resampler {resampler!r}; use {', '.join(RESAMPLERS)}")
    return _load_audio_librosa(path, int(sr), info)


def _load_audio_ffmpeg(path, sr: int, info: MediaInfo | None) -> np.ndarray:
    info = info or probe(path)
    declared = info.audio_duration if math.isfinite(info.audio_duration) else info.duration
    out = np.empty(int(max(declared, 0.0) * sr) + sr, dtype=np.float32)
    pos = 0
    for block in iter_audio(path, sr, info=info):
        if pos + block.size > out.size:  # longer than declared: grow geometrically
            grown = np.empty(max(2 * out.size, pos + block.size), dtype=np.float32)
            grown[:pos] = out[:pos]
            out = grown
        out[pos : pos + block.size] = block
        pos += block.size
    return out[:pos].copy() if pos < 0.9 * out.size else out[:pos]


def _load_audio_librosa(path, sr: int, info: MediaInfo | None) -> np.ndarray:
    import av

    p = check_media_file(path)
    info = info or probe(p)
    if not info.has_audio:
        raise MediaError("has no audio stream", p)
    blocks: list[np.ndarray] = []
    native = 0
    to_float = av.AudioResampler(format="fltp")  # format only: rate and layout kept, no delay
    try:
        for a in _audio_arrays(p, to_float, pad_lead=info.has_video):
            if isinstance(a, tuple):  # the stream's start and rate
                native = a[1]
                if a[0]:
                    blocks.append(np.zeros(int(round(a[0] * native)), dtype=np.float32))
                continue
            # librosa.to_mono: the mean over channels, in float32
            blocks.append(np.mean(a.astype(np.float32, copy=False), axis=0))
    except av.error.FFmpegError as exc:
        done = sum(b.size for b in blocks) / max(native, 1)
        raise MediaError(f"audio decoding failed after {done:.1f} s ({_ffmsg(exc)})", p) from exc
    y = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    if y.size == 0:
        raise MediaError("audio stream holds no decodable samples", p)
    _check_truncation(p, "audio", y.size / native, info.audio_duration if math.isfinite(info.audio_duration) else info.duration)
    if native != sr:
        if not np.isfinite(y).all():  # librosa.resample refuses them too (valid_audio)
            raise MediaError("decoded audio holds non-finite samples (NaN or inf); it cannot be resampled", p)
        y = _resample_soxr_hq(y, native, sr)
    return np.ascontiguousarray(y, dtype=np.float32)


def _resample_soxr_hq(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """``librosa.resample(y, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq")`` of a
    mono signal, without importing librosa (about 1 s of imports that a process decoding a
    media query's audio for another one does not need): soxr's high-quality resampler,
    then the length librosa fixes, ``ceil(len(y) * target_sr / orig_sr)`` (trimmed, or
    padded with zeros), in *y*'s dtype. The same samples, bit for bit
    (tests/test_media.py)."""
    import soxr

    n = int(np.ceil(y.shape[-1] * (float(target_sr) / orig_sr)))
    out = soxr.resample(y, orig_sr, target_sr, quality="soxr_hq")
    if out.shape[-1] > n:
        out = out[:n]
    elif out.shape[-1] < n:
        out = np.pad(out, (0, n - out.shape[-1]))
    return np.asarray(out, dtype=y.dtype)



def load_audio_channels(
    path: str | os.PathLike,
    sr: int,
    *,
    channels: int = 2,
    info: MediaInfo | None = None,
) -> np.ndarray:
    """Decode a whole file's audio as *channels* channels of float32 at *sr* Hz.

    For writing sound a listener hears (``vmtool render``), where :func:`load_audio`'s
    mono downmix would lose the stereo image. FFmpeg's resampler does the layout
    change (mono is copied to both sides, surround is downmixed) and the rate change.
    As with :func:`load_audio`, an audio stream that starts after time 0 in a file
    with video is preceded by silence, keeping sound and picture on one timeline.

    Returns
    -------
    np.ndarray [shape=(channels, n), dtype=float32]

    Raises
    ------
    MediaError
        No audio stream, a decoding error, or a truncated stream.
    ParameterError
        *channels* other than 1 or 2.
    """
    import av

    if channels not in (1, 2):
        from vmtool.errors import ParameterError

        raise ParameterError(f"channels must be 1 or 2, got {channels!r}")
    p = check_media_file(path)
    info = info or probe(p)
    if not info.has_audio:
        raise MediaError("has no audio stream", p)
    blocks: list[np.ndarray] = []
    resampler = av.AudioResampler(format="fltp", layout="mono" if channels == 1 else "stereo", rate=int(sr))
    try:
        for a in _audio_arrays(p, resampler, pad_lead=info.has_video):
            if isinstance(a, tuple):  # the stream's start: silence before it
                if a[0]:
                    blocks.append(np.zeros((channels, int(round(a[0] * sr))), dtype=np.float32))
                continue
            blocks.append(a.astype(np.float32, copy=False))
    except av.error.FFmpegError as exc:
        done = sum(b.shape[1] for b in blocks) / sr
        raise MediaError(f"audio decoding failed after {done:.1f} s ({_ffmsg(exc)})", p) from exc
    y = np.concatenate(blocks, axis=1) if blocks else np.zeros((channels, 0), dtype=np.float32)
    if y.shape[1] == 0:
        raise MediaError("audio stream holds no decodable samples", p)
    _check_truncation(p, "audio", y.shape[1] / sr,
                      info.audio_duration if math.isfinite(info.audio_duration) else info.duration)
    return np.ascontiguousarray(y)


def iter_frames(
    path: str | os.PathLike,
    sizes: Sequence[tuple[int, int] | None],
    *,
    info: MediaInfo | None = None,
) -> Iterator[tuple[float, list[np.ndarray]]]:
    """Stream every video frame, scaled to each requested size, in one decoding pass.

    Parameters
    ----------
    path : path
    sizes : sequence of (width, height) or None
        One output per entry; None keeps the native size. Scaling uses FFmpeg's
        ``scale`` filter (bilinear-bicubic default of swscale), then ``rgb24``.
    info : MediaInfo, optional

    Yields
    ------
    (time, frames) : (float, list of np.ndarray [shape=(h, w, 3), dtype=uint8])
        The frame's presentation time in seconds (from its timestamp, so variable
        frame rate is handled) and one array per requested size.

    Raises
    ------
    MediaError
        No video stream, a decoding error, or a truncated stream.
    """
    import av

    p = check_media_file(path)
    info = info or probe(p)
    if not info.has_video:
        raise MediaError("has no video stream", p)
    n = 0
    last_t = 0.0
    with _open(p) as c:
        stream = _video_stream(c)
        if stream is None:  # pragma: no cover - probe said there was one
            raise MediaError("has no video stream", p)
        stream.thread_type = "AUTO"
        graphs = [None if s is None else _scale_graph(stream, s) for s in sizes]
        fps = info.fps if math.isfinite(info.fps) and info.fps > 0 else 25.0
        t_first = None
        try:
            for frame in c.decode(stream):
                t = frame.time
                if t is None:
                    t = n / fps
                if t_first is None:
                    t_first = t
                t = t - t_first if t_first < 0 else t  # negative start (edit lists): shift to 0
                outs = []
                for g in graphs:
                    if g is None:
                        outs.append(frame.to_ndarray(format="rgb24"))
                    else:
                        g.push(frame)
                        outs.append(g.pull().to_ndarray())
                n += 1
                last_t = t
                yield float(t), outs
        except av.error.FFmpegError as exc:
            raise MediaError(f"video decoding failed after {last_t:.1f} s ({_ffmsg(exc)})", p) from exc
    if n == 0:
        raise MediaError("video stream holds no decodable frames", p)
    declared = info.video_duration if math.isfinite(info.video_duration) else info.duration
    _check_truncation(p, "video", last_t + 1.0 / fps, declared)


def _scale_graph(stream, size: tuple[int, int]):
    import av

    w, h = int(size[0]), int(size[1])
    g = av.filter.Graph()
    src = g.add_buffer(template=stream)
    scale = g.add("scale", f"{w}:{h}")
    fmt = g.add("format", "rgb24")
    sink = g.add("buffersink")
    src.link_to(scale)
    scale.link_to(fmt)
    fmt.link_to(sink)
    g.configure()
    return g
