"""Damaged files through every reader: a vmtool error (exit 1 or 3, one line per problem)
or success, never a traceback.

A small deterministic hypothesis run (fixed seed and example count, no per-example
deadline so that load cannot fail it). The longer run, each case in a child process so
that a crash or a hang is observed, is ``benchmarks/fuzz_readers.py``
(docs/reliability.md records its last count).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from typer.testing import CliRunner

from vmtool.cli import app

runner = CliRunner()
SMALL = ["--audio-layers", "16", "--video-layers", "16", "--epochs", "1", "-q"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, odd_size_video):
    from vmtool.synth import synth_catalog
    from vmtool.synth import synth_music, write_media
    from vmtool.synth import synth_features

    d = tmp_path_factory.mktemp("fuzz")
    files = {"features": d / "features.h5", "catalog": d / "catalog.h5", "model": d / "model.pt",
             "segmented": d / "segmented.h5", "wav": d / "song.wav", "mp4": odd_size_video}
    synth_features(files["features"], 8, frames=(6, 9))
    synth_catalog(files["catalog"], 5, seed=1, dim=16)
    for args in (["train", files["features"], "-o", files["model"], *SMALL],
                 ["segment", files["features"], "-m", "fixed", "--window", "3", "-q", "-o", files["segmented"]]):
        res = runner.invoke(app, [str(a) for a in args])
        assert res.exit_code == 0, res.output
    y, truth = synth_music(duration=4.0, tempo=120.0, sections="AB", seed=0)
    write_media(files["wav"], audio=y, sr=truth.sr)
    return files


def readers(files, bad: str, kind: str, out: str) -> list[list[str]]:
    f, m = str(files["features"]), str(files["model"])
    if kind in ("features", "segmented"):
        return [["info", bad], ["segment", bad, "-m", "fixed", "--window", "3", "-q", "-o", out],
                ["merge", bad, "-q", "-o", out], ["embed", bad, "--model", m, "-q", "-o", out],
                ["train", bad, "-o", out + ".pt", *SMALL]]
    if kind == "catalog":
        return [["info", bad], ["rank", f"{bad}#item00001", bad, "-q"], ["evaluate", bad, "-m", "clip,nw-dtw", "-q"],
                ["align", f"{bad}#item00001", f"{bad}#item00002", "-q"], ["merge", bad, "-q", "-o", out]]
    if kind == "model":
        return [["info", bad], ["embed", f, "--model", bad, "-q", "-o", out]]
    if kind == "mp4":
        return [["extract", bad, "-a", "none", "-v", "color", "-q", "-o", out]]
    return [["extract", bad, "-a", "handcrafted", "-v", "none", "-q", "-o", out],
            ["segment", bad, "-m", "fixed", "--window", "2", "-q", "-o", out]]


damages = st.tuples(
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=6),  # (where, xor)
    st.one_of(st.none(), st.floats(0, 1, exclude_max=True)),  # truncate at this fraction
)


@settings(max_examples=30, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kind=st.sampled_from(["features", "segmented", "catalog", "model", "wav", "mp4"]), damage=damages,
       which=st.integers(0, 4))
def test_damaged_files_give_vmtool_errors_only(corpus, kind, damage, which):
    flips, cut = damage
    data = bytearray(corpus[kind].read_bytes())
    for where, x in flips:
        data[int(where * len(data))] ^= x
    if cut is not None:
        del data[int(cut * len(data)):]
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / f"bad{corpus[kind].suffix}"
        bad.write_bytes(bytes(data))
        options = readers(corpus, str(bad), kind, str(Path(tmp) / "out.h5"))
        args = options[which % len(options)]
        res = runner.invoke(app, args)
    assert res.exception is None or isinstance(res.exception, SystemExit), (args, res.exception, res.stderr)
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert all(x.startswith(("Error: ", "Warning: ")) for x in lines), (args, res.stderr)
    assert res.exit_code in (0, 1, 3), (args, res.exit_code, res.stderr)
    if res.exit_code:
        assert any(x.startswith("Error: ") for x in lines)


def test_the_corpus_is_valid(corpus):
    """Undamaged, every reader succeeds: the fuzz test checks damage, not a broken setup."""
    for kind in ("features", "segmented", "catalog", "model", "wav", "mp4"):
        with tempfile.TemporaryDirectory() as tmp:
            for args in readers(corpus, str(corpus[kind]), kind, str(Path(tmp) / "out.h5")):
                res = runner.invoke(app, args)
                assert res.exit_code == 0, (args, res.stderr)
                np.testing.assert_equal(res.exception is None or isinstance(res.exception, SystemExit), True)
