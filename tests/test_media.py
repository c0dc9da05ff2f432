"""Media probing and streamed decoding (PyAV)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vmtool import media
from vmtool.errors import MediaError, ParameterError, VmtoolError


def test_probe_music_video(music_video, music_video_truth):
    info = media.probe(music_video)
    assert info.has_audio and info.has_video
    assert info.fps == pytest.approx(25.0)
    assert (info.width, info.height) == tuple(music_video_truth.size)
    assert info.duration == pytest.approx(music_video_truth.music.duration, abs=0.1)
    assert info.sample_rate > 0 and info.video_codec == "h264"


def test_audio_is_streamed_mono_float32_at_requested_rate(music_video, music_video_truth):
    sr = 12000
    blocks = list(media.iter_audio(music_video, sr, block_seconds=3.0))
    assert all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    assert max(b.size for b in blocks) <= 3 * sr  # bounded blocks
    total = sum(b.size for b in blocks)
    assert total / sr == pytest.approx(music_video_truth.music.duration, abs=0.1)


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3", "ogg"])
def test_audio_only_formats(audio_files, audio_files_truth, ext):
    path = audio_files[ext]
    info = media.probe(path)
    assert info.has_audio and not info.has_video and math.isnan(info.fps)
    y = media.load_audio(path, 22050)
    # mp3 and ogg encoders add a little padding
    assert y.size / 22050 == pytest.approx(audio_files_truth.duration, abs=0.15)
    assert 0.05 < np.abs(y).max() < 1.5


def test_video_without_audio(video_only):
    info = media.probe(video_only)
    assert info.has_video and not info.has_audio
    with pytest.raises(MediaError, match="has no audio stream"):
        next(media.iter_audio(video_only, 16000))


def test_frames_at_several_sizes_in_one_pass(music_video, music_video_truth):
    n = 0
    last = -1.0
    for t, (native, small) in media.iter_frames(music_video, [None, (48, 27)]):
        assert t > last
        last = t
        assert native.shape == (music_video_truth.size[1], music_video_truth.size[0], 3)
        assert small.shape == (27, 48, 3) and small.dtype == np.uint8
        n += 1
    assert n == music_video_truth.n_frames


def test_variable_frame_rate_times(vfr_video, vfr_video_times):
    times = np.array([t for t, _ in media.iter_frames(vfr_video, [(32, 18)])])
    np.testing.assert_allclose(times, vfr_video_times, atol=1e-3)


def test_odd_size_video(odd_size_video):
    info = media.probe(odd_size_video)
    assert (info.width % 2, info.height % 2) == (1, 1)
    t, (native, scaled) = next(media.iter_frames(odd_size_video, [None, (64, 36)]))
    assert native.shape == (info.height, info.width, 3) and scaled.shape == (36, 64, 3)


def test_half_second_clip(short_clip):
    info = media.probe(short_clip)
    assert info.duration == pytest.approx(0.5, abs=0.1)
    assert media.load_audio(short_clip, 16000).size > 0.4 * 16000
    assert len(list(media.iter_frames(short_clip, [(48, 27)]))) >= 10


def test_bad_files(tmp_path, music_video):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty file"):
        media.probe(empty)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    with pytest.raises(MediaError, match="not a media file PyAV can read"):
        media.probe(text)
    with pytest.raises(VmtoolError, match="no such file"):
        media.probe(tmp_path / "absent.mp4")


def test_truncated_file_is_an_error(tmp_path, music_video):
    data = music_video.read_bytes()
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError) as info:
        m = media.probe(cut)
        for _ in media.iter_frames(cut, [(48, 27)], info=m):
            pass
        list(media.iter_audio(cut, 16000, info=m))
    assert str(cut) in str(info.value)


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3"])
def test_librosa_resampler_gives_librosa_load_signal(audio_files, ext, tmp_path):
    """resampler="librosa" decodes as librosa.load, which msaf uses: the same samples
    (WAV, FLAC: bit for bit; MP3: libsndfile's and FFmpeg's decoders differ by ~1e-6)."""
    import librosa
    import soundfile

    path = audio_files[ext]
    if ext == "wav":  # a stereo 44.1 kHz file: the downmix and soxr's resampling are exercised
        y, _ = soundfile.read(path, dtype="float32")
        path = tmp_path / "stereo.wav"
        soundfile.write(path, np.stack([y, -0.5 * y[::-1]], axis=1), 44100, subtype="PCM_16")
    ours = media.load_audio(path, 22050, resampler="librosa")
    theirs, _ = librosa.load(path, sr=22050)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    if ext == "mp3":
        assert np.max(np.abs(ours - theirs)) < 1e-4
    else:
        np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(ParameterError, match="unknown resampler 'sox'; use ffmpeg, librosa"):
        media.load_audio(path, 22050, resampler="sox")


@pytest.mark.parametrize("orig_sr,n", [(44100, 132307), (48000, 96001), (8000, 8003), (32000, 1), (44100, 5)])
def test_the_librosa_resampler_is_librosas_soxr_hq_bit_for_bit(orig_sr, n):
    import librosa

    from vmtool.media.decode import _resample_soxr_hq

    y = (0.3 * np.random.default_rng(n).standard_normal(n)).astype(np.float32)
    ours = _resample_soxr_hq(y, orig_sr, 22050)
    theirs = librosa.resample(y, orig_sr=orig_sr, target_sr=22050, res_type="soxr_hq")
    assert ours.dtype == theirs.dtype and ours.tobytes() == theirs.tobytes()


def test_decoding_as_librosa_does_not_import_librosa(music_video):
    # a media query's audio is decoded by the process that extracts, which has no librosa
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import vmtool

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(vmtool.__file__).resolve().parents[1]),
                                         *filter(None, [env.get("PYTHONPATH")])])
    code = (f"import json, sys\nfrom vmtool import media\ny = media.load_audio({str(music_video)!r}, 22050, "
            "resampler='librosa')\nprint(json.dumps([len(y), 'librosa' in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    n, loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert n > 22050 * 19 and not loaded


def test_non_finite_audio_that_needs_resampling_is_a_media_error(tmp_path):
    import soundfile

    y = np.zeros(44100, dtype=np.float32)
    y[1000] = np.nan
    path = tmp_path / "nan.wav"
    soundfile.write(path, y, 44100, subtype="FLOAT")
    with pytest.raises(MediaError) as err:
        media.load_audio(path, 22050, resampler="librosa")
    assert str(err.value) == f"{path}: decoded audio holds non-finite samples (NaN or inf); it cannot be resampled"
