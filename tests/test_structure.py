"""The structure study's library: scores on constructed curves, rules, metadata, aggregates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vmtool.errors import ParameterError, VmtoolError
from vmtool.store import Item
from vmtool.structure import scores
from vmtool.structure.clip import (
    Bars,
    ClipResult,
    StructureConfig,
    analyze_clip,
    clip_structure,
    ClipTask,
)
from vmtool.structure.genres import aggregate
from vmtool.structure.metadata import (
    MetadataRow,
    TimeSignature,
    parse_column_mapping,
    parse_time_signature,
    read_metadata,
)

SQRT_2PI = math.sqrt(2 * math.pi)


# --- the window and the co-occurrence score ---------------------------------------------


def test_window_is_a_unit_gaussian_of_two_frames():
    sigma = 2 / 25
    w = scores.window(np.array([0.0, sigma, -sigma, 2 * sigma, 6 * sigma, 6.01 * sigma]))
    assert w[0] == 1.0
    assert w[1] == pytest.approx(math.exp(-0.5)) and w[2] == w[1]
    assert w[3] == pytest.approx(math.exp(-2.0))
    assert w[4] == pytest.approx(math.exp(-18.0)) and w[5] == 0.0  # cut at 6 sigma


def brute_force(f, times, sigma=2.0, rate=25.0):
    """S_i = sum over every sample of exp(-d^2 / 2 sigma^2) f(t), no truncation."""
    t = np.arange(len(f)) / rate
    s = sigma / rate
    return np.array([np.sum(np.exp(-0.5 * ((t - ti) / s) ** 2) * f) for ti in times])


def test_cooccurrence_on_an_isolated_cut():
    f = np.zeros(250)
    f[50] = 1.0  # a cut at 2.0 s
    s = scores.cooccurrence(f, np.array([2.0, 2.04, 2.08, 1.92, 2.02, 3.0]))
    assert s[0] == 1.0  # w(0) = 1
    assert s[1] == pytest.approx(math.exp(-1 / 8))  # one frame away
    assert s[2] == pytest.approx(math.exp(-0.5)) and s[3] == pytest.approx(s[2])  # one sigma
    assert s[4] == pytest.approx(math.exp(-0.5 * 0.25**2))  # half a frame
    assert s[5] == 0.0


def test_cooccurrence_equals_the_untruncated_sum():
    rng = np.random.default_rng(1)
    f = rng.random(400)
    times = np.concatenate([rng.uniform(0, 16, 30), [0.0, 15.96, 16.5, 0.013]])
    np.testing.assert_allclose(scores.cooccurrence(f, times), brute_force(f, times), atol=1e-6)


def test_cooccurrence_of_a_constant_curve_is_the_window_area():
    f = np.ones(500)
    s = scores.cooccurrence(f, np.array([10.0, 10.013, 0.0]))
    # sum over integer offsets of a sigma = 2 Gaussian = sqrt(2 pi) * 2 (to 1e-30)
    assert s[0] == pytest.approx(2 * SQRT_2PI, abs=1e-6)
    assert s[1] == pytest.approx(2 * SQRT_2PI, abs=1e-6)
    assert s[2] == pytest.approx((2 * SQRT_2PI + 1) / 2, abs=1e-6)  # at 0 s: half the window, w(0) once


def test_cooccurrence_shapes_and_empty_inputs():
    f = np.zeros(100)
    assert scores.cooccurrence(f, np.zeros((3, 4))).shape == (3, 4)
    assert scores.cooccurrence(f, np.array([])).shape == (0,)
    assert math.isnan(scores.cooccurrence_score(f, np.array([])))
    assert scores.cooccurrence_score(np.zeros(0), np.array([1.0])) == 0.0
    with pytest.raises(ParameterError, match="non-finite"):
        scores.cooccurrence(f, np.array([np.nan]))
    with pytest.raises(ParameterError, match="sigma_frames must be a positive number"):
        scores.cooccurrence(f, np.array([1.0]), sigma_frames=0)


# --- f_shot ------------------------------------------------------------------------------


def test_resample_at_25_fps_places_each_value_at_the_start_of_the_next_frame():
    p = np.array([0.1, 0.9, 0.2, 0.0])
    f = scores.resample_likelihood(p, 25.0)
    assert f.tolist() == [0.0, 0.1, 0.9, 0.2, 0.0]


@pytest.mark.parametrize("fps", [24.0, 29.97, 30.0, 50.0, 60.0, 12.5])
def test_resample_keeps_a_cut_where_it_is(fps):
    # a cut at 2.0 s: TransNetV2 fires on the last frame before it
    n = int(round(10 * fps))
    k = math.ceil(2.0 * fps - 1e-9) - 1
    p = np.zeros(n)
    p[k] = 0.93
    f = scores.resample_likelihood(p, fps)
    assert f.size == int(round(n / fps * 25)) + 1
    j = int(np.argmax(f))
    assert f[j] == 0.93 and np.count_nonzero(f) == 1
    assert abs(j / 25 - 2.0) <= 0.5 / 25 + 1 / fps  # within half a sample of the next frame's start


def test_resample_takes_the_maximum_of_values_meeting_on_one_sample():
    p = np.array([0.2, 0.7, 0.4, 0.1])  # 50 fps: frames 0, 1 -> sample 1; 2, 3 -> sample 2
    assert scores.resample_likelihood(p, 50.0).tolist() == [0.0, 0.7, 0.4]


def test_resample_refuses_bad_input():
    with pytest.raises(ParameterError, match="shape"):
        scores.resample_likelihood(np.zeros((2, 2)), 25.0)
    with pytest.raises(ParameterError, match="non-finite"):
        scores.resample_likelihood(np.array([np.nan]), 25.0)
    with pytest.raises(ParameterError, match="fps must be a positive number"):
        scores.resample_likelihood(np.zeros(3), 0.0)


# --- the chance level --------------------------------------------------------------------


def comb(period_frames: int, n: int) -> np.ndarray:
    f = np.zeros(n)
    f[::period_frames] = 1.0
    return f


def test_chance_level_of_a_comb_is_the_window_area_over_the_period():
    f = comb(50, 501)  # a cut every 2 s for 20 s
    times = np.arange(2.0, 20.0, 2.0)
    assert scores.cooccurrence_score(f, times) == pytest.approx(1.0)
    chance, p = scores.chance_level(f, times, 20.0, shuffles=4000, rng=0)
    assert chance == pytest.approx(2 * SQRT_2PI / 50, rel=0.08)  # 0.100
    assert p < 0.01


def test_chance_level_is_reproducible_and_depends_on_the_seed():
    f = np.random.default_rng(0).random(300)
    t = np.array([1.0, 5.5, 9.3])
    a = scores.chance_level(f, t, 12.0, shuffles=50, rng=7)
    assert a == scores.chance_level(f, t, 12.0, shuffles=50, rng=7)
    assert a != scores.chance_level(f, t, 12.0, shuffles=50, rng=8)


def test_chance_level_of_a_flat_curve_equals_the_score():
    f = np.full(1000, 0.3)
    t = np.array([5.0, 17.0, 30.0])
    chance, p = scores.chance_level(f, t, 40.0, shuffles=200, rng=0)
    s = scores.cooccurrence_score(f, t)
    assert chance == pytest.approx(s, rel=0.2)  # edges aside, every shift scores the same
    assert p > 0.05


def test_chance_level_edge_cases():
    assert all(math.isnan(x) for x in scores.chance_level(np.zeros(10), np.array([]), 1.0))
    chance, p = scores.chance_level(np.zeros(100), np.array([1.0]), 4.0, shuffles=9)
    assert chance == 0.0 and p == 1.0  # no cut at all: every shift ties
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ParameterError, match="shuffles"):
            scores.chance_level(np.zeros(10), np.array([0.1]), 1.0, shuffles=bad)
    with pytest.raises(ParameterError, match="duration"):
        scores.chance_level(np.zeros(10), np.array([0.1]), 0.0)


# --- shots, histogram, mode, sync level -------------------------------------------------


def test_shot_durations():
    assert scores.shot_durations(np.array([2.0, 3.5]), 5.0).tolist() == [2.0, 1.5, 1.5]
    assert scores.shot_durations(np.array([]), 5.0).tolist() == [5.0]
    assert scores.shot_durations(np.array([0.0, 6.0, 1.0]), 5.0).tolist() == [1.0, 4.0]


def test_histogram_bins_are_centred_on_multiples_of_the_width():
    h = scores.duration_histogram(np.array([0.09, 0.1, 1.9, 2.0, 2.09, 2.1]), 0.2)
    assert h.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 3, 1]
    assert scores.duration_histogram(np.array([]), 0.2).size == 0
    # frame-quantised durations of a 25 fps video never fall on an edge
    d = np.arange(1, 200) / 25
    k = d / 0.2 + 0.5
    assert np.all(np.abs(k - np.round(k)) > 0.05)


def test_histogram_mode_and_its_ties():
    assert scores.histogram_mode(np.array([2.0, 2.04, 1.96, 4.0, 0.5]), 0.2) == 2.0
    # two bins tie: the one nearer the median wins
    assert scores.histogram_mode(np.array([1.0, 1.0, 4.0, 4.0, 3.5]), 0.2) == pytest.approx(4.0)  # median 3.5
    assert scores.histogram_mode(np.array([1.0, 1.0, 4.0, 4.0, 1.5]), 0.2) == pytest.approx(1.0)  # median 1.5
    assert scores.histogram_mode(np.array([1.0, 3.0]), 0.2) == pytest.approx(1.0)  # equidistant: the shorter
    assert math.isnan(scores.histogram_mode(np.array([]), 0.2))


@pytest.mark.parametrize("d, level", [
    (0.5, "beat"), (0.26, "beat"), (0.74, "beat"), (0.75, "none"), (1.0, "none"),
    (1.01, "bar"), (2.0, "bar"), (2.99, "bar"), (3.0, "none"), (4.0, "none"),
    (4.01, "pattern"), (8.0, "pattern"), (11.99, "pattern"), (12.0, "none"), (0.25, "none"),
])
def test_sync_level_rules(d, level):
    # 120 BPM, 4/4: D_beat 0.5 s, D_bar 2 s, pattern 8 s; ranges are open intervals
    assert scores.sync_level(d, 0.5, 2.0) == level


def test_sync_level_overlapping_ranges_go_to_the_nearest_period():
    # 2/4: beat (0.25, 0.75) and bar (0.5, 1.5) overlap; the ratio nearest 1 wins
    assert scores.sync_level(0.70, 0.5, 1.0) == "beat"
    assert scores.sync_level(0.72, 0.5, 1.0) == "bar"


@pytest.mark.parametrize("args", [(math.nan, 0.5, 2.0), (2.0, math.nan, 2.0), (2.0, 0.5, 0.0)])
def test_sync_level_unknown(args):
    assert scores.sync_level(*args) == "unknown"


def test_mean_ci():
    v = [0.2, 0.4, 0.9, np.nan, 0.5]
    m, lo, hi, n = scores.mean_ci(v)
    half = 3.182446305284263 * np.std([0.2, 0.4, 0.9, 0.5], ddof=1) / 2  # t(0.975, 3 dof)
    assert n == 4 and m == pytest.approx(0.5) and (lo, hi) == pytest.approx((0.5 - half, 0.5 + half))
    m, lo, hi, n = scores.mean_ci([0.3])
    assert (m, n) == (0.3, 1) and math.isnan(lo) and math.isnan(hi)
    assert math.isnan(scores.mean_ci([])[0]) and scores.mean_ci([np.nan])[3] == 0


# --- time signatures and metadata ----------------------------------------------------------


@pytest.mark.parametrize("text, num, den, beats", [
    ("4|4", 4, 4, 4.0), ("6|8", 6, 8, 3.0), ("3/4", 3, 4, 3.0), ("6|4", 6, 4, 6.0), ("12/8", 12, 8, 6.0),
    ("7|8", 7, 8, 3.5), (" 3 | 4 ", 3, 4, 3.0), ("3", 3, 4, 3.0), ("2:2", 2, 2, 4.0),
])
def test_time_signatures(text, num, den, beats):
    ts = parse_time_signature(text)
    assert (ts.numerator, ts.denominator, ts.beats_per_bar) == (num, den, beats)


@pytest.mark.parametrize("text", ["", "4|", "x", "4/3", "0/4", "4||4", "four/four", "4/4/4", "33/4"])
def test_bad_time_signatures(text):
    with pytest.raises(ParameterError, match="time signature"):
        parse_time_signature(text)


HARMONIX = (
    "\ufeffFile,Title,Artist,Release,Duration,BPM,Ratio Bars in 4,Time Signature,Genre,MusicBrainz Id,Acoustid Id\n"
    '0001_12step,"1, 2 Step",Ciara,Goodies,142.47,113,100.0,4|4,R&B,0408655f,4708e4ae\n'
    "0005_again,Again,Flyleaf,Memento Mori,192.067,78,0.0,6|8,Alternative,09aed1ac,\n"
    "0067_deep,Deep,Pearl Jam,Definitive Collection,265.064,165,0.0,3|4,Grunge,1226999c,ba1c10c6\n"
    "0099_bad,Bad,Nobody,None,100.0,fast,0.0,4-4,,x,\n"
    "0001_12step,dup,dup,dup,1,99,0,3|4,Pop,,\n"
)


def test_harmonix_metadata_is_read_as_it_is(tmp_path):
    p = tmp_path / "metadata.csv"
    p.write_text(HARMONIX, encoding="utf-8")
    md = read_metadata(p)
    assert md.columns == {"file": "File", "bpm": "BPM", "time_signature": "Time Signature", "music_genre": "Genre"}
    assert md.missing == ["Video Genre"] and md.duplicates == ["0001_12step"]
    row = md.match("0001_12step", "/videos/0001_12step.mp4")
    assert (row.bpm, row.time_signature.beats_per_bar, row.music_genre, row.video_genre) == (113.0, 4.0, "R&B", None)
    assert md.match("x", "clips/0005_again.mp4").time_signature == TimeSignature(6, 8, "6|8")
    assert md.match("0067_DEEP").music_genre == "Grunge"  # case-blind fallback
    bad = md.match("0099_bad")
    assert bad.bpm is None and bad.time_signature is None and bad.music_genre is None
    assert len(bad.problems) == 2 and "BPM 'fast'" in bad.problems[0] and "'4-4'" in bad.problems[1]
    assert md.match("nothing", "nothing.mp4") is None
    assert [r.file for r in md.unused()] == []  # all four matched above


def test_metadata_column_mapping(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("name;tempo;meter;style;clip kind\nclip_a.mp4;120;3/4;Jazz;live\nclip_b;;;;\n")
    md = read_metadata(p, ["file=name", "bpm=Tempo", "time_signature=meter", "music_genre=style",
                           "video-genre=Clip Kind"])
    a = md.match("clip_a")
    assert (a.bpm, str(a.time_signature), a.music_genre, a.video_genre) == (120.0, "3/4", "Jazz", "live")
    b = md.match("x", "/d/clip_b.mkv")
    assert b is not None and b.bpm is None and b.video_genre is None and not b.problems


def test_metadata_errors(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("name,BPM\na,100\n")
    with pytest.raises(ParameterError, match=r"no column 'File' \(field file\); columns: name, BPM"):
        read_metadata(p)
    with pytest.raises(ParameterError, match="no column 'Style' .field video_genre."):
        read_metadata(p, ["file=name", "video_genre=Style"])
    with pytest.raises(ParameterError, match="unknown metadata field 'genre'"):
        parse_column_mapping(["genre=Style"])
    with pytest.raises(ParameterError, match="not FIELD=HEADER"):
        parse_column_mapping(["file"])
    with pytest.raises(VmtoolError, match="metadata file not found"):
        read_metadata(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ParameterError, match="no header line"):
        read_metadata(tmp_path / "empty.csv")
    (tmp_path / "latin.csv").write_bytes("File\nd\xe9j\xe0\n".encode("latin-1"))
    with pytest.raises(VmtoolError, match="not UTF-8"):
        read_metadata(tmp_path / "latin.csv")


# --- one clip, from constructed inputs ---------------------------------------------------


def item(duration=20.0, sha="ab" * 32, **kw) -> Item:
    return Item(kw.pop("id", "clip"), kw.pop("source", "clip.mp4"), sha, duration, True, True, 25.0, 22050)


def likelihood_with_cuts(cuts, duration=20.0, fps=25.0, value=1.0):
    p = np.zeros(int(round(duration * fps)))
    for c in cuts:
        p[math.ceil(c * fps - 1e-9) - 1] = value  # the last frame before the cut
    return p


def bars_at(tempo=120.0, duration=20.0, bpb=4):
    beats = np.arange(0.0, duration, 60.0 / tempo)
    down = beats[::bpb]
    return Bars(boundaries=down[down > 0], tempo=tempo, beats_per_bar=bpb, beat_times=beats)


CFG = StructureConfig(shuffles=2000, downbeats="librosa")  # stored bars are librosa's


def test_cuts_on_bar_lines():
    cuts = np.arange(2.0, 20.0, 2.0)  # 120 BPM: a cut on every bar line
    res = clip_structure(item(), likelihood_with_cuts(cuts), 25.0, l_seg=np.array([8.0, 16.0]),
                         bars=bars_at(), config=CFG)
    assert res.status == [] and res.status_text == "ok"
    np.testing.assert_allclose(res.cuts, cuts)
    assert (res.n_shots, res.d_shot_max, res.d_beat, res.d_bar) == (10, 2.0, 0.5, 2.0)
    assert res.sync_level == "bar" and res.bpm_source == "estimated" and res.meter_source == "estimated"
    assert res.s_bar == 1.0 and res.s_seg == 1.0  # every boundary exactly on a cut
    # chance: 9 cuts, each worth sqrt(2 pi) sigma seconds of window, over 20 s
    assert res.s_bar_chance == pytest.approx(9 * SQRT_2PI * 0.08 / 20, rel=0.15)
    assert res.s_bar_p < 0.01
    assert res.f_shot.size == 501 and res.f_shot[50] == 1.0
    assert res.histogram[10] == 10 and res.histogram.sum() == 10


def test_cuts_on_beats_and_metadata_tempo():
    beats = np.arange(0.5, 20.0, 0.5)
    meta = MetadataRow("clip", 2, bpm=120.0, time_signature=parse_time_signature("4|4"), time_signature_text="4|4",
                       music_genre="Pop", video_genre="dance")
    res = clip_structure(item(), likelihood_with_cuts(beats), 25.0, l_seg=np.array([7.3]),
                         bars=bars_at(tempo=118.0), meta=meta, config=CFG)
    assert (res.bpm, res.bpm_source, res.beats_per_bar, res.meter_source) == (120.0, "metadata", 4.0, "metadata")
    # cuts at odd multiples of 0.5 s fall mid-frame (12.5 frames): shots of 0.52 and 0.48 s
    assert res.d_shot_max == pytest.approx(0.4) and res.sync_level == "beat"
    assert (res.music_genre, res.video_genre) == ("Pop", "dance")
    assert res.s_seg < 0.5  # 7.3 s is 0.2 s from the nearest cut


def test_compound_time_signature_sets_the_bar():
    meta = MetadataRow("clip", 2, bpm=120.0, time_signature=parse_time_signature("6|8"), time_signature_text="6|8")
    res = clip_structure(item(), likelihood_with_cuts(np.arange(1.5, 20.0, 1.5)), 25.0, l_seg=np.array([]),
                         bars=bars_at(bpb=3), meta=meta, config=CFG)
    assert (res.beats_per_bar, res.d_bar, res.sync_level) == (3.0, 1.5, "bar")
    assert "no_segment_boundary" in res.status and math.isnan(res.s_seg)


def test_still_image_clip_has_no_cut():
    res = clip_structure(item(), np.full(500, 0.01), 25.0, l_seg=np.array([8.0]), bars=bars_at(), config=CFG)
    assert res.status == ["no_cut"] and res.sync_level == "unknown" and math.isnan(res.d_shot_max)
    assert res.n_shots == 1 and res.s_bar == pytest.approx(0.01 * 2 * SQRT_2PI, abs=1e-6)
    assert res.s_bar_chance == pytest.approx(res.s_bar, abs=0.002) and res.s_bar_p > 0.5
    assert any("no shot cut" in n for n in res.notes)


def test_clip_without_beats():
    silent = Bars(boundaries=np.array([]), tempo=0.0, beats_per_bar=4, beat_times=np.array([]))
    res = clip_structure(item(), likelihood_with_cuts([5.0, 10.0]), 25.0, l_seg=np.array([]), bars=silent,
                         config=CFG)
    assert "no_beat" in res.status and res.sync_level == "unknown" and math.isnan(res.d_beat)
    assert math.isnan(res.s_bar) and res.n_downbeats == 0
    # a metadata tempo still gives the sync level (metre 4 by default)
    meta = MetadataRow("clip", 2, bpm=24.0)
    res = clip_structure(item(), likelihood_with_cuts([6.0, 12.0, 18.0]), 25.0, l_seg=np.array([]), bars=silent,
                         meta=meta, config=CFG)
    assert (res.meter_source, res.d_bar, res.d_shot_max, res.sync_level) == ("default", 10.0, 6.0, "bar")


def test_clip_without_audio_and_missing_metadata():
    res = clip_structure(item(), likelihood_with_cuts([2.0, 4.0]), 25.0, l_seg=None, bars=None, config=CFG,
                         with_metadata=True)
    assert res.status == ["no_metadata", "no_audio"] and res.sync_level == "unknown"
    assert res.music_genre == "unknown" and math.isnan(res.s_bar) and math.isnan(res.s_seg)


def test_metadata_problems_are_reported():
    meta = MetadataRow("clip", 7, problems=["BPM 'x' is not a tempo in 10..400"])
    res = clip_structure(item(), likelihood_with_cuts([2.0]), 25.0, l_seg=None, bars=bars_at(), meta=meta,
                         config=CFG)
    assert "metadata_problem" in res.status and res.bpm_source == "estimated"
    assert any("metadata line 7: BPM 'x'" in n for n in res.notes)


def test_shifts_depend_on_the_seed_and_the_clip_only():
    args = (likelihood_with_cuts(np.arange(2.0, 20.0, 2.0)), 25.0)
    kw = {"l_seg": np.array([8.0]), "bars": bars_at()}
    a = clip_structure(item(), *args, config=StructureConfig(shuffles=100), **kw)
    b = clip_structure(item(id="other"), *args, config=StructureConfig(shuffles=100), **kw)
    c = clip_structure(item(sha="cd" * 32), *args, config=StructureConfig(shuffles=100), **kw)
    d = clip_structure(item(), *args, config=StructureConfig(shuffles=100, seed=1), **kw)
    assert a.s_bar_chance == b.s_bar_chance  # same content (sha256): same draws
    assert a.s_bar_chance != c.s_bar_chance and a.s_bar_chance != d.s_bar_chance


def test_analyze_clip_without_video_fails_before_any_decoding():
    it = Item("song", "song.wav", "00" * 32, 10.0, True, False)
    with pytest.raises(VmtoolError, match="has no video stream: no shot likelihood"):
        analyze_clip(ClipTask("song.wav", it), CFG)


def test_analyze_clip_uses_what_is_stored():
    task = ClipTask("clip.mp4", item(), likelihood=likelihood_with_cuts(np.arange(2.0, 20.0, 2.0)),
                    likelihood_rate=25.0, l_seg=np.array([8.0]), bars=bars_at())
    res = analyze_clip(task, CFG)  # the source does not exist: nothing may be computed
    assert res.computed == () and res.sync_level == "bar"
    # a metadata metre that differs from the stored bars' needs the audio again
    task.meta = MetadataRow("clip", 2, time_signature=parse_time_signature("3/4"), time_signature_text="3/4")
    with pytest.raises(VmtoolError, match="source media not found"):
        analyze_clip(task, CFG)
    # bars of another downbeat tracker too
    task.meta = None
    madmom_cfg = StructureConfig(shuffles=10, downbeats="madmom", downbeat_tracker="madmom")
    with pytest.raises(VmtoolError, match="source media not found"):
        analyze_clip(task, madmom_cfg)
    assert analyze_clip(task, StructureConfig(shuffles=10, downbeats="librosa")).downbeat_tracker == "librosa"
    # auto keeps stored bars of either tracker
    auto_cfg = StructureConfig(shuffles=10, downbeats="auto", downbeat_tracker="madmom")
    assert analyze_clip(task, auto_cfg).downbeat_tracker == "librosa"


def test_config_validation():
    for kw, msg in [({"segments": "cnmf"}, "unknown segmentation"), ({"threshold": 1.0}, "--threshold"),
                    ({"bin_width": 0.0}, "--bin-width"), ({"shuffles": 0}, "--shuffles"),
                    ({"min_count": 0}, "--min-count"), ({"downbeats": "essentia"}, "--downbeats")]:
        with pytest.raises(ParameterError, match=msg):
            StructureConfig(**kw).validate()


# --- aggregates -------------------------------------------------------------------------


def fake(level, s_bar, chance, mg="Pop", vg="live", failed=False) -> ClipResult:
    r = ClipResult(item=item(), music_genre=mg, video_genre=vg, sync_level=level, s_bar=s_bar,
                   s_bar_chance=chance, s_seg=math.nan, error="boom" if failed else "")
    return r


def test_aggregate_per_genre():
    clips = [fake("bar", 0.8, 0.1), fake("bar", 0.6, 0.1), fake("beat", 0.4, 0.2), fake("none", 0.2, 0.1, mg="Rock"),
             fake("bar", 0.9, 0.1, failed=True)]
    (allg,), omitted = aggregate(clips)
    assert omitted == [] and allg.n_clips == 4 and allg.counts == {"bar": 2, "beat": 1, "none": 1}
    assert allg.pct("bar") == 50.0 and allg.s_bar["mean"] == pytest.approx(0.5)
    assert allg.s_bar["chance"] == pytest.approx(0.125) and allg.s_bar["n"] == 4
    assert math.isnan(allg.s_seg["mean"]) and allg.s_seg["n"] == 0
    groups, omitted = aggregate(clips, "music_genre", min_count=2)
    assert [(g.genre, g.n_clips) for g in groups] == [("Pop", 3)] and omitted == [("Rock", 1)]
    pop = groups[0]
    m, lo, hi, _ = scores.mean_ci([0.8, 0.6, 0.4])
    assert (pop.s_bar["mean"], pop.s_bar["ci_low"], pop.s_bar["ci_high"]) == pytest.approx((m, lo, hi))
    d = pop.to_dict()
    assert d["n_bar"] == 2 and d["pct_bar"] == pytest.approx(66.6667) and d["s_seg_mean"] is None
    with pytest.raises(ParameterError, match="unknown grouping"):
        aggregate(clips, "genre")


# --- the phase-free score -----------------------------------------------------------------


def test_offset_sweep_from_the_definition():
    """S(l + d) for d = j / 25 in [-P/2, P/2), each a mean of S_i = sum_t w(t - t_i - d) f(t)."""
    f = np.zeros(101)
    f[[30, 55, 80]] = [1.0, 0.5, 1.0]  # cuts at 1.2, 2.2, 3.2 s
    times = np.array([1.0, 2.0, 3.0])
    offsets, s = scores.offset_sweep(f, times, 1.0)
    assert offsets[0] == pytest.approx(-0.48) and offsets[-1] == pytest.approx(0.48) and offsets.size == 25
    sig = 2 / 25.0
    for d, got in zip(offsets, s):
        want = np.mean([sum(np.exp(-((j / 25.0 - t - d) ** 2) / (2 * sig**2)) * f[j] for j in range(101))
                        for t in times])
        assert got == pytest.approx(want, abs=1e-7)
    assert offsets[np.argmax(s)] == pytest.approx(0.2)
    assert s.max() == pytest.approx((1.0 + 0.5 + 1.0) / 3)


def test_shuffle_cuts_moves_cut_profiles():
    f = np.full(200, 0.01)
    cuts = np.array([20, 50, 110, 170])
    f[cuts] = [0.9, 0.8, 0.7, 0.6]
    f[cuts - 1] = 0.1  # the ramp before each peak moves with it
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(20):
        g = scores.shuffle_cuts(f, cuts, rng)
        assert g.size == f.size and g.max() == pytest.approx(0.9)
        peaks = np.flatnonzero(g >= 0.6)
        assert len(peaks) == 4 or np.diff(np.sort(peaks)).min() <= 12  # profiles may meet
        assert np.all(g >= 0) and np.count_nonzero(np.isclose(g, 0.1)) >= 2
        seen.add(tuple(peaks))
    assert len(seen) > 10  # the cut times change


def test_phase_free_score_and_its_chance():
    rate, period = 25.0, 2.0
    down = np.arange(2.0, 60.0, period)
    # cuts half a beat after every downbeat (0.25 s): S(l_bar) misses them, the sweep finds them
    cuts = down + 0.24
    f = np.zeros(int(60 * rate) + 1)
    f[np.rint(cuts * rate).astype(int)] = 1.0
    best, offset, chance, p = scores.phase_free(f, down, period, np.rint(cuts * rate), shuffles=200, rng=0)
    assert scores.cooccurrence_score(f, down) == pytest.approx(math.exp(-4.5))  # 3 sigma away
    assert best == pytest.approx(1.0) and offset == pytest.approx(0.24)
    assert chance < 0.5 and p < 0.01
    # cuts at random: the best offset is no better than the same sweep on shuffled cuts
    rng = np.random.default_rng(3)
    rcuts = np.sort(rng.choice(np.arange(5, f.size - 5), 30, replace=False))
    g = np.zeros_like(f)
    g[rcuts] = 1.0
    best, _, chance, p = scores.phase_free(g, down, period, rcuts, shuffles=300, rng=1)
    assert best > scores.cooccurrence_score(g, down)  # searching raises the score...
    assert abs(best - chance) < 0.1 and p > 0.05  # ...and the chance level as much
    assert all(math.isnan(v) for v in scores.phase_free(g, [], period, rcuts, shuffles=5))
