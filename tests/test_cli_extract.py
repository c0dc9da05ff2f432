"""``vmtool extract`` and ``vmtool info`` through the real command line (CliRunner)."""

from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from vmtool.cli import app
from vmtool.store import open_collection

runner = CliRunner()

FAST = ["-a", "handcrafted", "-v", "color"]


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, music_video):
    """The default extraction (handcrafted, transnet, color) of the 20 s synthetic clip."""
    out = tmp_path_factory.mktemp("extract") / "clip.h5"
    res = run("extract", music_video, "-o", out, "-q")
    assert res.exit_code == 0, res.stderr
    return out


def test_default_extract_writes_all_features(extracted, music_video_truth):
    res = run("info", extracted, "--format", "json")
    assert res.exit_code == 0
    d = json.loads(res.stdout)
    assert d["n_items"] == 1 and d["modalities"] == {"audio+video": 1}
    feats = {f["name"]: f for f in d["features"]}
    n_rows = math.ceil(music_video_truth.music.duration)
    assert {n: (f["dim"], f["rate"], f["rows"]) for n, f in feats.items()} == {
        "handcrafted": (406, 1.0, n_rows),
        "transnet": (1024, 1.0, n_rows),
        "color": (26, 1.0, n_rows),
    }
    curves = {c["name"]: c for c in d["curves"]}
    assert curves["shot_likelihood"]["rate"] == 25.0
    assert curves["shot_likelihood"]["rows"] == music_video_truth.n_frames
    assert set(d["config"]["video"]) == {"transnet", "color"} and d["config"]["rate"] == 1.0
    assert d["command"].startswith("vmtool extract")


def test_shot_likelihood_peaks_at_the_cuts(extracted, music_video_truth):
    with open_collection(extracted) as col:
        lik = col.curve("shot_likelihood").rows(0)
    found = np.flatnonzero(lik > 0.5) / 25.0
    for cut in music_video_truth.cut_times:
        assert np.min(np.abs(found - cut)) <= 0.08, f"cut at {cut:.2f} s not found"


def test_info_table_is_readable(extracted):
    res = run("info", extracted)
    assert res.exit_code == 0
    for word in ("collection", "handcrafted", "transnet", "color", "shot_likelihood", "25 Hz", "1 Hz"):
        assert word in res.stdout


def test_audio_only_and_video_only_items(tmp_path, audio_files, video_only):
    out = tmp_path / "mixed.h5"
    res = run("extract", audio_files["wav"], video_only, *FAST, "-o", out, "-q")
    assert res.exit_code == 0, res.stderr
    with open_collection(out) as col:
        hc, color = col.feature("handcrafted"), col.feature("color")
        assert hc.rows(0).shape[0] > 0 and color.rows(0).shape[0] == 0
        assert hc.rows(1).shape[0] == 0 and color.rows(1).shape[0] > 0
        assert [it.modalities for it in col.items()] == ["audio", "video"]


def test_rate_option(tmp_path, music_wav, music_truth):
    out = tmp_path / "fast.h5"
    res = run("extract", music_wav, "-a", "handcrafted", "-v", "none", "--rate", "4", "-o", out, "-q")
    assert res.exit_code == 0, res.stderr
    with open_collection(out) as col:
        assert col.feature("handcrafted").rows(0).shape == (math.ceil(music_truth.duration * 4), 406)
        assert col.config["rate"] == 4.0


def test_resume_skips_items_already_there(tmp_path, music_wav, audio_files):
    out = tmp_path / "cat.h5"
    args = ["-a", "handcrafted", "-v", "none", "-o", out]
    assert run("extract", music_wav, *args, "-q").exit_code == 0
    res = run("extract", music_wav, audio_files["flac"], *args, "--resume")
    assert res.exit_code == 0, res.stderr
    assert "1 item(s) added, 1 already present" in res.stderr
    with open_collection(out) as col:
        assert len(col) == 2
        assert len(col.attrs["history"]) == 2
    # nothing new: the file is left as it is (no copy), only its time stamp moves (for Make)
    before = out.read_bytes()
    os.utime(out, (1_000_000_000, 1_000_000_000))
    res = run("extract", music_wav, *args, "--resume")
    assert res.exit_code == 0 and "0 item(s) added, 1 already present" in res.stderr
    assert out.read_bytes() == before and out.stat().st_mtime > 1_000_000_000
    res = run("extract", music_wav, "-a", "handcrafted", "--rate", "2", "-v", "none", "-o", out, "--resume")
    assert res.exit_code == 1 and "different configuration" in res.stderr


def test_stdin_paths_and_parallel_workers(tmp_path, audio_files):
    out = tmp_path / "par.h5"
    paths = "\n".join(str(audio_files[e]) for e in ("wav", "flac", "ogg")) + "\n"
    res = run("extract", "-", "-a", "handcrafted", "-v", "none", "-o", out, "-q", "-j", "2", input=paths)
    assert res.exit_code == 0, res.stderr
    with open_collection(out) as col:
        assert [s.rsplit(".", 1)[1] for s in col.column("source")] == ["wav", "flac", "ogg"]
        # ids clash on the stem "music": later ones get a hash suffix
        assert len(set(col.ids)) == 3


def test_keep_going_reports_every_failure_and_keeps_the_rest(tmp_path, music_wav):
    bad = tmp_path / "fake.mp4"
    bad.write_text("not a video")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    out = tmp_path / "kg.h5"
    res = run("extract", bad, music_wav, empty, tmp_path / "missing.mp3", *FAST, "-o", out, "-k")
    assert res.exit_code == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 3
    assert any(str(bad) in e and "not a media file" in e for e in errors)
    assert any(str(empty) in e and "empty file" in e for e in errors)
    assert any("missing.mp3" in e and "no such file" in e for e in errors)
    assert "1 item(s) added, 3 failed" in res.stderr
    with open_collection(out) as col:
        assert len(col) == 1


def test_list_extractors_json():
    res = run("extract", "--list", "--format", "json")
    assert res.exit_code == 0
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["handcrafted"]["dim"] == 406 and rows["handcrafted"]["available"]
    assert rows["transnet"]["dim"] == 1024 and "shot_likelihood" in rows["transnet"]["curves"]
    assert rows["color"]["modality"] == "video"
    assert rows["vggish"]["dim"] == 128  # listed even where its weights are absent


def test_non_ascii_path_with_spaces(tmp_path, short_clip):
    src = tmp_path / "dossier à part" / "clip été 1.mp4"
    src.parent.mkdir()
    shutil.copyfile(short_clip, src)
    out = tmp_path / "dossier à part" / "sortie é.h5"
    res = run("extract", src, *FAST, "-o", out, "-q")
    assert res.exit_code == 0, res.stderr
    with open_collection(out) as col:
        assert col.ids == ["clip été 1"]
        # a 0.5 s clip still gets one row per feature
        assert col.feature("handcrafted").rows(0).shape == (1, 406)
        assert col.feature("color").rows(0).shape == (1, 26)


# -- audio and video passes overlapped -------------------------------------------------------


def test_overlapped_passes_give_the_sequential_results(music_video):
    from vmtool.extract import ExtractConfig, build_extractors, extract_item

    config = ExtractConfig(audio_features=("handcrafted",), video_features=("color",))
    ex = build_extractors(config)
    seen: list[float] = []
    both = extract_item(music_video, ex, config, on_advance=seen.append, overlap=True)
    one_by_one = extract_item(music_video, ex, config, overlap=False)
    assert list(both.outputs) == list(one_by_one.outputs) == ["handcrafted", "color"]
    for name in both.outputs:
        np.testing.assert_array_equal(both.outputs[name].frames, one_by_one.outputs[name].frames)
    assert seen and seen == sorted(seen) and seen[-1] <= 2 * 20.0 + 1e-6  # progress never goes back


def test_a_failing_video_pass_ends_the_audio_pass(music_video, monkeypatch):
    from vmtool.errors import MediaError
    from vmtool.extract import ExtractConfig, build_extractors, extract_item
    from vmtool.features import color

    def broken(self, t, frame):
        raise MediaError("frame 0 cannot be read", music_video)

    config = ExtractConfig(audio_features=("handcrafted",), video_features=("color",))
    monkeypatch.setattr(color.ColorAccumulator, "push", broken)
    with pytest.raises(MediaError, match="frame 0 cannot be read"):
        extract_item(music_video, build_extractors(config), config, overlap=True)
