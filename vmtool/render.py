"""A listenable preview: a track under a video's picture (``vmtool render``).

An editor judges a recommendation by hearing it under the picture. :func:`render_preview`
writes the video with the track as its sound:

- ``fit="section"`` (default): the track's best section (:mod:`vmtool.ranking.section`,
  the placement ``vmtool rank`` prints: the alignment of the video's segments with the
  track's, the start snapped to a beat), or ``start`` seconds, for the video's length,
  with a short fade in and out;
- ``fit="cuts"``: the track re-edited on its beat grid so that its sections change where
  the video's shots change. The video is cut into shots (TransNetV2, as ``vmtool segment
  -m transnet``), each shot is aligned with the track's sections (``vmtool align``'s
  edit list, NW-DTW), and at each shot change whose matched section is not already
  playing the music jumps to the start of that section. Every jump leaves the track on
  a beat and enters it on a beat, at the beat nearest the shot change, so the beat never
  stumbles; the two sides cross-fade over a few tens of milliseconds (equal power:
  ``cos`` out, ``sin`` in, the summed power constant).

The video stream is copied packet for packet (:func:`vmtool.media.encode.remux_with_audio`),
the sound is encoded as AAC, and ``keep_audio`` mixes the video's own sound underneath.

A track that ends before the video is looped when its beat grid is known: from the last
bar line (else beat) that the track reaches back to its first one, so the loop keeps the
metre; with no beat found (e.g. a drone) it is padded with silence instead, since a
loop at an arbitrary point would break the rhythm audibly. Either is reported as a
warning.

The beat grid is the catalog's (bars or beats stored by ``vmtool segment``, or the beat
grid ``extract`` measured), the one ``vmtool rank`` snaps its sections to; when the
catalog has none, or the track is a media file, it is detected in the track's audio with
:func:`vmtool.segmentation.rhythm.bars` (librosa's beat tracker and vmtool's downbeat
estimate, as ``vmtool segment -m bars``).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vmtool.errors import MediaError, ParameterError, VmtoolError
from vmtool.progress import Progress

__all__ = ["render_preview", "RenderResult", "BeatGrid", "plan_section", "plan_cuts", "mix_pieces", "FITS",
           "CROSSFADE", "FADE_IN", "FADE_OUT"]

#: the ``fit`` values
FITS = ("section", "cuts")
#: seconds of the equal-power crossfade at each edit (a few tens of ms: shorter clicks, longer smears the beat)
CROSSFADE = 0.04
#: seconds of the fade in at the start of the preview
FADE_IN = 0.1
#: seconds of the fade out at its end
FADE_OUT = 1.0
#: the ranking method whose alignment places the section (``vmtool rank``'s default)
SECTION_METHOD = "btrace-mean"
#: the alignment method of ``fit="cuts"`` (global: every shot gets a section, in order)
CUTS_METHOD = "nw-dtw"
#: segmentation of the video into shots for ``fit="cuts"``
SHOTS = "transnet"
#: the output's sample rate when the track's own is neither 44.1 nor 48 kHz
DEFAULT_SR = 44100


@dataclass
class RenderResult:
    """What :func:`render_preview` wrote.

    Attributes
    ----------
    path : Path
        The output file.
    start, end : float
        Seconds in the track where the music starts (the section start) and where the
        last piece of it ends.
    duration : float
        Seconds of the preview (the video stream's length).
    fit : {"section", "cuts"}
    edits : list of (float, float)
        ``(video time, track time)`` where each piece of the track starts, in order; the
        first is ``(0, start)``. Every later one enters the track on a beat, and the
        piece before it left the track on a beat.
    looped : bool
        The track ended before the video and was looped (its edits include the loops).
    padded : float
        Seconds of silence at the end (a track shorter than the video with no beat grid).
    snap : str
        What the start was snapped to (``bars``, ``beats``, ``measured-grid``,
        ``bars (detected)``, ``beats (detected)``), ``none`` or ``given`` (``start``).
    grid : str
        Where the beat grid came from (the catalog's kind, ``detected`` or ``none``).
    track : Path
        The track's media file.
    """

    path: Path
    start: float
    end: float
    duration: float
    fit: str
    edits: list[tuple[float, float]]
    looped: bool = False
    padded: float = 0.0
    snap: str = "none"
    grid: str = "none"
    track: Path | None = None

    def to_dict(self) -> dict:
        return {"output": str(self.path), "track": None if self.track is None else str(self.track),
                "fit": self.fit, "start": round(self.start, 3), "end": round(self.end, 3),
                "duration": round(self.duration, 3), "snap": self.snap, "grid": self.grid,
                "looped": self.looped, "padded": round(self.padded, 3),
                "edits": [[round(v, 4), round(t, 4)] for v, t in self.edits]}


@dataclass
class BeatGrid:
    """Candidate edit points of a track, seconds.

    Attributes
    ----------
    beats : np.ndarray [shape=(n,)]
        Where a cut may enter or leave the track (sorted).
    bars : np.ndarray [shape=(m,)] or None
        Bar lines (a subset of the beats), when known: loops use them.
    source : str
        ``bars``, ``beats``, ``measured-grid`` (the catalog's), ``detected`` or ``none``.
    """

    beats: np.ndarray
    bars: np.ndarray | None = None
    source: str = "none"

    @property
    def known(self) -> bool:
        return len(self.beats) > 0

    @property
    def snap_points(self) -> tuple[np.ndarray, str]:
        """Where a section may start, and its name: the bar lines when known, else the beats."""
        detected = " (detected)" if self.source == "detected" else ""
        if self.bars is not None and len(self.bars):
            return self.bars, ("bars" + detected if detected else self.source)
        return self.beats, ("beats" + detected if detected else self.source)


@dataclass
class _Track:
    media: Path
    item: tuple[Path, str] | None  # (file, id) for catalog.h5#id
    spec: str


# --- planning: where each piece of the track plays (arrays in, edit lists out) --------------------


def _loop_fill(edits: list[tuple[float, float]], until: float, track_duration: float, grid: BeatGrid,
               loop_to: float) -> tuple[list[tuple[float, float]], int, float]:
    """Loop the last piece of *edits* so it plays until video time *until* without running
    past the track's end.

    The loop leaves the track at the last bar line (else beat) it reaches and re-enters
    it at the bar line (else beat) nearest *loop_to* (the track's start: the whole track
    plays again, rather than its last bars over and over), so a loop is whole bars when
    the bars are known. Returns the edits, the number of loops and the seconds of silence
    left at the end when the track has no beat grid (or is shorter than one beat).
    """
    loops = 0
    points = grid.bars if grid.bars is not None and len(grid.bars) >= 2 else grid.beats
    while True:
        v, t = edits[-1]
        if t + (until - v) <= track_duration + 1e-9:
            return edits, loops, 0.0
        target = None
        for pts in (points, grid.beats):
            inside = pts[pts < track_duration - 1e-6]
            if not len(inside):
                continue
            target = float(inside[np.argmin(np.abs(inside - loop_to))])
            outs = pts[(pts > max(t, target) + 1e-6) & (pts <= track_duration + 1e-9)]
            if len(outs):
                break
        else:
            return edits, loops, until - (v + track_duration - t)
        out = float(outs[-1])
        edits.append((v + out - t, target))
        loops += 1


def plan_section(start: float, length: float, track_duration: float, grid: BeatGrid
                 ) -> tuple[list[tuple[float, float]], int, float]:
    """The edits of a section preview: one piece from *start*, looped if the track is too short.

    Parameters
    ----------
    start : float
        Seconds in the track.
    length : float
        Seconds to fill (the video's length).
    track_duration : float
    grid : BeatGrid

    Returns
    -------
    edits : list of (float, float)
        ``(video time, track time)`` of each piece's start.
    loops : int
        Times the track was looped back (0: it was long enough).
    padded : float
        Seconds of silence at the end (no beat grid to loop on).
    """
    return _loop_fill([(0.0, float(start))], length, track_duration, grid, 0.0)


def plan_cuts(shots: np.ndarray, targets: list[tuple[float, float] | None], start: float, length: float,
              track_duration: float, grid: BeatGrid, *, min_piece: int = 1
              ) -> tuple[list[tuple[float, float]], int, float]:
    """The edits that land the track's sections on the video's shot changes, on beats.

    Parameters
    ----------
    shots : np.ndarray [shape=(k,)]
        Start of each shot in the video, seconds (the first is 0).
    targets : list of (float, float) or None, len k
        For each shot, the span of the track matched to it (``Edit.target_span`` of the
        alignment), or None when the alignment skipped it.
    start : float
        Where the first shot's music starts in the track (a beat).
    length : float
        Seconds of video.
    track_duration : float
    grid : BeatGrid
        Must be known (``grid.known``).
    min_piece : int
        Fewest beats a piece lasts.

    Returns
    -------
    As :func:`plan_section`. At a shot change whose matched span is not what is already
    playing, the piece playing leaves the track at its beat whose video time is nearest
    the shot change and the next piece enters at the beat nearest the span's start.
    """
    if not grid.known:
        raise ParameterError("the track has no beat grid: its music cannot be re-edited on beats "
                             "(use the default fit, --fit section)")
    beats = grid.beats
    edits: list[tuple[float, float]] = [(0.0, float(start))]
    loops = 0
    for a, span in zip(np.asarray(shots, dtype=np.float64)[1:], targets[1:]):
        if span is None or a >= length:
            continue
        v, t = edits[-1]
        if t + (a - v) > track_duration:  # the piece runs out before the cut: loop inside it first
            edits, n, _ = _loop_fill(edits, a, track_duration, grid, 0.0)
            loops += n
            v, t = edits[-1]
        playing = t + (a - v)
        if span[0] - 1e-6 <= playing < span[1]:
            continue  # the matched section is what already plays
        outs = beats[(beats > t + 1e-6) & (beats <= track_duration + 1e-9)]
        if len(outs) < min_piece:
            continue
        outs = outs[min_piece - 1:]
        out = float(outs[np.argmin(np.abs(v + outs - t - a))])
        ins = beats[beats < track_duration - 1e-6]
        enter = float(ins[np.argmin(np.abs(ins - span[0]))])
        cut = v + out - t
        if abs(enter - out) < 1e-6 or cut >= length:
            continue
        edits.append((cut, enter))
    edits, n, padded = _loop_fill(edits, length, track_duration, grid, 0.0)
    return edits, loops + n, padded


# --- mixing: the samples of the plan -------------------------------------------------------------


def _ramp(n: int) -> np.ndarray:
    """Equal-power gain from 0 to 1 over *n* samples: ``sin(pi/2 x)`` (its partner ``cos``)."""
    if n <= 0:
        return np.ones(0, dtype=np.float32)
    x = (np.arange(n, dtype=np.float64) + 0.5) / n
    return np.sin(0.5 * np.pi * x).astype(np.float32)


def mix_pieces(track: np.ndarray, sr: int, edits: list[tuple[float, float]], length: float, *,
               crossfade: float = CROSSFADE, fade_in: float = FADE_IN, fade_out: float = FADE_OUT) -> np.ndarray:
    """The samples of a plan: each piece of *track* at its video time, cross-faded at the edits.

    Parameters
    ----------
    track : np.ndarray [shape=(channels, n)]
    sr : int
    edits : list of (float, float)
        From :func:`plan_section` or :func:`plan_cuts`.
    length : float
        Seconds of output.
    crossfade : float
        Seconds of each equal-power crossfade, centred on the edit (the outgoing piece
        plays on for half of it past its out point, the incoming one starts half of it
        before its in point, where the track has that much before it).
    fade_in, fade_out : float
        Seconds of the fades at the start and the end of the output (quarter-sine ramps); the
        fade out ends the music where the track ends earlier (padding).

    Returns
    -------
    np.ndarray [shape=(channels, round(length * sr)), dtype=float32]
    """
    ch, n_track = track.shape
    n_out = int(round(length * sr))
    out = np.zeros((ch, n_out), dtype=np.float32)
    half = int(round(crossfade * sr / 2))
    music_end = 0
    for k, (v, t) in enumerate(edits):
        o0 = int(round(v * sr))
        s0 = int(round(t * sr))
        o1 = n_out if k + 1 == len(edits) else int(round(edits[k + 1][0] * sr))
        pre = min(half, s0, o0) if k > 0 else 0  # the lead-in before the in point
        post = half if k + 1 < len(edits) else 0  # the tail past the out point
        a0, a1 = s0 - pre, min(n_track, s0 + (o1 - o0) + post)
        if a1 <= a0:
            continue
        seg = track[:, a0:a1].copy()
        if pre:
            seg[:, : 2 * pre] *= _ramp(min(2 * pre, seg.shape[1]))[None, : min(2 * pre, seg.shape[1])]
        if post:
            m = min(2 * post, seg.shape[1])
            seg[:, seg.shape[1] - m:] *= _ramp(m)[::-1][None, :]
        d0 = o0 - pre
        d1 = min(n_out, d0 + seg.shape[1])
        out[:, d0:d1] += seg[:, : d1 - d0]
        music_end = max(music_end, d1 if k + 1 == len(edits) else 0)
    if edits:
        fi = min(int(round(fade_in * sr)), n_out // 4)
        out[:, :fi] *= _ramp(fi)[None, :]
        end = music_end or n_out
        fo = min(int(round(fade_out * sr)), end // 4)
        if fo:
            out[:, end - fo: end] *= _ramp(fo)[::-1][None, :]
    return out


# --- the flow ----------------------------------------------------------------------------------


def _resolve_track(track: str | os.PathLike) -> _Track:
    from vmtool.store import open_collection, parse_item_ref, resolve_source

    spec = os.fspath(track)
    ref = parse_item_ref(spec)
    if ref is None:
        from vmtool.media import check_media_file
        from vmtool.store import is_hdf5

        p = check_media_file(spec)
        if is_hdf5(p):
            raise ParameterError("is a vmtool file: name one of its items as FILE.h5#ITEM-ID", p)
        return _Track(p, None, spec)
    file, item_id = ref
    if not Path(file).exists():
        raise VmtoolError("no such file", file)
    with open_collection(file) as col:
        it = col.item(col.index(item_id))
    media = resolve_source(it.source, file)
    if not media.exists():
        raise VmtoolError(f"the media file of item {item_id!r} is missing: {media} (rendering needs the "
                          "track's sound; move it back or re-extract the catalog)", file)
    return _Track(media, (Path(file), item_id), spec)


def _beat_grid(track: _Track, info) -> BeatGrid:
    """The catalog's beat grid of the item (as ``rank`` snaps to), else one detected in its
    audio exactly as ``vmtool segment -m bars`` would (same rate, resampler and method)."""
    if track.item is not None:
        from vmtool.ranking.section import beat_times
        from vmtool.store import open_collection

        with open_collection(track.item[0]) as col:
            times, kind = beat_times(col, col.index(track.item[1]))
        if times is not None and len(times):
            times = np.sort(np.asarray(times, dtype=np.float64))
            return BeatGrid(times, times if kind == "bars" else None, kind)
    from vmtool.media import load_audio
    from vmtool.segmentation.registry import AUDIO_RESAMPLER, AUDIO_SR
    from vmtool.segmentation.rhythm import bars

    seg = bars(load_audio(track.media, AUDIO_SR, info=info, resampler=AUDIO_RESAMPLER), AUDIO_SR)
    beats = np.asarray(seg.extra.get("beat_times", []), dtype=np.float64)
    if not len(beats):
        return BeatGrid(np.zeros(0), None, "none")
    return BeatGrid(beats, np.asarray(seg.extra.get("downbeat_times", []), dtype=np.float64), "detected")


def _catalog_for(track: _Track, catalog) -> Path | None:
    if catalog is not None:
        return Path(catalog)
    return None if track.item is None else track.item[0]


def _alignment(video: Path, track: _Track, catalog: Path, method: str, segments: str | None, device: str,
               progress: Progress | None):
    """Align the video (its segments, or *segments*) with the track (the catalog's segments)."""
    from vmtool.device import resolve_device
    from vmtool.query import QueryLoader, check_compatible
    from vmtool.ranking import align

    dev = resolve_device(device)
    q = QueryLoader(catalog, device=dev, segments=segments).load(str(video), "video", progress=progress)
    t = QueryLoader(catalog, device=dev).load(track.spec if track.item is not None else str(track.media), "audio",
                                              progress=progress)
    check_compatible(q, t, track.spec)
    for side, s, where in (("video", q, video), ("track", t, track.spec)):
        if s.lengths[0] == 0:
            raise ParameterError(f"the {side} has no {s.modality} segment embeddings to align", where)
    return align(q.segments(0), t.segments(0), method, query_spans=q.spans_of(0), target_spans=t.spans_of(0)), q


def render_preview(video, track, out, *, start=None, fit="section", keep_audio=0.0, catalog=None, progress=None,
                   device: str = "auto", crossfade: float = CROSSFADE, fade_in: float = FADE_IN,
                   fade_out: float = FADE_OUT, shots: str = SHOTS) -> RenderResult:
    """Write *video* with *track* as its sound, on the picture's terms (``vmtool render``).

    Parameters
    ----------
    video : path
        The video (its video stream is copied, not re-encoded).
    track : path or str
        A media file, or ``catalog.h5#id`` (the item's media file, as the catalog
        records it, is played).
    out : path
        The preview: ``.mp4`` (also ``.m4v``, ``.mov``, ``.mkv``); written atomically.
    start : float, optional
        Seconds into the track where the music starts; default the best section under
        the video (needs a catalog: the track's or *catalog*).
    fit : {"section", "cuts"}
        ``cuts``: re-edit the music so its sections change at the video's shot changes.
    keep_audio : float
        Gain (0 to 1) of the video's own sound mixed under the music; 0 drops it.
    catalog : path, optional
        The catalog whose recipe (extractors, segmentation, model) embeds the video and a
        media track for the alignment; default the track's own file.
    progress : vmtool.progress.Progress, optional
    device : str
        Torch device for embedding (``auto|cpu|cuda[:N]``).
    crossfade, fade_in, fade_out : float
        Seconds (see :func:`mix_pieces`).
    shots : str
        The video's shot segmentation for ``fit="cuts"`` (a ``vmtool segment`` method).

    Returns
    -------
    RenderResult

    Raises
    ------
    ParameterError
        An unknown *fit*, a bad *start*, *keep_audio* or fade, an output that is one of
        the inputs, a best section asked for without a catalog, or ``cuts`` on a track
        without a beat grid.
    MediaError
        The video has no video stream or cannot be read; the track has no sound.
    VmtoolError
        A missing file, or a catalog item whose media file is missing.
    """
    from vmtool.atomic import check_output_path
    from vmtool.errors import check_finite
    from vmtool.media import load_audio_channels, probe
    from vmtool.media.encode import REMUX_EXTENSIONS, remux_with_audio

    if fit not in FITS:
        raise ParameterError(f"unknown fit {fit!r}; use {' or '.join(FITS)}")
    keep_audio = check_finite("--keep-audio", keep_audio, 0.0, 1.0) if keep_audio else 0.0
    for name, value in (("--crossfade", crossfade), ("--fade-in", fade_in), ("--fade-out", fade_out)):
        if not (value >= 0 and math.isfinite(value)):
            raise ParameterError(f"{name} must be a number of seconds >= 0, got {value!r}")
    out = Path(out)
    if out.suffix.lower() not in REMUX_EXTENSIONS:
        raise ParameterError(f"unknown output extension {out.suffix!r} (a preview is written as "
                             f"{', '.join(REMUX_EXTENSIONS)})", out)
    vinfo = probe(video)
    if not vinfo.has_video:
        raise MediaError("has no video stream (the picture of a preview)", video)
    trk = _resolve_track(track)
    cat = _catalog_for(trk, catalog)
    inputs = [video, trk.media] + ([trk.item[0]] if trk.item else []) + ([cat] if cat is not None else [])
    check_output_path(out, inputs=inputs)
    if start is not None:
        start = float(start)
        if not (start >= 0 and math.isfinite(start)):
            raise ParameterError(f"--start must be a number of seconds >= 0, got {start!r}")
    if fit == "cuts" and cat is None:
        raise ParameterError("--fit cuts needs a catalog to align the video's shots with the track's sections "
                             "(pass --catalog CATALOG.h5)", trk.media)
    if start is None and cat is None:
        raise ParameterError("the best section needs a catalog to embed the video and the track like "
                             "(pass --catalog CATALOG.h5), or give the start with --start SECONDS", trk.media)
    length = vinfo.video_duration if math.isfinite(vinfo.video_duration) else vinfo.duration

    tinfo = probe(trk.media)
    if not tinfo.has_audio:
        raise MediaError("has no audio stream (the music of a preview)", trk.media)
    sr = tinfo.sample_rate if tinfo.sample_rate in (44100, 48000) else DEFAULT_SR
    music = load_audio_channels(trk.media, sr, channels=2, info=tinfo)
    track_duration = music.shape[1] / sr
    if start is not None and start >= track_duration:
        raise ParameterError(f"--start {start:g} s is past the end of the track ({track_duration:.2f} s)", trk.media)
    grid = _beat_grid(trk, tinfo)
    if fit == "cuts" and not grid.known:
        raise ParameterError("no beat found in the track: its music cannot be re-edited on beats "
                             "(use the default --fit section)", trk.media)

    # the video's segments: the catalog's segmentation (shots when it has no sound to segment), shots for cuts
    segments = shots if fit == "cuts" else (None if vinfo.has_audio else SHOTS)
    snap = "given"
    al = q = None
    if cat is not None and (start is None or fit == "cuts"):
        al, q = _alignment(Path(video), trk, cat, CUTS_METHOD if fit == "cuts" else SECTION_METHOD, segments,
                           device, progress)
    if start is None:
        from vmtool.ranking.section import place_section

        points, kind = grid.snap_points
        sec = place_section(al, q.spans_of(0), length, track_duration, points if len(points) else None, kind)
        if sec is None:
            raise ParameterError("the alignment matched no segment of the track to the video: give --start SECONDS",
                                 trk.media)
        start, snap = sec.start, sec.snap
    if fit == "section":
        edits, loops, padded = plan_section(start, length, track_duration, grid)
    else:
        edits, loops, padded = plan_cuts(q.spans_of(0)[:, 0], [e.target_span for e in al.edits], start, length,
                                         track_duration, grid)

    audio = mix_pieces(music, sr, edits, length, crossfade=crossfade, fade_in=fade_in, fade_out=fade_out)
    if keep_audio > 0:
        if vinfo.has_audio:
            own = load_audio_channels(video, sr, channels=2, info=vinfo)[:, : audio.shape[1]]
            audio[:, : own.shape[1]] += keep_audio * own
        else:
            warnings.warn(f"{video}: has no sound to keep under the music (--keep-audio ignored)", RuntimeWarning,
                          stacklevel=2)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 1.0:  # the mix (or the decoded track) would clip: scale it down as a whole
        audio *= 0.999 / peak
    if loops:
        where = "bar lines" if grid.bars is not None and len(grid.bars) >= 2 else "beats"
        warnings.warn(f"{trk.media}: the track ({track_duration:.2f} s, from {start:.2f} s) runs out before the "
                      f"video ({length:.2f} s): looped {loops} time(s), on {where}", RuntimeWarning, stacklevel=2)
    elif padded > 0:
        warnings.warn(f"{trk.media}: the track ({track_duration:.2f} s from {start:.2f} s) is shorter than the video "
                      f"({length:.2f} s) and has no beat grid to loop on: padded with {padded:.2f} s of silence",
                      RuntimeWarning, stacklevel=2)
    remux_with_audio(video, audio, sr, out)
    v_last, t_last = edits[-1]
    end = min(track_duration, t_last + (length - v_last))
    return RenderResult(out, float(start), float(end), float(length), fit, [(float(v), float(t)) for v, t in edits],
                        loops > 0, float(padded), snap, grid.source, trk.media)
