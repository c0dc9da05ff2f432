"""``vmtool render``: previews decoded back — duration, the copied picture, edits on beats, fades."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool.cli import app
from vmtool.render import BeatGrid, _ramp, mix_pieces, plan_cuts, plan_section

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def video_packets(path):
    """(bytes, pts in s, dts in s) of every packet of the first video stream."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [(bytes(p), float(p.pts * p.time_base), float(p.dts * p.time_base)) for p in c.demux(s)
                if p.dts is not None]


def stream_end(path, kind):
    """End of the last frame of the first *kind* stream, seconds, from its packets."""
    with av.open(str(path)) as c:
        s = getattr(c.streams, kind)[0]
        return max(float((p.pts + p.duration) * p.time_base) for p in c.demux(s) if p.dts is not None)


def decoded_audio(path, sr=22050):
    from vmtool.media import load_audio

    return load_audio(path, sr)


def near(x, grid, tol):
    return bool(np.min(np.abs(np.asarray(grid) - x)) <= tol)


# --- the formulas, on arrays -------------------------------------------------------------------------


def test_equal_power_crossfade_keeps_the_summed_power():
    """Equal-power: the incoming gain is sin, the outgoing cos of the same angle, so g_in^2 + g_out^2 = 1."""
    g = _ramp(64).astype(np.float64)
    assert np.allclose(g ** 2 + g[::-1] ** 2, 1.0, atol=1e-6)
    assert g[0] < 0.05 and g[-1] > 0.999 and np.all(np.diff(g) > 0)


GRID = BeatGrid(beats=np.arange(0.5, 30.0, 0.5), bars=np.arange(0.5, 30.0, 2.0), source="test")


def test_plan_section_plays_one_piece_when_the_track_is_long_enough():
    assert plan_section(4.5, 10.0, 30.0, GRID) == ([(0.0, 4.5)], 0, 0.0)


def test_plan_section_loops_a_short_track_on_bar_lines():
    edits, loops, padded = plan_section(0.5, 20.0, 7.0, GRID)  # bars at 0.5, 2.5, 4.5, 6.5
    assert loops >= 3 and padded == 0.0
    # every loop leaves the track at its last bar line (6.5 s) and re-enters at its first (0.5 s)
    for (v0, t0), (v1, t1) in zip(edits, edits[1:]):
        assert t0 + (v1 - v0) == pytest.approx(6.5) and t1 == pytest.approx(0.5)
    assert edits[-1][1] + (20.0 - edits[-1][0]) <= 7.0


def test_plan_section_pads_with_silence_without_a_beat_grid():
    none = BeatGrid(np.zeros(0), None, "none")
    assert plan_section(1.0, 10.0, 7.0, none) == ([(0.0, 1.0)], 0, pytest.approx(4.0))


def test_plan_cuts_lands_sections_on_shot_changes_on_beats():
    shots = np.array([0.0, 3.1, 7.4, 9.0])
    # shot 1 wants the section at 12 s, shot 2 the one at 20.2 s, shot 3 is where shot 2's music already plays
    targets = [(2.5, 6.5), (12.0, 16.0), (20.2, 24.0), (21.0, 24.0)]
    edits, loops, padded = plan_cuts(shots, targets, 2.5, 12.0, 30.0, GRID)
    assert loops == 0 and padded == 0.0
    assert [round(t, 3) for _, t in edits] == [2.5, 12.0, 20.0]  # 20.2 s entered at its nearest beat
    for k, ((v0, t0), (v1, t1)) in enumerate(zip(edits, edits[1:])):
        out = t0 + (v1 - v0)  # where the piece before the edit leaves the track
        assert near(out, GRID.beats, 1e-9) and near(t1, GRID.beats, 1e-9)
        assert abs(v1 - shots[k + 1]) <= 0.25 + 1e-9  # within half a beat of the shot change


def test_plan_cuts_refuses_a_track_without_beats():
    from vmtool.errors import ParameterError

    with pytest.raises(ParameterError, match="no beat grid"):
        plan_cuts(np.array([0.0, 2.0]), [None, None], 0.0, 4.0, 10.0, BeatGrid(np.zeros(0)))


def test_mix_pieces_puts_each_piece_at_its_video_time():
    sr = 1000
    track = np.tile(np.arange(30 * sr, dtype=np.float32) / sr, (2, 1))  # each sample holds its own time
    edits = [(0.0, 2.0), (3.0, 10.0)]
    out = mix_pieces(track, sr, edits, 6.0, crossfade=0.04, fade_in=0.0, fade_out=0.0)
    assert out.shape == (2, 6000)
    assert out[0, 1000] == pytest.approx(3.0) and out[0, 2900] == pytest.approx(4.9)  # piece 1: 2 s + video time
    assert out[0, 3100] == pytest.approx(10.1) and out[0, 5999] == pytest.approx(12.999)  # piece 2
    faded = mix_pieces(np.ones((2, 30 * sr), np.float32), sr, edits, 6.0, fade_in=0.1, fade_out=1.0)
    assert faded[0, 0] < 0.05 and faded[0, 500] == pytest.approx(1.0, abs=1e-6) and faded[0, -1] < 0.05


# --- rendered files, decoded back ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def start_preview(tmp_path_factory, music_video, music_wav):
    out = tmp_path_factory.mktemp("render") / "preview.mp4"
    res = run("render", music_video, music_wav, "--start", "4", "-o", out, "--format", "json", "-q")
    assert res.exit_code == 0, res.stderr
    return out, json.loads(res.stdout)


def test_preview_copies_the_picture_and_lasts_the_video(start_preview, music_video):
    out, rep = start_preview
    assert video_packets(out) == video_packets(music_video)  # stream copy: same bytes, same times
    fps = 25.0
    assert abs(stream_end(out, "audio") - stream_end(music_video, "video")) <= 1 / fps
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.name == "aac" and c.format.name.startswith("mov,mp4")
        assert abs(c.duration / 1e6 - stream_end(music_video, "video")) <= 1 / fps
    assert rep["fit"] == "section" and rep["edits"] == [[0.0, 4.0]] and rep["snap"] == "given"
    assert rep["duration"] == pytest.approx(20.0) and rep["looped"] is False


def test_preview_plays_the_track_from_start_with_fades(start_preview, music_wav):
    out, _ = start_preview
    sr = 22050
    y = decoded_audio(out, sr)
    ref = decoded_audio(music_wav, sr)
    a, b = y[int(2 * sr): int(6 * sr)], ref[int(6 * sr): int(10 * sr)]  # video 2-6 s is track 6-10 s
    assert np.corrcoef(a, b)[0, 1] > 0.95

    def rms(x):
        return float(np.sqrt(np.mean(x ** 2)))

    n = len(y)
    assert rms(y[: int(0.01 * sr)]) < 0.3 * rms(y[int(0.3 * sr): int(0.6 * sr)])  # fade in
    end = int(20.0 * sr)
    assert rms(y[end - int(0.05 * sr): min(n, end)]) < 0.3 * rms(y[end - int(1.6 * sr): end - int(1.2 * sr)])


def test_a_short_track_is_looped_on_its_beats(tmp_path, music_video, audio_files, audio_files_truth):
    out = tmp_path / "looped.mp4"
    res = run("render", music_video, audio_files["wav"], "--start", "0", "-o", out, "--format", "json")
    assert res.exit_code == 0, res.stderr
    rep = json.loads(res.stdout)
    assert rep["looped"] is True and rep["padded"] == 0.0
    assert f"Warning: {audio_files['wav']}: the track (5.00 s, from 0.00 s) runs out before the video (20.00 s): " \
           "looped" in res.stderr
    beats = audio_files_truth.beat_times
    edits = rep["edits"]
    for (v0, t0), (v1, t1) in zip(edits, edits[1:]):  # out and in points on the track's real beats
        assert near(t0 + (v1 - v0), beats, 0.05) and near(t1, beats, 0.05)
    assert abs(stream_end(out, "audio") - stream_end(music_video, "video")) <= 1 / 25


def test_keep_audio_mixes_the_videos_sound_under(tmp_path, music_video, music_wav):
    sr = 22050
    quiet = tmp_path / "q.mp4"
    mixed = tmp_path / "m.mp4"
    assert run("render", music_video, music_wav, "--start", "4", "-o", quiet, "-q").exit_code == 0
    res = run("render", music_video, music_wav, "--start", "4", "--keep-audio", "0.5", "-o", mixed, "-q")
    assert res.exit_code == 0, res.stderr
    own = decoded_audio(music_video, sr)[sr: 15 * sr]
    diff = decoded_audio(mixed, sr)[sr: 15 * sr] - decoded_audio(quiet, sr)[sr: 15 * sr]
    assert np.corrcoef(diff, own)[0, 1] > 0.9  # what was added is the video's own sound
    assert np.std(diff) == pytest.approx(0.5 * np.std(own), rel=0.15)


# --- with a catalog: the best section and --fit cuts ---------------------------------------------------


@pytest.fixture(scope="module")
def bars_catalog(tmp_path_factory):
    """Four 8-s clips: handcrafted + colour features (``extract`` measures each track's beat
    grid), 2-s windows (the segments the tiny model embeds); and a 6-s query video outside
    it, a shot per bar."""
    from vmtool.synth import make_clip, make_corpus

    d = tmp_path_factory.mktemp("render-catalog")
    truths = make_corpus(d / "clips", 4, duration=8.0, size=(64, 36), seed=5, tempo_range=(110.0, 130.0))
    clips = [Path(t.path) for t in truths]
    feats = d / "feats.h5"
    for args in (("extract", *clips, "-a", "handcrafted", "-v", "color", "-o", feats, "-q"),
                 ("segment", feats, "-m", "fixed", "--window", "2", "-o", feats, "-q"),
                 ("train", feats, "-o", d / "model.pt", "--level", "segment", "--segments", "fixed", "--epochs", "2",
                  "--audio-layers", "16", "--video-layers", "16", "-b", "8", "--val-fraction", "0.25", "-q"),
                 ("embed", feats, "--model", d / "model.pt", "-o", d / "catalog.h5", "-q")):
        res = run(*args)
        assert res.exit_code == 0, (args[0], res.stderr)
    query = make_clip(d / "query.mp4", duration=6.0, seed=9, size=(64, 36), tempo=120.0, cut_every_bars=1)
    return truths, d / "catalog.h5", query


def test_best_section_is_the_one_rank_prints(bars_catalog, tmp_path):
    truths, cat, query = bars_catalog
    video, track_id = query.path, Path(truths[1].path).stem
    res = run("rank", video, cat, "-k", "4", "--format", "json", "-q")
    assert res.exit_code == 0, res.stderr
    ranked = {r["id"]: r for r in json.loads(res.stdout)["results"]}
    out = tmp_path / "best.mp4"
    res = run("render", video, f"{cat}#{track_id}", "-o", out, "--format", "json", "-q")
    assert res.exit_code == 0, res.stderr
    rep = json.loads(res.stdout)
    assert rep["start"] == pytest.approx(ranked[track_id]["section"]["start"], abs=1e-3)
    assert rep["snap"] == ranked[track_id]["section"]["snap"] == rep["grid"] == "measured-grid"
    assert video_packets(out) == video_packets(video)


def test_fit_cuts_edits_on_beats_at_the_shot_changes(bars_catalog, tmp_path):
    truths, cat, video = bars_catalog
    track = truths[2]
    out = tmp_path / "cuts.mp4"
    res = run("render", video.path, f"{cat}#{Path(track.path).stem}", "--fit", "cuts", "-o", out, "--format", "json",
              "-q")
    assert res.exit_code == 0, res.stderr
    rep = json.loads(res.stdout)
    assert rep["fit"] == "cuts" and len(rep["edits"]) >= 2, rep
    beats = track.music.beat_times
    edits = rep["edits"]
    period = 60.0 / track.music.tempo
    for (v0, t0), (v1, t1) in zip(edits, edits[1:]):
        assert near(t0 + (v1 - v0), beats, 0.05) and near(t1, beats, 0.05)  # never a cut off the beat
        assert near(v1, video.cut_times, period / 2 + 0.05)  # at a shot change, within half a beat
    sr = 22050
    y, ref = decoded_audio(out, sr), decoded_audio(track.path, sr)
    for v, t in edits[1:]:  # what plays after each edit is the track from its in point
        a = y[int((v + 0.05) * sr): int((v + 0.45) * sr)]
        b = ref[int((t + 0.05) * sr): int((t + 0.45) * sr)]
        assert np.corrcoef(a, b)[0, 1] > 0.9
    assert video_packets(out) == video_packets(video.path)
    assert abs(stream_end(out, "audio") - stream_end(video.path, "video")) <= 1 / video.fps


def test_an_edit_between_unrelated_tones_does_not_click():
    """Without a crossfade, jumping between two tones of other phases is a step; with it the
    largest sample-to-sample change stays within what the two tones' own slopes allow
    (equal-power gains sum to at most sqrt(2), plus the ramps' own slope)."""
    sr = 8000
    n = np.arange(10 * sr)
    track = np.concatenate([np.sin(2 * np.pi * 220 * n[:5 * sr] / sr), 0.8 * np.cos(2 * np.pi * 330 * n[5 * sr:] / sr)])
    track = np.tile(track.astype(np.float32), (2, 1))
    edits = [(0.0, 1.0001), (1.0, 7.0)]  # leaves the 220-Hz tone mid-cycle, enters the 330-Hz one at its peak
    smooth = max(np.abs(np.diff(track[0, : 5 * sr])).max(), np.abs(np.diff(track[0, 5 * sr:])).max())
    hard = mix_pieces(track, sr, edits, 2.0, crossfade=0.0, fade_in=0.0, fade_out=0.0)
    soft = mix_pieces(track, sr, edits, 2.0, crossfade=0.04, fade_in=0.0, fade_out=0.0)
    assert np.abs(np.diff(hard[0])).max() > 3 * smooth
    assert np.abs(np.diff(soft[0])).max() <= 1.5 * smooth


def test_a_short_track_without_beats_is_padded_with_silence(tmp_path, music_video):
    from vmtool.synth import write_media

    hum = write_media(tmp_path / "hum.wav", audio=np.zeros(3 * 22050, dtype=np.float32), sr=22050)
    out = tmp_path / "padded.mp4"
    res = run("render", music_video, hum, "--start", "0", "-o", out, "--format", "json")
    assert res.exit_code == 0, res.stderr
    rep = json.loads(res.stdout)
    assert rep["looped"] is False and rep["padded"] == pytest.approx(17.0, abs=0.01) and rep["grid"] == "none"
    assert f"Warning: {hum}: the track (3.00 s from 0.00 s) is shorter than the video (20.00 s) and has no beat " \
           "grid to loop on: padded with 17.00 s of silence" in res.stderr
    assert abs(stream_end(out, "audio") - stream_end(music_video, "video")) <= 1 / 25
