"""Writing audio and video files with PyAV: the encoder beside the decoder.

:func:`write_media` writes audio, video or both (frames are streamed, so memory stays
bounded), picks the container from the extension (:data:`CONTAINERS`), embeds cover
art in audio files as music libraries carry it, and replaces the target only when the
file is complete. libx264 runs without MB-tree, so the same input gives the same bytes
in mp4, mov, avi, m4a, mp3, flac and wav; FFmpeg's ogg and matroska muxers draw a random
stream serial / segment UID, so ogg and mkv files differ in those bytes between runs.
Synthetic clips (:mod:`vmtool.synth`) and test fixtures are written with it.

:func:`remux_with_audio` copies a file's video stream packet for packet (no decoding,
no re-encoding: the picture is bit-identical) beside a new audio track encoded from an
array; ``vmtool render`` writes its previews with it.

Glossary (as in librosa): ``sr`` is an audio sample rate in Hz, ``fps`` a video frame
rate in Hz, times are in seconds. Audio is float (mono or stereo); frames are ``uint8``
arrays of shape ``(height, width, 3)`` (RGB).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Mapping
from fractions import Fraction
from pathlib import Path

import numpy as np

from vmtool.atomic import atomic_output
from vmtool.errors import MediaError, ParameterError, check_finite

__all__ = ["CONTAINERS", "write_media", "REMUX_EXTENSIONS", "remux_with_audio"]

#: Output extension -> (FFmpeg container format, default audio encoder or None, takes video).
CONTAINERS: dict[str, tuple[str, str | None, bool]] = {
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
    if ext not in CONTAINERS:
        raise ParameterError(f"unknown output extension {ext!r} (known: {', '.join(sorted(CONTAINERS))})")
    fmt, default_acodec, takes_video = CONTAINERS[ext]
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
        audio = _check_audio(audio, sr)

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
        vstream = astream = None
        rate = vtb = Fraction(1, 1000)
        layout = rate_out = None
        what = ""
        try:
            if first is not None:
                what = f"video encoder {video_codec!r}"
                h, w = first.shape[:2]
                rate = _fps_fraction(check_finite("fps", fps, 0.0))
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
        feed = _AudioFeed(container, astream, audio, int(sr), layout, rate_out) if astream is not None else None

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
                    if feed is not None:
                        feed.push(t + 0.5)  # keep the streams interleaved
                    vf = av.VideoFrame.from_ndarray(arr, format="rgb24")
                    vf.pts = pts
                    vf.time_base = vtb  # the codec's; the muxer may change the stream's
                    container.mux(vstream.encode(vf))
                container.mux(vstream.encode(None))
            if feed is not None:
                feed.push(None)
        except av.error.FFmpegError as exc:
            raise MediaError(f"encoding failed ({_av_message(exc)})", target) from exc
    return target


def _check_audio(audio, sr) -> np.ndarray:
    """*audio* as float32 of shape (channels, n), clipped to [-1, 1]; *sr* checked."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.ndim != 2 or audio.shape[0] not in (1, 2) or audio.shape[1] == 0:
        raise ParameterError(f"audio must have shape (n,) or (1|2, n) with n > 0, got {audio.shape}")
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ParameterError(f"sr must be a positive integer, got {sr!r}")
    return np.clip(np.nan_to_num(audio), -1.0, 1.0)


class _AudioFeed:
    """Hands an array of samples to an opened audio encoder, block by block, up to a given
    time (so the caller keeps the streams interleaved), and flushes it at the end."""

    def __init__(self, container, stream, audio: np.ndarray, sr: int, layout: str, rate_out: int):
        import av

        self.container, self.stream, self.audio, self.sr, self.layout = container, stream, audio, sr, layout
        # hand the encoder frames of exactly its frame size, in its sample format
        # (PyAV re-chunks other frames itself, several times slower)
        self.resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=layout, rate=rate_out,
                                           frame_size=stream.codec_context.frame_size or None)
        self.pos = 0  # samples already sent to the encoder
        self.block = max(1024, sr // 2)

    def push(self, until_s: float | None) -> None:
        """Encode the samples before *until_s* seconds; None: all that is left, then flush."""
        import av

        audio, sr = self.audio, self.sr
        end = audio.shape[1] if until_s is None else min(audio.shape[1], int(until_s * sr))
        while self.pos < end:
            stop = min(end, self.pos + self.block)
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, self.pos:stop]), format="fltp",
                                            layout=self.layout)
            af.sample_rate, af.pts, af.time_base = sr, self.pos, Fraction(1, sr)
            for rf in self.resampler.resample(af):
                self.container.mux(self.stream.encode(rf))
            self.pos = stop
        if until_s is None:
            for rf in self.resampler.resample(None):
                self.container.mux(self.stream.encode(rf))
            self.container.mux(self.stream.encode(None))


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


#: Output extensions :func:`remux_with_audio` writes (containers that hold AAC beside any video codec).
REMUX_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv")


def remux_with_audio(
    video: str | os.PathLike,
    audio: np.ndarray,
    sr: int,
    path: str | os.PathLike,
    *,
    audio_codec: str = "aac",
    bit_rate: int = 192_000,
) -> Path:
    """Write *video*'s video stream, copied without re-encoding, with *audio* as its sound.

    The video packets are demuxed and muxed unchanged (same bytes, same timestamps), so
    the picture is exactly the input's and no encoder runs on it; the audio is encoded
    (AAC by default) and interleaved with them. The input's own audio, subtitles and
    other streams are not copied. The file appears only when complete
    (:func:`vmtool.atomic.atomic_output`).

    Parameters
    ----------
    video : path
        The file whose first video stream is copied (cover art is never taken for it).
    audio : np.ndarray [shape=(n,) or (n_channels, n)]
        Float samples starting at the file's time 0; clipped to [-1, 1].
    sr : int
        Sample rate of *audio* in Hz.
    path : path
        Output: ``.mp4``, ``.m4v``, ``.mov`` or ``.mkv`` (:data:`REMUX_EXTENSIONS`).
    audio_codec : str
        FFmpeg audio encoder.
    bit_rate : int
        Audio bit rate in bit/s.

    Returns
    -------
    Path
        *path*.

    Raises
    ------
    ParameterError
        Another extension, bad audio, or an encoder FFmpeg cannot set up.
    MediaError
        *video* has no video stream or cannot be read, or FFmpeg failed while writing.
    """
    import av

    from vmtool.media.decode import _open, _video_stream, check_media_file

    target = Path(path)
    ext = target.suffix.lower()
    if ext not in REMUX_EXTENSIONS:
        raise ParameterError(f"unknown output extension {ext!r} for a video with new sound "
                             f"(known: {', '.join(REMUX_EXTENSIONS)})", target)
    fmt = CONTAINERS[ext][0]
    audio = _check_audio(audio, sr)
    layout = "mono" if audio.shape[0] == 1 else "stereo"
    src = check_media_file(video)
    with _open(src) as inp:
        vin = _video_stream(inp)
        if vin is None:
            raise MediaError("has no video stream", src)
        with atomic_output(target) as tmp, av.open(str(tmp), "w", format=fmt) as out:
            try:
                vout = out.add_stream_from_template(vin)
                aout = out.add_stream(audio_codec, rate=int(sr))
                if aout.type != "audio":
                    raise ValueError("not an audio encoder")
                aout.layout = layout
                aout.bit_rate = int(bit_rate)
                out.start_encoding()
            except (ValueError, TypeError, av.error.FFmpegError) as exc:
                msg = "unknown encoder" if isinstance(exc, av.codec.codec.UnknownCodecError) else _av_message(exc)
                raise ParameterError(f"cannot set up the audio encoder {audio_codec!r} ({msg})", target) from exc
            feed = _AudioFeed(out, aout, audio, int(sr), layout, int(sr))

            try:
                for packet in inp.demux(vin):
                    if packet.dts is None:  # the demuxer's flush packet
                        continue
                    if packet.pts is not None and packet.time_base is not None:
                        feed.push(float(packet.pts * packet.time_base) + 0.5)  # keep the streams interleaved
                    packet.stream = vout
                    out.mux(packet)
                feed.push(None)
            except av.error.FFmpegError as exc:
                raise MediaError(f"writing failed ({_av_message(exc)})", target) from exc
    return target
