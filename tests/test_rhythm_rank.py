"""``vmtool rank -m rhythm``: a track's tempo and metre against a video's cuts, with no model.

The score is checked against a literal transcription of its equations
(docs/methods-ranking.md, "Rhythm fit") on a tiny video; the ranking on constructed
shot likelihoods and on synthesized music through the real beat tracker; the command
end to end on a collection with no embeddings and no model.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool.cli import app
from vmtool.errors import ParameterError
from vmtool.ranking import rank
from vmtool.ranking.methods import parse_method, parse_methods
from vmtool.ranking.rhythm import TrackGrid, combine, zscore
from vmtool.ranking.segments import SegmentSet
from vmtool.store import CollectionWriter, Item
from vmtool.structure.rhythm_fit import _video_from_cuts, rhythm_distances, rhythm_fit, video_rhythm

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


# --- the score from its equations ---------------------------------------------------------


def _w(d: float) -> float:
    """The co-occurrence window: a Gaussian of 2 frames at 25 Hz (0.08 s), 0 beyond 6 sigma."""
    return math.exp(-0.5 * (d / 0.08) ** 2) if abs(d) <= 6 * 0.08 + 1e-9 else 0.0


def _literal(cuts, duration, beats, beats_per_bar, tau=0.05):
    """docs/methods-ranking.md's rhythm distance, written out with loops."""
    # D_shot: the durations within half a bin of the fullest 0.2-s bin's centre, averaged
    edges = [0.0, *sorted(cuts), duration]
    durs = [b - a for a, b in zip(edges, edges[1:])]
    bins = [math.floor(d / 0.2 + 0.5 + 1e-9) for d in durs]
    counts = {k: bins.count(k) for k in bins}
    top = max(counts.values())
    med = sorted(durs)[len(durs) // 2] if len(durs) % 2 else sum(sorted(durs)[len(durs) // 2 - 1:][:2]) / 2
    mode = min((k for k in counts if counts[k] == top), key=lambda k: (abs(k * 0.2 - med), k)) * 0.2
    near = [d for d in durs if abs(d - mode) <= 0.1 + 1e-9]
    d_shot = sum(near) / len(near)
    # F: the closest of the five periods
    gaps = sorted(b - a for a, b in zip(beats, beats[1:]))
    d_beat = gaps[len(gaps) // 2] if len(gaps) % 2 else (gaps[len(gaps) // 2 - 1] + gaps[len(gaps) // 2]) / 2
    d_bar = beats_per_bar * d_beat
    e = min(abs(math.log(d_shot / p)) for p in (d_beat, 2 * d_beat, d_bar, 2 * d_bar, 4 * d_bar))
    f = math.exp(-e * e / (2 * tau * tau))
    # C: S(b + delta) for delta = j / 25 in [-D_beat / 2, D_beat / 2), f_shot = 1 at each cut's sample
    f_shot = [0.0] * (int(round(duration * 25)) + 1)
    for c in cuts:
        f_shot[int(round(c * 25))] = 1.0
    under = [b for b in beats if 0 <= b <= duration]
    s = []
    for j in range(math.ceil(-d_beat / 2 * 25 - 1e-9), math.ceil(d_beat / 2 * 25 - 1e-9)):
        s.append(sum(_w(t / 25 - (b + j / 25)) * f_shot[t] for b in under for t in range(len(f_shot))) / len(under))
    best, chance, ideal = max(s), sum(s) / len(s), len(cuts) / len(under)
    c = min(1.0, max(0.0, (best - chance) / (ideal - chance)))
    return 1 - (f + c) / 2, f, c


@pytest.mark.parametrize("cuts, bpm, bpb", [
    ([2.0, 4.0, 6.0], 120.0, 4),        # a cut every bar, on the beat: F = C = 1, distance 0
    ([2.0, 4.0, 5.3, 6.0], 120.0, 4),   # one cut off the beat
    ([2.0, 4.0, 5.3, 6.0], 100.0, 4),   # another tempo: the bar is 2.4 s
    ([1.5, 3.0, 4.5, 6.5], 120.0, 3),   # 3/4: 1.5-s bars
])
def test_score_from_its_equations(cuts, bpm, bpb):
    beats = list(np.arange(0.0, 8.0 + 1e-9, 60.0 / bpm))
    fit = rhythm_fit(_video_from_cuts(np.array(cuts), 8.0), np.array(beats), bpb)
    d, f, c = _literal(cuts, 8.0, beats, bpb)
    assert (fit.distance, fit.period_fit, fit.cooccurrence) == pytest.approx((d, f, c), abs=1e-9)


def test_score_by_hand():
    """Numbers worked out on paper: cuts on the bars of the track, and a track at 100 BPM."""
    beats = np.arange(0.0, 8.0 + 1e-9, 0.5)
    on = rhythm_fit(_video_from_cuts(np.array([2.0, 4.0, 6.0]), 8.0), beats, 4)
    assert (on.level, on.period, on.offset) == ("bar", 2.0, 0.0) and on.distance == pytest.approx(0.0, abs=1e-12)
    # the 2.4-s bar of 100 BPM is ln(2.4 / 2) = 0.182 away from the 2-s shots: F = exp(-0.182^2 / 0.005)
    slow = rhythm_fit(_video_from_cuts(np.array([2.0, 4.0, 6.0]), 8.0), np.arange(0.0, 8.0 + 1e-9, 0.6), 4)
    assert slow.period_fit == pytest.approx(math.exp(-math.log(1.2) ** 2 / 0.005)) and slow.period_fit < 0.0014


def test_a_video_without_cuts_is_refused():
    with pytest.raises(ParameterError, match="no shot cut"):
        rhythm_fit(_video_from_cuts(np.array([]), 8.0), np.arange(0.0, 8.0, 0.5), 4)
    assert math.isnan(rhythm_fit(_video_from_cuts(np.array([2.0]), 8.0), np.array([1.0]), 4).distance)


# --- ranking ------------------------------------------------------------------------------


def _likelihood(cuts, duration, fps=25.0):
    """TransNetV2-like: high on the last frame of each shot, low elsewhere."""
    p = np.full(int(round(duration * fps)), 0.002, dtype=np.float32)
    for c in cuts:
        p[math.ceil(c * fps - 1e-9) - 1] = 0.97
    return p


def test_a_video_cut_every_bar_ranks_the_matching_tempo_first():
    """Synthesized tracks through the real beat tracker (vmtool segment -m bars' function)."""
    from vmtool.segmentation import rhythm
    from vmtool.synth import synth_music

    tempi = [100.0, 120.0, 140.0, 90.0, 108.0]
    grids = []
    for i, bpm in enumerate(tempi):
        y, _ = synth_music(duration=12.0, sr=22050, tempo=bpm, sections="AB", seed=i)
        s = rhythm.bars(y, 22050)
        grids.append(TrackGrid(np.asarray(s.extra["beat_times"]), int(s.extra["beats_per_bar"]), "bars"))
    video = video_rhythm(_likelihood(np.arange(2.0, 12.0 - 1e-9, 2.0), 12.0), 25.0, 12.0)
    d = rhythm_distances(video, grids)
    assert int(np.argmin(d)) == 1 and d[1] < 0.2, d


# --- the method spec and the combination --------------------------------------------------


def test_method_specs():
    m = parse_method("btrace+rhythm:0.3")
    assert (m.name, m.rhythm, m.label, m.learned.label, m.uses_rhythm) == ("btrace", 0.3, "btrace+rhythm:0.3",
                                                                           "btrace", True)
    assert parse_method("NW-DTW:0.1 + rhythm").label == "nw-dtw:0.1+rhythm:0.3"  # the default weight
    assert parse_method("rhythm").level == "none" and parse_method("rhythm").rhythm is None
    for bad, msg in [("btrace+tempo", "only a rhythm term"), ("btrace+rhythm:x", "is not a number"),
                     ("btrace+rhythm:-1", ">= 0"), ("head+rhythm", "takes no rhythm term"),
                     ("rhythm+rhythm", "takes no rhythm term")]:
        with pytest.raises(ParameterError, match=msg):
            parse_method(bad)
    with pytest.raises(ParameterError, match="ranks with vmtool rank only"):
        parse_methods("trace,rhythm")  # evaluate has no shots or beats to give it


def test_combination_is_a_weighted_sum_of_z_scores():
    a, b = np.array([1.0, 2.0, 3.0, np.nan]), np.array([1.0, 0.0, 0.0, 0.5])
    za = (np.array([1.0, 2.0, 3.0]) - 2.0) / math.sqrt(2 / 3)
    zb = (np.array([1.0, 0.0, 0.0]) - 1 / 3) / math.sqrt(2 / 9)
    np.testing.assert_allclose(combine(a, b, 0.5)[:3], za + 0.5 * zb)
    assert math.isnan(combine(a, b, 0.5)[3])
    assert zscore(np.array([4.0, 4.0])).tolist() == [0.0, 0.0]


def test_rank_adds_the_rhythm_term_to_the_learned_distance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 8)).astype(np.float32)
    cat = SegmentSet(x, np.arange(7), ids=[f"t{i}" for i in range(6)], modality="audio")
    q = SegmentSet(x[:1] + 0.1, np.array([0, 1]), ids=["q"], modality="video")
    learned = rank(q, cat, "centroid", k=6)
    best_rhythm = np.full(6, 1.0)
    best_rhythm[learned.results[-1].index] = 0.0  # the worst embedding match fits the rhythm best
    alone = rank(q, cat, "centroid+rhythm:0", k=6, rhythm=best_rhythm)
    assert [r.index for r in alone.results] == [r.index for r in learned.results]
    heavy = rank(q, cat, "centroid+rhythm:10", k=6, rhythm=best_rhythm)
    assert heavy.results[0].index == learned.results[-1].index and heavy.method.label == "centroid+rhythm:10"
    with pytest.raises(ParameterError, match="one rhythm-fit distance per target"):
        rank(q, cat, "centroid+rhythm:1", k=6)
    # a track without beats is never returned, nor counted among the candidates
    beatless = best_rhythm.copy()
    beatless[[1, 4]] = np.nan
    some = rank(q, cat, "centroid+rhythm:1", k=6, rhythm=beatless)
    assert some.n_candidates == 4 and sorted(r.index for r in some.results) == [0, 2, 3, 5]


# --- the command, on a collection with no model -------------------------------------------


def _collection(path, tracks, video_cuts, *, with_bars=True):
    """One video item (its shot likelihood) and audio items (bars with their beats)."""
    def item(name, audio, video):
        return Item(name, f"/nonexistent/{name}.mp4", hashlib.sha256(name.encode()).hexdigest(), 12.0, audio, video,
                    25.0, 22050 if audio else 0)

    items = [item("video", False, True)] + [item(f"bpm{int(b)}", True, False) for b in tracks]
    beats = [None] + [np.arange(0.0, 12.0, 60.0 / b) for b in tracks]
    with CollectionWriter(path, config={}) as w:
        for it in items:
            w.add(it, {})
        w.flush()
        w.write_element("curves", "shot_likelihood", [_likelihood(video_cuts, 12.0)] + [None] * len(tracks),
                        rates=[25.0] + [math.nan] * len(tracks),
                        attrs={"modality": "video", "extractor": "transnet", "version": "1"})
        if with_bars:
            w.write_element("segmentations", "bars", [None] + [b[4::4] for b in beats[1:]], dtype=np.float64,
                            present=[False] + [True] * len(tracks),
                            companions={"tempo": [None] + [np.array([b]) for b in tracks],
                                        "beats_per_bar": [None] + [np.array([4]) for _ in tracks],
                                        "beat_times": beats},
                            attrs={"modality": "audio", "extractor": "bars", "version": "1", "config": {}})
    return path


def test_rank_rhythm_on_a_collection_without_a_model(tmp_path):
    col = _collection(tmp_path / "clips.h5", [100.0, 120.0, 140.0, 90.0, 132.0], np.arange(2.0, 12.0 - 1e-9, 2.0))
    res = run("rank", f"{col}#video", col, "-m", "rhythm", "-k", "3", "--format", "json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["method"] == "rhythm" and [r["id"] for r in out["results"]][0] == "bpm120"
    assert out["results"][0]["distance"] == pytest.approx(0.0, abs=1e-6) and out["candidates"] == 5
    assert "5 tracks ranked with rhythm" in res.stderr
    tsv = run("rank", f"{col}#video", col, "-m", "rhythm", "-k", "2", "--format", "tsv", "--where", "id != bpm120",
              "-q")
    assert tsv.exit_code == 0, tsv.stderr
    assert [line.split("\t")[1] for line in tsv.stdout.splitlines()[1:]] != ["bpm120"]
    assert len(tsv.stdout.splitlines()) == 3


def test_rank_rhythm_without_beats_says_which_command_adds_them(tmp_path):
    col = _collection(tmp_path / "nobeats.h5", [100.0, 120.0], [2.0, 4.0], with_bars=False)
    res = run("rank", f"{col}#video", col, "-m", "rhythm")
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr.strip() == (f"Error: {col}: no track has beat times, which method rhythm needs: add them with "
                                  f"'vmtool segment {col} -m bars -o {col}' (or re-extract: extract measures a "
                                  "beat grid)")


@pytest.mark.slow
def test_rank_rhythm_on_a_media_query(tmp_path):
    """The real path: TransNetV2 on a generated clip cut on every bar at 120 BPM."""
    from vmtool.synth import make_clip

    clip = make_clip(tmp_path / "bars.mp4", duration=12.0, seed=3, tempo=120.0, cut_every_bars=1, size=(64, 36))
    col = _collection(tmp_path / "tracks.h5", [100.0, 120.0, 140.0, 90.0, 132.0], clip.cut_times)
    res = run("rank", clip.path, col, "-m", "rhythm", "--device", "cpu", "--format", "json", "-q")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["results"][0]["id"] == "bpm120"


def test_a_rhythm_term_on_a_method_corrected_by_default_ranks(tmp_path, monkeypatch):
    """btrace-mean (rank's default, CSLS by default) + rhythm: the CSLS terms are the learned
    method's; the rhythm term is added after the correction."""
    import shutil

    from vmtool.query import CatalogRanker
    from vmtool.store import open_collection

    cat = shutil.copy(Path(__file__).parent / "data" / "catalog-1.1.h5", tmp_path / "cat.h5")
    with open_collection(cat) as col:
        ids = col.ids
    monkeypatch.setattr(CatalogRanker, "_rhythm_of", lambda self, query, targets: np.zeros(len(targets)))
    plain = CatalogRanker(cat, method="btrace-mean", k=3, hubness="auto").rank(f"{cat}#{ids[0]}").ranking
    ranker = CatalogRanker(cat, method="btrace-mean+rhythm:0.3", k=3, hubness="auto")
    assert ranker.hubness.active  # the learned method's default correction
    got = ranker.rank(f"{cat}#{ids[0]}").ranking
    assert got.method.label == "btrace-mean+rhythm:0.3"
    # a constant rhythm term changes no order
    assert [r.id for r in got.results] == [r.id for r in plain.results]


@pytest.mark.parametrize("option", [["--length", "10"], ["--query-segments", "transnet"]])
def test_rank_rhythm_refuses_the_options_it_cannot_use(tmp_path, option):
    col = _collection(tmp_path / "clips.h5", [100.0, 120.0], [2.0, 4.0])
    res = run("rank", f"{col}#video", col, "-m", "rhythm", *option)
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr.strip() == (f"Error: method 'rhythm' takes no {option[0]} (it reads the video's shot cuts "
                                  "and places no best section)")
