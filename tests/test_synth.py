"""vmtool.synth: the synthetic music, videos and corpora really have their stated truth."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from vmtool import synth
from vmtool.errors import FormatError, ParameterError
from vmtool.media import iter_frames, load_audio, probe

SR = 22050


def _tempo_ok(estimate: float, tempo: float, tol: float = 0.03) -> bool:
    return any(abs(estimate - m * tempo) <= tol * m * tempo for m in (0.5, 1.0, 2.0))


def _bar_features(y: np.ndarray, truth: synth.MusicTruth):
    """Per whole bar: RMS in dB, mean MFCC 1..19 and mean chroma."""
    import librosa

    hop = 512
    rms = librosa.feature.rms(y=y, hop_length=hop)[0]
    mfcc = librosa.feature.mfcc(y=y, sr=SR, hop_length=hop, n_mfcc=20)[1:]
    chroma = librosa.feature.chroma_stft(y=y, sr=SR, hop_length=hop)
    ft = librosa.frames_to_time(np.arange(rms.size), sr=SR, hop_length=hop)
    starts = truth.downbeat_times[truth.downbeat_times + truth.bar_period <= truth.duration + 1e-9]
    db, mf, ch = [], [], []
    for a in starts:
        m = (ft >= a + 0.05) & (ft < a + truth.bar_period - 0.05)
        db.append(10 * np.log10(np.mean(rms[m] ** 2)))
        mf.append(mfcc[:, m].mean(axis=1))
        ch.append(chroma[:, m].mean(axis=1))
    return starts, np.array(db), np.array(mf), np.array(ch)


# --- music ---------------------------------------------------------------------------


def test_music_truth_is_consistent(music_truth):
    t = music_truth
    assert t.tempo == 120.0 and t.duration == 30.0 and t.sr == SR
    np.testing.assert_allclose(t.beat_times, np.arange(60) * 0.5)
    np.testing.assert_allclose(t.downbeat_times, t.beat_times[::4])
    np.testing.assert_allclose(t.boundaries, [8.0, 16.0, 22.0])  # 3.75 bars per section, rounded to bars
    assert t.labels == ("A", "B", "A", "C")
    assert t.energies[0] == t.energies[2] and len(set(t.energies)) == 3
    # boundaries on bar lines
    assert np.allclose(np.mod(t.boundaries, t.bar_period), 0)
    assert t.section_index([0.0, 7.99, 8.0, 29.9]).tolist() == [0, 0, 1, 3]


def test_music_wav_signal(music_wav, music_truth):
    info = probe(music_wav)
    assert (info.sample_rate, info.channels, info.audio_codec) == (SR, 1, "pcm_s16le")
    assert info.duration == pytest.approx(30.0, abs=1e-3)
    y = load_audio(music_wav, SR)
    assert y.size == 30 * SR
    assert 0.85 < np.max(np.abs(y)) <= 0.9 + 1e-4  # peak-normalised to 0.9


def test_synth_music_in_memory():
    y, truth = synth.synth_music(duration=4.0, sections="A", seed=7)
    assert y.dtype == np.float32 and y.shape == (4 * SR,)
    assert np.max(np.abs(y)) <= 0.9
    assert truth.boundaries.size == 0 and truth.labels == ("A",)


@pytest.mark.parametrize("tempo", [120.0, 90.0, 140.0])
def test_beat_tracker_finds_tempo_and_beats(tempo, music_wav):
    import librosa

    if tempo == 120.0:
        y = load_audio(music_wav, SR)
        truth_beats = np.arange(60) * 0.5
    else:
        y, truth = synth.synth_music(duration=20.0, tempo=tempo, seed=11)
        truth_beats = truth.beat_times
    est, frames = librosa.beat.beat_track(y=y, sr=SR)
    est = float(np.atleast_1d(est)[0])
    assert _tempo_ok(est, tempo), (est, tempo)
    beats = librosa.frames_to_time(frames, sr=SR)
    err = np.abs(beats[:, None] - truth_beats[None, :]).min(axis=1)
    assert np.mean(err < 0.06) >= 0.9, err


def test_loudness_steps_at_section_boundaries(music_wav, music_truth):
    y = load_audio(music_wav, SR)
    starts, db, _, _ = _bar_features(y, music_truth)
    sec = music_truth.section_index(starts)
    # within a section the bar loudness is steady ...
    for s in range(len(music_truth.labels)):
        assert np.ptp(db[sec == s]) < 0.8, (s, db[sec == s])
    # ... and the biggest bar-to-bar steps are exactly the section boundaries
    steps = np.abs(np.diff(db))
    top = np.sort(starts[1:][np.argsort(steps)[::-1][: music_truth.boundaries.size]])
    np.testing.assert_allclose(top, music_truth.boundaries)
    # louder sections are those with more energy
    sec_db = [db[sec == s].mean() for s in range(len(music_truth.labels))]
    e = music_truth.energies
    for i in range(len(e)):
        for j in range(len(e)):
            if e[i] > e[j] + 0.05:
                assert sec_db[i] > sec_db[j] + 0.5, (sec_db, e)


def test_same_letter_same_material(music_wav, music_truth):
    y = load_audio(music_wav, SR)
    starts, db, mfcc, chroma = _bar_features(y, music_truth)
    sec = music_truth.section_index(starts)
    feat = np.hstack([mfcc / 10.0, 3 * chroma, db[:, None] / 3.0])
    first = {s: feat[sec == s] for s in range(4)}
    n = min(len(v) for v in first.values())

    def dist(a, b):  # bar k of one section against bar k of the other
        return float(np.linalg.norm(first[a][:n] - first[b][:n], axis=1).mean())

    same = dist(0, 2)  # A vs A
    assert same < 0.5 * dist(0, 1) and same < 0.5 * dist(0, 3)  # A vs B, A vs C
    # harmony changes too: the sections' mean chroma differ for different letters
    mean_ch = np.array([chroma[sec == s].mean(axis=0) for s in range(4)])
    mean_ch /= np.linalg.norm(mean_ch, axis=1, keepdims=True)
    assert mean_ch[0] @ mean_ch[2] > 0.98
    assert mean_ch[0] @ mean_ch[1] < mean_ch[0] @ mean_ch[2] - 0.02
    assert mean_ch[0] @ mean_ch[3] < mean_ch[0] @ mean_ch[2] - 0.02


def test_synth_music_is_deterministic():
    a, ta = synth.synth_music(duration=6.0, seed=3, sections="AB")
    b, tb = synth.synth_music(duration=6.0, seed=3, sections="AB")
    c, _ = synth.synth_music(duration=6.0, seed=4, sections="AB")
    assert np.array_equal(a, b) and ta.to_dict() == tb.to_dict()
    assert not np.array_equal(a, c)


def test_energy_and_key_options():
    y, t = synth.synth_music(duration=8.0, sections="AB", energy={"A": 0.5, "B": 1.0}, key=14)
    assert t.energies == (0.5, 1.0) and t.key == 2
    _, t = synth.synth_music(duration=8.0, sections="AB", energy=0.7)
    assert t.energies == (0.7, 0.7)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"duration": 3.0, "sections": "ABAC"}, "too few for 4 sections"),
        ({"tempo": 0}, "tempo must be"),
        ({"duration": -1}, "duration must be"),
        ({"timbre": 1.5}, "timbre must be in"),
        ({"sections": ""}, "sections must be"),
        ({"sections": "AB", "energy": [0.5]}, "energy has 1 values for 2 sections"),
        ({"sections": "AB", "energy": {"A": 0.5}}, "no level for section letter"),
        ({"energy": 1.5}, "energy must be"),
    ],
)
def test_synth_music_bad_parameters(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        synth.synth_music(**kwargs)


# --- video -----------------------------------------------------------------------------


def test_music_video_streams(music_video, music_video_truth):
    info = probe(music_video)
    assert info.has_audio and info.has_video
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.width, info.height, info.fps) == (160, 90, 25.0)
    assert info.n_frames == 500 == music_video_truth.n_frames
    assert info.duration == pytest.approx(20.0, abs=0.05)
    assert info.sample_rate == SR
    t = music_video_truth
    assert t.music.tempo == 120.0 and t.fps == 25.0 and t.size == (160, 90)
    # cuts every 2 bars and at every section boundary, all on bar lines
    assert set(np.round(t.music.boundaries, 6)) <= set(np.round(t.cut_times, 6))
    assert np.allclose(np.mod(t.cut_times, t.music.bar_period), 0)


def _frame_diffs(path):
    times, prev, diffs = [], None, []
    for t, (f,) in iter_frames(path, [None]):
        f = f.astype(np.int16)
        if prev is not None:
            diffs.append(np.abs(f - prev).mean())
            times.append(t)
        prev = f
    return np.array(times), np.array(diffs)


def test_frame_differences_peak_at_truth_cuts(music_video, music_video_truth):
    cuts = music_video_truth.cut_times
    assert cuts.size >= 5
    times, diffs = _frame_diffs(music_video)
    order = np.argsort(diffs)[::-1]
    found = np.sort(times[order[: cuts.size]])
    # the first frame of each new shot is the first at or after the cut
    np.testing.assert_allclose(found, np.ceil(cuts * 25 - 1e-6) / 25, atol=1e-3)
    # and clearly so: the weakest cut stands well above the strongest within-shot change
    assert diffs[order[cuts.size - 1]] > 2 * diffs[order[cuts.size]]


def test_brightness_follows_energy(music_video_truth):
    t = music_video_truth
    frames = synth.synth_video_frames(t.music, fps=5.0, cut_times=t.cut_times, seed=t.seed)
    times = np.arange(len(frames)) / 5.0
    value = frames.max(axis=3).mean(axis=(1, 2))  # HSV value, mostly the background's
    sec = t.music.section_index(times)
    per_sec = [value[sec == s].mean() for s in range(len(t.music.labels))]
    e = np.array(t.music.energies)
    for i in range(len(e)):
        for j in range(len(e)):
            if e[i] > e[j] + 0.1:
                assert per_sec[i] > per_sec[j], (per_sec, e)


def test_motion_follows_tempo():
    def motion(tempo):
        _, truth = synth.synth_music(duration=2.0, tempo=tempo, sections="A", seed=0)
        fr = synth.synth_video_frames(truth, fps=25.0, cut_times=[], seed=5).astype(np.int16)
        return np.abs(np.diff(fr, axis=0)).mean()

    assert motion(160.0) > 1.5 * motion(80.0)


def test_video_frames_deterministic_and_distinct_shots(music_truth):
    cuts, every = synth.bar_cuts(music_truth, every_bars=1)
    assert every == (1, 1, 1, 1) and np.allclose(cuts, np.arange(1, 15) * 2.0)
    a = synth.synth_video_frames(music_truth, fps=2.0, size=(64, 36), cut_times=cuts, seed=9)
    b = synth.synth_video_frames(music_truth, fps=2.0, size=(64, 36), cut_times=cuts, seed=9)
    c = synth.synth_video_frames(music_truth, fps=2.0, size=(64, 36), cut_times=cuts, seed=10)
    assert a.shape == (60, 36, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # frames 4k+3 and 4k+4 straddle a cut (2 fps, a cut every 2 s): neighbouring shots differ
    d = np.abs(a[4::4].astype(int) - a[3:-1:4].astype(int)).mean(axis=(1, 2, 3))
    assert d.min() > 15, d


def test_bar_cuts_follow_energy(music_truth):
    cuts, every = synth.bar_cuts(music_truth)
    assert every == tuple(1 if e > 0.8 else 2 if e > 0.6 else 4 for e in music_truth.energies)
    assert set(music_truth.boundaries) <= set(cuts)
    with pytest.raises(ParameterError, match="every_bars"):
        synth.bar_cuts(music_truth, every_bars=[1, 2])


# --- files -----------------------------------------------------------------------------


def test_video_only(video_only, video_only_truth):
    info = probe(video_only)
    assert info.has_video and not info.has_audio
    assert (info.width, info.height, info.fps, info.n_frames) == (160, 90, 25.0, 125)
    assert info.duration == pytest.approx(5.0, abs=0.05)
    np.testing.assert_allclose(video_only_truth.cut_times, [2.0, 4.0])


@pytest.mark.parametrize(
    "ext, codec, rate", [("wav", "pcm_s16le", SR), ("flac", "flac", SR), ("mp3", "mp3", SR), ("ogg", "opus", 48000)]
)
def test_audio_files(audio_files, audio_files_truth, ext, codec, rate):
    path = audio_files[ext]
    assert path.suffix == "." + ext
    info = probe(path)
    assert info.has_audio and not info.has_video
    assert info.audio_codec.startswith(codec) and info.sample_rate == rate and info.channels == 1
    assert info.duration == pytest.approx(5.0, abs=0.1)
    y = load_audio(path, SR)
    assert abs(y.size / SR - 5.0) < 0.1
    ref, _ = synth.synth_music(duration=5.0, sr=SR, tempo=120.0, sections="AB", seed=3)
    n = min(y.size, ref.size)
    if ext in ("wav", "flac"):  # lossless up to 16-bit quantisation
        assert np.max(np.abs(y[:n] - ref[:n])) < 1e-4
    else:  # lossy codecs: same loudness
        assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(ref**2)), rel=0.15)


def test_vfr_video(vfr_video, vfr_video_times):
    info = probe(vfr_video)
    assert info.has_video and info.has_audio and (info.width, info.height) == (160, 90)
    assert info.duration == pytest.approx(5.0, abs=0.1)
    times = np.array([t for t, _ in iter_frames(vfr_video, [(32, 18)])])
    np.testing.assert_allclose(times, vfr_video_times, atol=1e-3)
    steps = np.round(np.diff(times), 3)
    assert {0.033, 0.034, 0.1, 0.04} <= set(steps.tolist())


def test_odd_size_video(odd_size_video):
    info = probe(odd_size_video)
    assert (info.width, info.height, info.video_codec) == (161, 91, "mpeg4")
    assert info.has_audio and info.duration == pytest.approx(3.0, abs=0.1)
    frames = [f for _, (f, g) in iter_frames(odd_size_video, [None, (48, 27)])]
    assert len(frames) == 75 and frames[0].shape == (91, 161, 3)


def test_odd_size_with_libx264_uses_yuv444p(tmp_path):
    import av

    frames = [np.full((91, 161, 3), 40 * i, np.uint8) for i in range(5)]
    p = synth.write_media(tmp_path / "odd.mp4", frames=frames, fps=10.0)
    with av.open(str(p)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv444p"
    assert [f.shape for _, (f,) in iter_frames(p, [None])] == [(91, 161, 3)] * 5


def test_short_clip(short_clip):
    info = probe(short_clip)
    assert info.has_audio and info.has_video
    assert info.duration == pytest.approx(0.5, abs=0.05)
    assert sum(1 for _ in iter_frames(short_clip, [None])) == 13  # ceil(0.5 * 25)


def test_real_music_video(real_music_video):
    info = probe(real_music_video)
    assert info.has_audio and info.has_video and (info.width, info.height) == (160, 90)
    assert info.duration > 200


def test_write_media_clips_audio(tmp_path):
    y = np.array([0.0, 2.0, -3.0, 0.5] * 1000, dtype=np.float32)
    p = synth.write_media(tmp_path / "loud.wav", audio=y, sr=8000)
    z = load_audio(p, 8000)
    assert z.max() <= 1.0 and z.min() >= -1.0
    assert z[1] > 0.99 and z[2] < -0.99  # clipped, not wrapped around


def test_write_media_stereo_audio_only_mp4(tmp_path):
    y = np.zeros((2, SR), np.float32)
    p = synth.write_media(tmp_path / "stereo.m4a", audio=y, sr=SR)
    info = probe(p)
    assert info.channels == 2 and not info.has_video


@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("x.mp4", {}, "nothing to write"),
        ("x.xyz", {"audio": np.zeros(10)}, "unknown output extension"),
        ("x.wav", {"frames": [np.zeros((4, 4, 3), np.uint8)]}, "cannot hold video"),
        ("x.mp4", {"frames": []}, "frames is empty"),
        ("x.mp4", {"frames": [np.zeros((4, 4), np.uint8)]}, "must be uint8 of shape"),
        ("x.mp4", {"frames": [np.zeros((4, 4, 3), np.float32)]}, "must be uint8 of shape"),
        ("x.mp4", {"frames": [np.zeros((4, 4, 3), np.uint8)] * 2, "times": [0.5, 0.2]}, "times must increase"),
        ("x.mp4", {"frames": [np.zeros((4, 4, 3), np.uint8)] * 3, "times": [0.0, 0.1]}, "fewer values"),
        ("x.wav", {"audio": np.zeros((3, 10))}, "audio must have shape"),
    ],
)
def test_write_media_bad_input(tmp_path, name, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        synth.write_media(tmp_path / name, **kwargs)
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def test_write_media_is_atomic_when_the_stream_fails(tmp_path):
    def frames():
        for i in range(10):
            yield np.zeros((8, 8, 3), np.uint8)
        yield np.zeros((6, 8, 3), np.uint8)

    with pytest.raises(ParameterError, match="frame 10 has shape"):
        synth.write_media(tmp_path / "x.mp4", frames=frames())
    assert list(tmp_path.iterdir()) == []


# --- clips and corpora -------------------------------------------------------------


def test_make_clip_audio_only(tmp_path):
    t = synth.make_clip(tmp_path / "a.flac", duration=2.0, seed=1, with_video=False)
    info = probe(t.path)
    assert info.has_audio and not info.has_video and t.cut_times.size == 0
    assert not math.isfinite(t.fps) and t.size == (0, 0)
    with pytest.raises(ParameterError, match="with_audio or with_video"):
        synth.make_clip(tmp_path / "b.mp4", with_audio=False, with_video=False)


def test_make_corpus(tmp_path):
    clips = synth.make_corpus(tmp_path / "corpus", 3, duration=3.0, seed=5, size=(64, 36))
    manifest = tmp_path / "corpus" / "truth.json"
    data = json.loads(manifest.read_text())
    assert data["format"] == "vmtool-synth-corpus" and data["version"] == 1
    assert [c["path"] for c in data["clips"]] == ["clip_0000.mp4", "clip_0001.mp4", "clip_0002.mp4"]
    back = synth.read_manifest(tmp_path / "corpus")
    assert [c.to_dict() for c in back] == [c.to_dict() for c in clips]
    for c in clips:
        info = probe(c.path)
        assert info.has_audio and info.has_video and (info.width, info.height) == (64, 36)
        assert info.duration == pytest.approx(3.0, abs=0.05)
        assert 80 <= c.music.tempo <= 160
    assert len({(c.music.tempo, c.music.key) for c in clips}) == 3  # each clip its own music
    # same seed, same corpus
    again = synth.make_corpus(tmp_path / "again", 3, duration=3.0, seed=5, size=(64, 36))
    strip = lambda d: {k: v for k, v in d.items() if k != "path"}  # noqa: E731
    assert [strip(c.to_dict()) for c in again] == [strip(c.to_dict()) for c in clips]


def test_same_seed_same_bytes(tmp_path):
    """Generated media depend on the seed only: libx264's MB-tree made identical runs
    in one process write different bytes (the demo's -j 1 / -j 2 corpora differed)."""
    runs = [synth.make_corpus(tmp_path / f"r{k}", 5, duration=3.0, seed=0) for k in range(3)]
    data = [[Path(c.path).read_bytes() for c in clips] for clips in runs]
    assert data[0] == data[1] == data[2]


def test_read_manifest_refuses_other_files(tmp_path):
    p = tmp_path / "truth.json"
    p.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(FormatError, match="not a vmtool-synth-corpus manifest"):
        synth.read_manifest(p)
    p.write_text(json.dumps({"format": "vmtool-synth-corpus", "version": 99, "clips": []}))
    with pytest.raises(FormatError, match="unsupported manifest version 99"):
        synth.read_manifest(p)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"video_codec": "nope"}, "cannot set up the video encoder 'nope' \\(unknown encoder\\)"),
        ({"video_codec": "aac"}, "cannot set up the video encoder 'aac'"),
        ({"pix_fmt": "yuv420p"}, "yuv420p needs an even width and height, got 161x91"),
        ({"audio": np.zeros(100), "audio_codec": "libx264"}, "'libx264' \\(not an audio encoder\\)"),
    ],
)
def test_write_media_bad_encoder(tmp_path, kwargs, match):
    frames = [np.zeros((91, 161, 3), np.uint8)] * 3
    with pytest.raises(ParameterError, match=match):
        synth.write_media(tmp_path / "x.mp4", frames=frames, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_video_frames_bad_cuts(music_truth):
    with pytest.raises(ParameterError, match="cut_times must be finite, positive and increasing"):
        next(synth.iter_video_frames(music_truth, cut_times=[4.0, 2.0]))
    with pytest.raises(ParameterError, match="size must be at least 2x2"):
        next(synth.iter_video_frames(music_truth, size=(1, 90)))


def test_emotion_clips_and_their_labels(tmp_path):
    from vmtool.synth import EMOTIONS, make_corpus

    clips = make_corpus(tmp_path, 4, duration=2.0, seed=0, size=(32, 18), emotions=True, video_follows="emotion")
    assert [c.emotion for c in clips] == list(EMOTIONS)
    for c in clips:
        e = EMOTIONS[c.emotion]
        assert c.music.mode == e["mode"] and e["tempo"][0] <= c.music.tempo <= e["tempo"][1]
        assert e["timbre"][0] <= c.music.timbre <= e["timbre"][1]
    lines = (tmp_path / "labels.csv").read_text().splitlines()
    assert lines[0] == "file,video_emotion,music_emotion,polarity"
    assert lines[3] == "clip_0002.mp4,sad,sad,-1"
    assert [c.emotion for c in synth.read_manifest(tmp_path / "truth.json")] == list(EMOTIONS)
