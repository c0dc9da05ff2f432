"""``vmtool segment`` through the real command line."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool.cli import app
from vmtool.segmentation.aggregate import item_segment_features
from vmtool.store import open_collection

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def video_collection(tmp_path_factory, music_video):
    """The synthetic music video with handcrafted features and the TransNet shot likelihood."""
    out = tmp_path_factory.mktemp("seg") / "clip.h5"
    res = run("extract", music_video, "-a", "handcrafted", "-v", "transnet", "-o", out, "-q")
    assert res.exit_code == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def track60(tmp_path_factory):
    """A 60 s ABAC track at 120 BPM (sections of 16, 14, 16, 14 s: long enough for MSAF)."""
    from vmtool.synth import synth_music, write_media

    d = tmp_path_factory.mktemp("music")
    y, truth = synth_music(duration=60.0, tempo=120.0, sections="ABAC", seed=1)
    write_media(d / "track.wav", audio=y, sr=truth.sr)
    return d / "track.wav", truth


@pytest.fixture(scope="module")
def music_segmented(track60):
    """foote + olda (with fmc2d labels) + fixed windows of the track, run in an empty cwd."""
    src, _ = track60
    d = src.parent
    out = d / "track.h5"
    cwd = os.getcwd()
    work = d / "cwd"
    work.mkdir()
    os.chdir(work)
    try:
        res = run("segment", src, "-m", "foote", "-m", "olda", "-m", "fixed", "--window", "5",
                  "--labels", "fmc2d", "-o", out, "--format", "json", "-q")
    finally:
        os.chdir(cwd)
    assert res.exit_code == 0, res.stderr
    return d, out, json.loads(res.stdout)


def test_music_methods_find_the_sections(music_segmented, track60):
    _, out, report = music_segmented
    truth = track60[1]
    rows = {r["method"]: r for r in report["items"]}
    olda = np.array(rows["olda"]["boundaries"])
    for b in truth.boundaries:  # OLDA finds every section change within 3 s
        assert np.min(np.abs(olda - b)) <= 3.0, (b, olda)
    # Foote's novelty is weaker on this track: it finds at least one change within 3 s
    foote = np.array(rows["foote"]["boundaries"])
    assert min(np.min(np.abs(foote - b)) for b in truth.boundaries) <= 3.0, foote
    assert rows["fixed"]["boundaries"] == [5.0 * k for k in range(1, 12)]
    with open_collection(out) as col:
        olda = col.ragged("segmentations", "olda")
        assert olda.present(0) and olda.attrs["config"]["labels"] == "fmc2d"
        labels = olda.companion("labels", 0)
        assert len(labels) == len(olda.rows(0)) + 1
        assert olda.rows(0).tolist() == pytest.approx(rows["olda"]["boundaries"], abs=1e-3)


def test_nothing_is_written_next_to_the_input_or_in_cwd(music_segmented):
    d, _, _ = music_segmented
    assert sorted(p.name for p in d.iterdir()) == ["cwd", "track.h5", "track.wav"]
    assert list((d / "cwd").iterdir()) == []


def test_transnet_thresholds_the_stored_likelihood(tmp_path, video_collection, music_video_truth, monkeypatch):
    import vmtool.media

    def no_decoding(*a, **k):
        raise AssertionError("the video must not be decoded again")

    monkeypatch.setattr(vmtool.media, "iter_frames", no_decoding)
    out = tmp_path / "shots.h5"
    res = run("segment", video_collection, "-m", "transnet", "-o", out, "-q")
    assert res.exit_code == 0, res.stderr
    with open_collection(out) as col:
        b = col.ragged("segmentations", "transnet").rows(0)
        assert col.feature("handcrafted").rows(0).shape[1] == 406  # the input's content is kept
    assert len(b) == len(music_video_truth.cut_times)
    np.testing.assert_allclose(b, music_video_truth.cut_times, atol=1.5 / music_video_truth.fps)


def test_segment_in_place_and_segment_features(tmp_path, video_collection):
    copy = tmp_path / "copy.h5"
    shutil.copyfile(video_collection, copy)
    before = video_collection.read_bytes()
    res = run("segment", copy, "-m", "fixed", "--window", "3", "-o", copy, "-q")
    assert res.exit_code == 0, res.stderr
    assert video_collection.read_bytes() == before
    with open_collection(copy) as col:
        X = item_segment_features(col, 0, "handcrafted", "fixed", stats=("mean", "var", "max"))
        n_seg = len(col.ragged("segmentations", "fixed").rows(0)) + 1
        assert X.shape == (n_seg, 3 * 406)
        rows = col.feature("handcrafted").rows(0)
        np.testing.assert_allclose(X[0, :406], rows[:3].mean(axis=0), rtol=1e-5, atol=1e-4)


def test_reference_hit_rates(tmp_path, music_wav, music_truth):
    ref = tmp_path / "ref.txt"
    edges = [0.0, *music_truth.boundaries, music_truth.duration]
    ref.write_text("".join(f"{t:.3f}\tsection\n" for t in edges))
    res = run("segment", music_wav, "-m", "fixed", "--window", str(music_truth.boundaries[0]), "-o",
              tmp_path / "o.h5", "--reference", ref, "--format", "json", "-q")
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.stdout)
    (row,) = report["items"]
    assert set(row) >= {"F@0.5", "P@0.5", "R@0.5", "F@3", "P@3", "R@3"}
    assert report["mean"]["fixed"]["n_items"] == 1


def test_unknown_method_is_a_usage_error(tmp_path, music_wav):
    res = run("segment", music_wav, "-m", "spectral", "-o", tmp_path / "o.h5")
    assert res.exit_code == 2
    assert "foote" in res.stderr and "transnet" in res.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "fixed"], "method 'fixed' needs --window SECONDS > 0"),
        (["-m", "beats", "--labels", "fmc2d"], "--labels needs a music method (foote, sf or olda)"),
        (["-m", "transnet", "--threshold", "1.5"], "--threshold must be between 0 and 1, got 1.5"),
    ],
)
def test_bad_parameters(tmp_path, music_wav, args, message):
    res = run("segment", music_wav, *args, "-o", tmp_path / "o.h5")
    assert res.exit_code == 1
    assert res.stderr.strip() == f"Error: {message}"
    assert not (tmp_path / "o.h5").exists()


def test_audio_method_on_video_without_audio(tmp_path, video_only, music_wav):
    out = tmp_path / "o.h5"
    res = run("segment", video_only, "-m", "beats", "-o", out, "-q")
    assert res.exit_code == 1
    assert f"Error: {video_only}: has no audio stream, needed by beats" in res.stderr
    assert not out.exists()
    # with --keep-going the other items are segmented and the failure is reported
    res = run("segment", video_only, music_wav, "-m", "beats", "-o", out, "-q", "-k")
    assert res.exit_code == 1
    assert res.stderr.count("Error: ") == 1
    with open_collection(out) as col:
        beats = col.ragged("segmentations", "beats")
        assert [beats.present(i) for i in range(2)] == [False, True]


def test_parallel_workers_keep_input_order(tmp_path, audio_files):
    out = tmp_path / "par.h5"
    files = [audio_files[e] for e in ("wav", "flac", "ogg")]
    res = run("segment", *files, "-m", "fixed", "--window", "2", "-o", out, "-q", "-j", "2")
    assert res.exit_code == 0, res.stderr
    with open_collection(out) as col:
        assert [s.rsplit(".", 1)[1] for s in col.column("source")] == ["wav", "flac", "ogg"]
        fixed = col.ragged("segmentations", "fixed")
        assert all(fixed.present(i) and fixed.rows(i)[0] == 2.0 for i in range(3))


def test_fixed_windows_merge_a_short_remainder(tmp_path, video_collection):
    with open_collection(video_collection) as col:
        dur = float(col.column("duration")[0])
    w = 3.0
    rem = dur - w * np.floor(dur / w)
    if rem < 0.05:  # make sure there is a remainder
        w = 3.5
        rem = dur - w * np.floor(dur / w)
    counts = {}
    for md in (0.0, rem + 0.01):
        out = tmp_path / f"f{md}.h5"
        res = run("segment", video_collection, "-m", "fixed", "--window", str(w), "--min-duration", str(md),
                  "-o", out, "-q")
        assert res.exit_code == 0, res.stderr
        with open_collection(out) as col:
            counts[md] = len(col.ragged("segmentations", "fixed").rows(0))
    assert counts[rem + 0.01] == counts[0.0] - 1


def test_a_damaged_collection_is_refused_not_copied(tmp_path, music_wav):
    import h5py

    col = tmp_path / "col.h5"
    assert run("extract", music_wav, "-a", "handcrafted", "-v", "none", "-q", "-o", col).exit_code == 0
    with h5py.File(col, "r+") as f:
        off = f["features/handcrafted/offsets"]
        off[-1] = off[-1] + 5  # offsets no longer end at the data's length
    out = tmp_path / "seg.h5"
    res = run("segment", col, "-m", "fixed", "--window", "2", "-q", "-o", out)
    assert res.exit_code == 3
    assert res.stderr.strip() == (f"Error: {col}: dataset 'features/handcrafted/offsets' is inconsistent with "
                                  "'features/handcrafted/data'")
    assert not out.exists()


def test_relative_sources_are_found_beside_the_collection(tmp_path, music_wav, monkeypatch):
    """A collection made in its own folder is segmented from anywhere (audio methods decode the source)."""
    d = tmp_path / "library"
    d.mkdir()
    shutil.copy(music_wav, d / "song.wav")
    monkeypatch.chdir(d)
    assert run("extract", "song.wav", "-a", "handcrafted", "-v", "none", "-q", "-o", "col.h5").exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = run("segment", d / "col.h5", "-m", "bars", "-q", "-o", "seg.h5")
    assert res.exit_code == 0, res.stderr
    with open_collection("seg.h5") as col:
        assert col.item(0).source == "song.wav"  # stored as given, resolved when read
        assert col.ragged("segmentations", "bars").present(0)
