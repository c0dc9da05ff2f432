"""Media inputs as music libraries hold them: songs with cover art, folders, mixed modalities.

A song's cover art (ID3 APIC in mp3, a PICTURE block in flac, ``covr`` in m4a, a
``METADATA_BLOCK_PICTURE`` comment in ogg) is demuxed by FFmpeg as a one-frame video
stream flagged ``attached_pic``. It is not a video: such a file is audio-only for
probing, extraction, segmentation and ranking.
"""

from __future__ import annotations

import math
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from vmtool import media
from vmtool.cli import app
from vmtool.store import open_collection

COVER_EXTS = ["mp3", "flac", "m4a", "ogg"]


def run(*args, code=0):
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == code, r.output
    return r


@pytest.mark.parametrize("ext", COVER_EXTS)
def test_cover_art_is_an_attached_picture_not_a_video(cover_art_files, audio_files_truth, ext):
    path = cover_art_files[ext]
    with av.open(str(path)) as c:  # the fixture really carries a picture stream
        pics = [s for s in c.streams.video if s.disposition & av.stream.Disposition.attached_pic]
        assert len(pics) == 1
    info = media.probe(path)
    assert info.has_audio and not info.has_video
    assert math.isnan(info.fps) and info.video_codec == "" and info.width == 0
    y = media.load_audio(path, 22050)
    assert y.size / 22050 == pytest.approx(audio_files_truth.duration, abs=0.15)


@pytest.mark.parametrize("ext", COVER_EXTS)
def test_extract_and_segment_a_song_with_cover_art(tmp_path, cover_art_files, ext):
    path = cover_art_files[ext]
    out = tmp_path / "songs.h5"
    run("extract", path, "-o", out, "-q")  # default extractors: the audio ones apply
    with open_collection(out) as c:
        item = c.item(0)
        assert (item.has_audio, item.has_video) == (True, False)
        assert c.feature("handcrafted").rows(0).shape[0] in (5, 6)  # encoders pad a few ms
    seg = tmp_path / "seg.h5"
    run("segment", path, "-m", "fixed", "--window", "1", "-o", seg, "-q")
    with open_collection(seg) as c:
        item = c.item(0)
        assert (item.has_audio, item.has_video) == (True, False)
        assert math.isnan(item.fps)
    r = run("segment", path, "-m", "transnet", "-o", tmp_path / "shots.h5", "-q", code=1)
    assert r.stderr.strip() == f"Error: {path}: has no video stream, needed by transnet"


# --- folders: a music library as it is ----------------------------------------------------------


@pytest.fixture
def library(tmp_path, cover_art_files, audio_files, video_only, short_clip):
    """A mixed folder: songs (some with cover art), videos, and what else lies in such trees."""
    lib = tmp_path / "library"
    (lib / "Album" / "CD2").mkdir(parents=True)
    (lib / ".cache").mkdir()
    files = {
        "Album/01 song.mp3": cover_art_files["mp3"],
        "Album/CD2/02 song.FLAC": cover_art_files["flac"],  # extensions in any case
        "clips/clip.mp4": short_clip,
        "clips/silent.mp4": video_only,
        "loose.ogg": audio_files["ogg"],
        ".cache/old.mp3": audio_files["mp3"],
    }
    for rel, src in files.items():
        (lib / rel).parent.mkdir(parents=True, exist_ok=True)
        (lib / rel).write_bytes(src.read_bytes())
    (lib / "Album" / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (lib / "Album" / "notes.txt").write_text("liner notes\n")
    (lib / ".vmtool-tmp-1234-library.h5").write_bytes(b"")
    return lib


def test_extract_walks_a_mixed_folder(tmp_path, library):
    out = tmp_path / "lib.h5"
    r = run("extract", library, "-a", "handcrafted", "-v", "color", "-o", out)
    with open_collection(out) as c:
        got = {Path(s).relative_to(library).as_posix(): (it.has_audio, it.has_video)
               for s, it in zip(c.column("source"), c.items())}
        assert [Path(s).relative_to(library).as_posix() for s in c.column("source")] == [
            "loose.ogg", "Album/01 song.mp3", "Album/CD2/02 song.FLAC", "clips/clip.mp4", "clips/silent.mp4"]
        assert got == {"loose.ogg": (True, False), "Album/01 song.mp3": (True, False),
                       "Album/CD2/02 song.FLAC": (True, False), "clips/clip.mp4": (True, True),
                       "clips/silent.mp4": (False, True)}
        # each item has the features of the modalities it has, and only those
        hc, col = c.feature("handcrafted"), c.feature("color")
        assert [hc.present(i) for i in range(5)] == [True, True, True, True, False]
        assert [col.present(i) for i in range(5)] == [False, False, False, True, True]
    lines = r.stderr.strip().splitlines()
    assert lines[:2] == [
        f"skipped 2 path(s), hidden (name starts with a dot): {library / '.cache'}, "
        f"{library / '.vmtool-tmp-1234-library.h5'}",
        f"skipped 2 path(s), not media (see --glob): {library / 'Album' / 'cover.jpg'}, "
        f"{library / 'Album' / 'notes.txt'}",
    ]
    assert lines[-1] == f"{out}: 5 item(s) added"


def test_glob_selects_files_in_folders(tmp_path, library):
    out = tmp_path / "mp3.h5"
    run("extract", library, "--glob", "*.MP3", "--glob", "clip.*", "-a", "handcrafted", "-v", "color", "-q", "-o", out)
    with open_collection(out) as c:
        assert [Path(s).name for s in c.column("source")] == ["01 song.mp3", "clip.mp4"]


def test_a_folder_without_media_is_an_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("nothing here\n")
    r = run("extract", empty, "-o", tmp_path / "x.h5", "-q", code=1)
    assert r.stderr.strip().splitlines()[-1].startswith(f"Error: {empty}: no media file found (patterns: *.aac ")
    assert not (tmp_path / "x.h5").exists()
