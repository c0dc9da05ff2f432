"""``vmtool analyze-structure`` through the real command line.

Most tests read collections built here with known shot likelihoods, segment boundaries
and bars (no decoding, no network): exact cut/beat relations in milliseconds. One test
runs the whole pipeline (TransNetV2, OLDA, beat tracking) on a generated clip; the
slow ones on several generated clips and on the real music video.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool import synth
from vmtool.cli import app
from vmtool.store import CollectionWriter, Item, open_collection
from vmtool.structure import read_structure

runner = CliRunner()

PNG = b"\x89PNG\r\n\x1a\n"


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


# --- constructed collections -----------------------------------------------------------


def clip(name, kind, *, tempo=120.0, duration=24.0, fps=25.0, seed=0, audio=True, video=True, lik=True):
    """A clip whose shot likelihood, l_seg and bars are built from its *kind*:

    ``bar`` (a cut on every bar line), ``beat`` (every beat), ``free`` (random cuts),
    ``still`` (no cut), ``silent`` (cuts on bars, no beat found in the audio).
    """
    rng = np.random.default_rng(seed)
    beat = 60.0 / tempo
    beats = np.arange(0.0, duration - 1e-9, beat)
    down = beats[::4]
    if kind == "bar":
        cuts = down[1:]
    elif kind == "beat":
        cuts = beats[1:]
    elif kind == "free":
        cuts = np.cumsum(rng.uniform(1.0, 3.5, 40)) + rng.uniform(0.2, 0.9)
        cuts = cuts[cuts < duration - 0.3]
    else:
        cuts = down[1:] if kind == "silent" else np.array([])
    n = int(round(duration * fps))
    p = np.full(n, 0.002, dtype=np.float32)
    for c in cuts:
        p[math.ceil(c * fps - 1e-9) - 1] = 0.97
    l_seg = down[(down > 0)][::3] if audio else None  # sections every 3 bars, on bar lines
    if kind == "silent":
        bars = (np.array([]), 0.0, 4, np.array([]))
    else:
        bars = (down[down > 0], tempo, 4, beats) if audio else None
    sha = hashlib.sha256(f"{name}/{kind}/{seed}".encode()).hexdigest()
    return {"item": Item(name, f"/nonexistent/{name}.mp4", sha, duration, audio, video, fps, 22050 if audio else 0),
            "lik": p if (video and lik) else None, "fps": fps, "l_seg": l_seg, "bars": bars, "cuts": cuts}


def write_collection(path, clips):
    with CollectionWriter(path, config={}) as w:
        for c in clips:
            w.add(c["item"], {})
        w.flush()
        w.write_element("curves", "shot_likelihood", [c["lik"] for c in clips],
                        rates=[c["fps"] if c["lik"] is not None else math.nan for c in clips],
                        attrs={"modality": "video", "extractor": "transnet", "version": "1"})
        w.write_element("segmentations", "olda", [c["l_seg"] for c in clips], dtype=np.float64,
                        present=[c["l_seg"] is not None for c in clips],
                        attrs={"modality": "audio", "extractor": "olda", "version": "1", "config": {"min_duration": 1}})
        bars = [c["bars"] for c in clips]
        w.write_element("segmentations", "bars", [b[0] if b else None for b in bars], dtype=np.float64,
                        present=[b is not None for b in bars],
                        companions={"tempo": [np.array([b[1]]) if b else None for b in bars],
                                    "beats_per_bar": [np.array([b[2]]) if b else None for b in bars],
                                    "beat_times": [b[3] if b else None for b in bars]},
                        attrs={"modality": "audio", "extractor": "bars", "version": "1", "config": {}})
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """12 constructed clips in one collection, and a Harmonix-style metadata CSV."""
    d = tmp_path_factory.mktemp("structure")
    tempi = [100.0, 120.0, 140.0, 90.0]
    clips = ([clip(f"bar{i}", "bar", tempo=tempi[i], seed=i) for i in range(4)]
             + [clip(f"beat{i}", "beat", tempo=tempi[i], seed=10 + i) for i in range(4)]
             + [clip(f"free{i}", "free", tempo=tempi[i], seed=20 + i) for i in range(3)]
             + [clip("still", "still", seed=30), clip("silent", "silent", seed=31), clip("novideo", "bar", video=False),
                clip("hz30", "bar", fps=30.0, seed=32)])
    col = write_collection(d / "clips.h5", clips)
    meta = d / "metadata.csv"
    lines = ["File,Title,Artist,Release,Duration,BPM,Ratio Bars in 4,Time Signature,Genre"]
    for c in clips:
        it = c["item"]
        if it.id in ("free2", "still"):
            continue  # missing rows
        kind = it.id.rstrip("0123456789")
        bpm = f"{60.0 / (c['bars'][3][1] - c['bars'][3][0]):g}" if kind in ("bar", "beat") else ""
        ts = "4|4" if kind == "bar" else ""
        genre = {"bar": "Pop", "beat": "Pop", "free": "Rock"}.get(kind, "")
        lines.append(f'{it.id},"{it.id}, a title",x,y,24,{bpm},100,{ts},{genre}')
    meta.write_text("\n".join(lines) + "\n")
    return d, col, meta, {c["item"].id: c for c in clips}


def analyse(study, *extra, output="out.h5"):
    d, col, meta, _ = study
    out = d / output
    res = run("analyze-structure", col, "--metadata", meta, "-o", out, "--shuffles", 300, *extra)
    return res, out


@pytest.fixture(scope="module")
def json_run(study):
    res, out = analyse(study, "--format", "json", "--min-count", 2, "-k", output="json.h5")
    return res, out, json.loads(res.stdout) if res.stdout.strip() else None


def test_json_report_per_clip(json_run, study):
    res, out, rep = json_run
    assert res.exit_code == 1, res.stderr  # novideo failed (no likelihood, no source): -k finishes, exits 1
    clips = {c["id"]: c for c in rep["clips"]}
    for i in range(4):
        bar, beat = clips[f"bar{i}"], clips[f"beat{i}"]
        assert bar["sync_level"] == "bar" and bar["bpm_source"] == "metadata" and bar["meter_source"] == "metadata"
        assert bar["s_bar"] == pytest.approx(0.97, abs=0.03) and bar["s_bar_chance"] < 0.15 and bar["s_bar_p"] < 0.01
        assert bar["s_seg"] == pytest.approx(0.97, abs=0.03)  # sections start on cut bar lines
        assert beat["sync_level"] == "beat"
        assert beat["s_bar"] > 0.9  # every downbeat is a beat, hence a cut
        # phase-free: cuts on the downbeats are found at offset 0, well above random cut times
        assert bar["s_bar_free"] >= bar["s_bar"] - 1e-9 and abs(bar["s_bar_free_offset"]) <= 0.04
        assert bar["s_bar_free_chance"] < 0.5 and bar["s_bar_free_p"] < 0.01
        assert bar["downbeat_tracker"] == "librosa"  # the stored bars, kept by --downbeats auto
    for i in range(3):
        free = clips[f"free{i}"]
        assert free["s_bar"] < 0.5 and free["s_bar_p"] > 0.01
        assert free["s_bar_free"] >= free["s_bar"] - 1e-9 and free["s_bar_free_p"] > 0.01  # the search is not rewarded
    assert clips["still"]["status"] == "no_metadata,no_cut" and clips["still"]["sync_level"] == "unknown"
    assert "no_beat" in clips["silent"]["status"] and clips["silent"]["s_bar"] is None
    assert clips["hz30"]["sync_level"] == "bar" and clips["hz30"]["meter_source"] == "estimated"
    assert clips["novideo"]["status"] == "failed" and "no shot likelihood" in clips["novideo"]["error"]
    assert rep["failures"][0]["source"].endswith("novideo.mp4")
    assert clips["free2"]["music_genre"] == "unknown" and "no_metadata" in clips["free2"]["status"]


def test_json_report_aggregates(json_run):
    _, _, rep = json_run
    (allg,) = rep["aggregates"]["all"]
    levels = [c["sync_level"] for c in rep["clips"] if c["status"] != "failed"]
    assert allg["n_clips"] == 14 == len(levels)
    assert (allg["n_bar"], allg["n_beat"]) == (levels.count("bar"), levels.count("beat"))
    assert allg["n_bar"] >= 5 and allg["n_beat"] == 4  # free cuts of 1-3.5 s may pass the bar rule
    mg = {g["genre"]: g for g in rep["aggregates"]["music_genre"]}
    assert set(mg) == {"Pop", "unknown", "Rock"}
    pop = mg["Pop"]
    assert (pop["n_clips"], pop["n_bar"], pop["pct_bar"], pop["n_beat"], pop["pct_beat"]) == (8, 4, 50.0, 4, 50.0)
    assert pop["s_bar_ci_low"] < pop["s_bar_mean"] < pop["s_bar_ci_high"]
    assert pop["s_bar_mean"] > pop["s_bar_chance"] + 0.5
    assert pop["s_bar_free_mean"] > pop["s_bar_free_chance"] + 0.3
    # bar clips at offset 0; beat clips (a cut on every beat) may peak on any beat: r < 1
    assert abs(pop["s_bar_free_offset_bars"]) < 0.05 and pop["s_bar_free_offset_r"] > 0.5
    assert rep["aggregates"]["video_genre"][0]["genre"] == "unknown"  # no 'Video Genre' column
    assert any("no column 'Video Genre'" in w for w in rep["warnings"])


def test_output_file_layout(json_run, study):
    _, out, rep = json_run
    table = read_structure(out)
    assert table["ids"][:2] == ["bar0", "bar1"] and table["columns"]["sync_level"][0] == "bar"
    assert table["columns"]["status"][table["ids"].index("novideo")] == "failed"
    assert table["config"]["shuffles"] == 300 and table["bin_width"] == 0.2
    assert table["histograms"][0].sum() == rep["clips"][0]["n_shots"]
    with open_collection(out) as col:
        f = col.curve("f_shot")
        i30 = col.index("hz30")
        assert f.rate(i30) == 25.0 and col.curve("shot_likelihood").rate(i30) == 30.0
        cuts = study[3]["hz30"]["cuts"]
        peaks = np.flatnonzero(f.rows(i30) > 0.5) / 25.0
        assert np.max(np.abs(peaks - cuts)) <= 0.5 / 25 + 1 / 30
        shots = col.ragged("events", "shots")
        np.testing.assert_allclose(shots.rows(0), study[3]["bar0"]["cuts"], atol=1 / 25)
        assert not shots.present(col.index("novideo"))
        assert col.ragged("segmentations", "olda").attrs["config"] == {"min_duration": 1}  # kept as it was
    # vmtool info summarises the study: settings, trackers, the 'all' row
    res = run("info", out, "--format", "json")
    st = json.loads(res.stdout)["structure"]
    assert st["segments"] == "olda" and st["segment_boundary_times"] == "msaf" and st["downbeats"] == "auto"
    assert st["downbeat_trackers_of_clips"] == ["librosa"] and st["n_clips"] == 14
    assert st["s_bar_free_mean"] == rep["aggregates"]["all"][0]["s_bar_free_mean"]
    res = run("info", out)
    assert "phase-free S(l_bar)" in res.stdout and "structure (vmtool analyze-structure)" in res.stdout


def test_table_format_and_warnings(study):
    res, _ = analyse(study, "--min-count", 2, "-k")
    assert res.exit_code == 1
    out = res.stdout
    assert "Synchronisation level" in out and "Co-occurrence" in out
    row = next(line for line in out.splitlines() if line.startswith("music_genre") and " Pop " in line)
    assert row.split()[2:7] == ["8", "4", "50.0", "4", "50.0"]
    assert "Warning: /nonexistent/still.mp4: no metadata row" in res.stderr
    assert "no shot cut" in res.stderr and "no beat found" in res.stderr
    assert "Error: /nonexistent/novideo.mp4: has no video stream" in res.stderr
    assert "Phase-free S(l_bar)" in out
    # which tracker ran is always said (after the note that madmom is missing, where it is)
    assert any(line.startswith("Warning: ") and "downbeat tracker: " in line for line in res.stderr.splitlines())
    # the stored OLDA boundaries carry no boundary_times: made before vmtool followed MSAF
    assert "segmentations/olda places each boundary at the start of its beat frame" in res.stderr


def test_min_count_leaves_small_genres_out(study):
    res, _ = analyse(study, "--format", "json", "-k")
    rep = json.loads(res.stdout)
    assert rep["aggregates"]["music_genre"] == []  # Pop has 8 clips < 10
    assert {o["genre"] for o in rep["omitted"]["music_genre"]} == {"Pop", "unknown", "Rock"}
    assert len(rep["aggregates"]["all"]) == 1
    assert "left out (fewer than 10 clips): music genre 'Pop' (8)" in res.stderr


def test_csv_formats(study):
    res, _ = analyse(study, "--format", "csv", "--min-count", 2, "-k", "-q")
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [(r["grouping"], r["genre"]) for r in rows][:2] == [("all", "all"), ("music_genre", "Pop")]
    assert rows[1]["n_bar"] == "4" and float(rows[1]["s_bar_mean"]) > 0.5 and rows[1]["s_seg_ci_low"]
    assert res.stderr.startswith("Error:")  # -q keeps errors, drops warnings
    res, _ = analyse(study, "--format", "csv", "--per-clip", "-k", "-q")
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(res.stdout))}
    assert rows["bar0"]["sync_level"] == "bar" and rows["silent"]["s_bar"] == ""
    assert "no beat found" in rows["silent"]["notes"]


def test_per_clip_table(study):
    res, _ = analyse(study, "--per-clip", "-k", "-q")
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["clip", "music", "genre"]
    bar0 = next(line for line in lines if line.startswith("bar0 "))
    assert "bar" in bar0.split() and "100.0m" in bar0


def test_plots(study, tmp_path):
    _, _, meta, clips = study
    col = write_collection(tmp_path / "few.h5", [clips[k] for k in ("bar0", "beat1", "still", "novideo")])
    res = run("analyze-structure", col, "--metadata", meta, "-o", tmp_path / "few.out.h5", "--plot",
              tmp_path / "plots", "--min-count", 1, "-k", "-q", "--shuffles", 50)
    assert res.exit_code == 1
    files = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert files == ["bar0.structure.png", "beat1.structure.png", "still.structure.png",
                     "summary.music_genre.png", "summary.video_genre.png"]  # not the failed clip
    assert "summary.music_genre.png" in files and "summary.video_genre.png" in files
    assert all((tmp_path / "plots" / f).read_bytes()[:8] == PNG for f in files)


def test_seed_file_is_updated_in_place_and_rerun_is_stable(study, tmp_path):
    d, col, meta, clips = study
    ok = write_collection(tmp_path / "ok.h5", [clips[k] for k in ("bar0", "beat1", "free0")])
    res = run("analyze-structure", ok, "-o", ok, "--format", "json", "-q", "--shuffles", 200)
    assert res.exit_code == 0, res.stderr
    first = json.loads(res.stdout)
    assert first["clips"][0]["status"] == "ok" and first["clips"][0]["music_genre"] == "unknown"
    with open_collection(ok) as c:
        assert len(c) == 3 and "f_shot" in c.names("curves") and "olda" in c.names("segmentations")
        assert c.attrs["history"][-1]["command"].startswith("vmtool analyze-structure")
    res = run("analyze-structure", ok, "-o", tmp_path / "again.h5", "--format", "json", "-q", "--shuffles", 200)
    assert json.loads(res.stdout)["clips"] == first["clips"]  # same seed, same shifts


def test_several_collections_make_one_study(study, tmp_path):
    _, col, _, clips = study
    a = write_collection(tmp_path / "a.h5", [clips["bar0"], clips["beat0"]])
    b = write_collection(tmp_path / "b.h5", [clips["bar0"], clips["bar1"]])  # bar0 again: analysed once
    res = run("analyze-structure", a, b, "-o", tmp_path / "ab.h5", "--format", "json", "--shuffles", 50)
    assert res.exit_code == 0, res.stderr
    assert [c["id"] for c in json.loads(res.stdout)["clips"]] == ["bar0", "beat0", "bar1"]
    assert "the same content as an earlier input" in res.stderr


def test_column_mapping(study, tmp_path):
    _, col, _, _ = study
    meta = tmp_path / "m.csv"
    meta.write_text("clip;tempo;meter;style;look\nbar0.mp4;100;4/4;Funk;animation\nbeat0;100;;Funk;live\n")
    res = run("analyze-structure", col, "--metadata", meta, "--column", "file=clip", "--column", "bpm=tempo",
              "--column", "time_signature=meter", "--column", "music_genre=style", "--column", "video_genre=look",
              "-o", tmp_path / "m.h5", "--format", "json", "--min-count", 1, "-k", "--shuffles", 20)
    rep = json.loads(res.stdout)
    clips = {c["id"]: c for c in rep["clips"]}
    assert (clips["bar0"]["music_genre"], clips["bar0"]["video_genre"]) == ("Funk", "animation")
    assert clips["beat0"]["meter_source"] == "estimated" and clips["beat0"]["bpm_source"] == "metadata"
    assert {g["genre"] for g in rep["aggregates"]["video_genre"]} == {"unknown", "animation", "live"}
    assert sum("no metadata row" in w for w in rep["warnings"]) == 12  # 15 clips, 2 rows, novideo failed


@pytest.mark.parametrize("args, code, message", [
    (["missing.mp4"], 1, "Error: missing.mp4: no such file"),
    (["{col}", "--threshold", "1.5"], 1, "Error: --threshold must be between 0 and 1, got 1.5"),
    (["{col}", "--column", "file=x"], 1, "Error: --column needs --metadata"),
    (["{col}", "--metadata", "{meta}", "--column", "genre=x"], 1, "Error: unknown metadata field 'genre'"),
    (["{col}", "--metadata", "{meta}", "--column", "video_genre=Style"], 1,
     "no column 'Style' (field video_genre); columns: File, Title"),
    (["{col}", "--metadata", "{nometa}"], 1, "metadata file not found"),
    (["{col}", "--segments", "cnmf"], 2, "Invalid value for '--segments'"),
    (["{col}", "--shuffles", "0"], 2, "Invalid value for '--shuffles'"),
    (["{plain}"], 3, "not a vmtool file: root attribute 'vmtool_kind' is missing"),
    (["{model}"], 3, "is a vmtool 'model' file, expected a 'collection' file"),
])
def test_errors(study, tmp_path, args, code, message):
    _, col, meta, _ = study
    with h5py.File(tmp_path / "plain.h5", "w"):
        pass
    with h5py.File(tmp_path / "model.h5", "w") as f:
        f.attrs["vmtool_kind"], f.attrs["vmtool_schema"] = "model", "1.0"
    subs = {"col": col, "meta": meta, "nometa": tmp_path / "no.csv", "plain": tmp_path / "plain.h5",
            "model": tmp_path / "model.h5"}
    res = run("analyze-structure", *[a.format(**subs) for a in args], "-o", tmp_path / "x.h5")
    assert res.exit_code == code, res.output
    assert message in res.stderr
    assert not (tmp_path / "x.h5").exists()


def test_a_failure_without_keep_going_writes_nothing(study, tmp_path):
    _, col, _, _ = study
    res = run("analyze-structure", col, "-o", tmp_path / "x.h5", "-q")
    assert res.exit_code == 1 and "novideo.mp4: has no video stream: no shot likelihood" in res.stderr
    assert not (tmp_path / "x.h5").exists()


def test_help_has_examples():
    res = run("analyze-structure", "--help")
    assert res.exit_code == 0
    for s in ("--metadata", "--column", "--shuffles", "--min-count", "--per-clip", "Examples:", "Harmonix"):
        assert s in res.stdout


# --- media --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bar_clip(tmp_path_factory):
    """A 6 s generated music video at 120 BPM with a cut on every bar line (at 2 and 4 s)."""
    d = tmp_path_factory.mktemp("media")
    return synth.make_clip(d / "bars.mp4", duration=6.0, seed=3, tempo=120.0, cut_every_bars=1)


def test_media_end_to_end(bar_clip, tmp_path):
    """TransNetV2, OLDA and the beat tracker on a real file: cuts on bars give bar sync."""
    out = tmp_path / "bars.h5"
    res = run("analyze-structure", bar_clip.path, "-o", out, "--format", "json", "--plot", tmp_path / "p",
              "--device", "cpu", "--shuffles", 500, "--downbeats", "librosa")
    assert res.exit_code == 0, res.stderr
    (c,) = json.loads(res.stdout)["clips"]
    assert c["sync_level"] == "bar" and c["n_shots"] == len(bar_clip.cut_times) + 1
    assert c["d_shot_max"] == pytest.approx(2.0) and c["bpm"] == pytest.approx(120, rel=0.05)
    assert c["s_bar"] > 0.6 and c["s_bar"] > c["s_bar_chance"] + 0.4 and c["s_bar_p"] < 0.1
    assert (tmp_path / "p" / "bars.structure.png").read_bytes()[:8] == PNG
    with open_collection(out) as col:
        assert {"shot_likelihood", "f_shot"} <= set(col.names("curves"))
        assert {"olda", "bars"} <= set(col.names("segmentations"))
        downbeats = col.ragged("segmentations", "bars").rows(0)
    np.testing.assert_allclose(downbeats, bar_clip.music.downbeat_times[1:], atol=0.07)
    # the output holds everything: a second run computes nothing and agrees
    res = run("analyze-structure", out, "-o", tmp_path / "again.h5", "--format", "json", "--shuffles", 500)
    assert json.loads(res.stdout)["clips"][0]["s_bar"] == c["s_bar"]


def test_audio_only_input_fails(tmp_path):
    y, truth = synth.synth_music(duration=3.0, tempo=120.0, sections="A")
    wav = synth.write_media(tmp_path / "song.wav", audio=y, sr=truth.sr)
    res = run("analyze-structure", wav, "-o", tmp_path / "x.h5")
    assert res.exit_code == 1 and "song.wav: has no video stream: no shot likelihood to analyse" in res.stderr
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.slow
def test_generated_clips_with_known_relations(tmp_path):
    """Bar cuts, beat cuts, free cuts and a still image through the whole pipeline."""
    clips = {}
    clips["bar"] = synth.make_clip(tmp_path / "bar.mp4", duration=16.0, seed=11, tempo=100.0, cut_every_bars=1)
    y, music = synth.synth_music(duration=16.0, tempo=110.0, sections="AB", seed=12)
    off_beat = (np.array([2, 7, 9, 15, 19, 24]) + 0.5) * 60.0 / 110.0  # halfway between beats
    for kind, cuts in (("beat", music.beat_times[1:]), ("free", off_beat), ("still", np.array([]))):
        frames = synth.iter_video_frames(music, cut_times=cuts, seed=12)
        if kind == "still":
            first = next(frames)
            frames = (first for _ in range(16 * 25))
        synth.write_media(tmp_path / f"{kind}.mp4", audio=y, sr=music.sr, frames=frames, fps=25.0)
    res = run("analyze-structure", *[tmp_path / f"{k}.mp4" for k in ("bar", "beat", "free", "still")],
              "-o", tmp_path / "s.h5", "--format", "json", "--min-count", 1, "-j", 2)
    assert res.exit_code == 0, res.stderr
    c = {x["id"]: x for x in json.loads(res.stdout)["clips"]}
    assert c["bar"]["sync_level"] == "bar" and c["bar"]["s_bar"] > c["bar"]["s_bar_chance"] + 0.4
    assert c["beat"]["sync_level"] == "beat"
    assert c["free"]["s_bar"] < c["free"]["s_bar_chance"] and c["free"]["s_beat"] < c["free"]["s_beat_chance"]
    assert c["still"]["status"] == "no_cut" or "no_cut" in c["still"]["status"].split(",")


@pytest.mark.slow
def test_real_music_video(real_music_video, tmp_path):
    out = tmp_path / "real.h5"
    res = run("analyze-structure", real_music_video, "-o", out, "--format", "json", "--plot", tmp_path / "p")
    assert res.exit_code == 0, res.stderr
    (c,) = json.loads(res.stdout)["clips"]
    # TransNetV2 finds 108 shots in it; their dominant duration (1.2 s) is near a bar at ~113 BPM
    assert c["n_shots"] == 108 and 60 < c["bpm"] < 200 and c["sync_level"] == "bar"
    assert c["s_bar"] is not None and c["s_bar_chance"] is not None and c["s_seg"] is not None
    with open_collection(out) as col:
        n = col.curve("shot_likelihood").rows(0).size  # 5,301 frames at 25 fps
        assert col.curve("f_shot").rate(0) == 25.0 and col.curve("f_shot").rows(0).size == n + 1
    assert (tmp_path / "p" / "test.structure.png").exists()
