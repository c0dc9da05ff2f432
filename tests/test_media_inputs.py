"""Media inputs as music libraries hold them: songs with cover art, folders, mixed modalities.

A song's cover art (ID3 APIC in mp3, a PICTURE block in flac, ``covr`` in m4a, a
``METADATA_BLOCK_PICTURE`` comment in ogg) is demuxed by FFmpeg as a one-frame video
stream flagged ``attached_pic``. It is not a video: such a file is audio-only for
probing, extraction, segmentation and ranking.
"""

from __future__ import annotations

import math

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
