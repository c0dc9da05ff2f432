"""examples/Makefile: the whole pipeline on a small demo corpus, then Make's bookkeeping.

One ``make`` builds the corpus, features, segments, model, catalog, evaluation and,
for each held-out clip, a ranking and an alignment. A second ``make`` must have
nothing to do, and a video added to ``DIR/queries/`` must bring only its own ranking
and alignment. Fast settings: 8 clips of 24 s (64x36), 2 held out, 3 epochs, CPU (under a minute
on two idle cores).

examples/catalog.mk is checked with a stand-in for vmtool (a script that logs its
arguments and writes its output file): which commands run, on which files, after each
change. And docs/pipelines.md must show it as it is. Skipped without GNU make.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vmtool.store import open_collection

MAKEFILE = Path(__file__).resolve().parent.parent / "examples" / "Makefile"
VMTOOL = shlex.join([sys.executable, "-m", "vmtool"])
CLIPS, HELD_OUT = 8, 2
FAST = {"CLIPS": CLIPS, "DURATION": 24, "HELD_OUT": HELD_OUT, "EPOCHS": 3, "TOP": CLIPS, "DEVICE": "cpu"}


def _gnu_make() -> str:
    exe = shutil.which("make")
    if exe is None:
        pytest.skip("make is not installed")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    if "GNU Make" not in out:
        pytest.skip(f"examples/Makefile needs GNU make, found: {out.splitlines()[0] if out else exe}")
    return exe


class Make:
    """``make -f examples/Makefile`` with the fast settings into one directory."""

    def __init__(self, exe: str, directory: Path):
        self.exe = exe
        self.dir = directory
        self.env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [self.exe, "--no-print-directory", "-f", str(MAKEFILE), f"VMTOOL={VMTOOL}", f"DIR={self.dir}",
               *(f"{k}={v}" for k, v in FAST.items()), *args]
        r = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=900)
        if check:
            assert r.returncode == 0, f"{shlex.join(cmd)} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    def planned(self) -> list[str]:
        """The vmtool commands a ``make -n`` would run."""
        return [ln for ln in self("-n").stdout.splitlines() if VMTOOL in ln]


def _mtimes(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): p.stat().st_mtime_ns for p in d.rglob("*") if p.is_file()}


def _ids(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def _tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    make = Make(_gnu_make(), tmp_path_factory.mktemp("examples") / "demo")
    make()
    return make


def test_make_builds_the_pipeline(built):
    d = built.dir
    train, test = _ids(d / "train-ids.txt"), _ids(d / "test-ids.txt")
    assert len(train) == CLIPS - HELD_OUT and len(test) == HELD_OUT and not set(train) & set(test)
    all_ids = sorted(train + test)
    assert all_ids == sorted(p.stem for p in (d / "media").glob("*.mp4"))

    with open_collection(d / "catalog.h5") as cat:
        assert sorted(cat.ids) == all_ids
        assert cat.names("embeddings")
    with open_collection(d / "segments.h5") as seg:
        assert "olda" in seg.names("segmentations")
    assert (d / "model.pt").stat().st_size > 0

    ev = json.loads((d / "eval.json").read_text())
    assert {r["method"] for r in ev["results"]} == {"btrace", "btrace-mean", "nw-dtw"}
    for r in ev["results"]:
        assert r["queries"] == HELD_OUT
        assert 0 <= r["r1"] <= r["r10"] <= 100

    for qid in test:
        rows = _tsv(d / "ranks" / f"{qid}.tsv")
        # TOP = the catalog's size: the whole catalog, ranked, own track included
        assert [int(r["rank"]) for r in rows] == list(range(1, CLIPS + 1))
        assert sorted(r["id"] for r in rows) == all_ids
        dist = [float(r["distance"]) for r in rows]
        assert dist == sorted(dist)

        al = json.loads((d / "aligns" / f"{qid}.json").read_text())
        assert al["target"].endswith(f"#{rows[0]['id']}")
        assert al["edits"] and al["path"]
        assert (d / "aligns" / f"{qid}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_second_make_does_nothing(built):
    assert built("-q", check=False).returncode == 0
    assert built.planned() == []
    assert "Nothing to be done" in built().stdout


def test_new_query_rebuilds_only_its_targets(built):
    d = built.dir
    held_out = _ids(d / "test-ids.txt")[-1]
    (d / "queries").mkdir(exist_ok=True)
    shutil.copy2(d / "media" / f"{held_out}.mp4", d / "queries" / "extra.mp4")
    assert built("-q", check=False).returncode == 1

    plan = built.planned()
    assert len(plan) == 2, plan
    assert " rank " in plan[0] and "queries/extra.mp4" in plan[0] and "ranks/extra.tsv" in plan[0]
    assert " align " in plan[1] and "aligns/extra.json" in plan[1]

    before = _mtimes(d)
    built(str(d / "ranks" / "extra.tsv"))
    after = _mtimes(d)
    assert set(after) - set(before) == {"ranks/extra.tsv"}
    assert {k for k in before if after[k] != before[k]} == set()
    # the raw video is processed exactly as the catalog's items: same ranking as the item's
    got, want = _tsv(d / "ranks" / "extra.tsv"), _tsv(d / "ranks" / f"{held_out}.tsv")
    assert [r["id"] for r in got] == [r["id"] for r in want]

    # only the alignment is left; touching the new query brings back its ranking alone
    assert [" align " in c for c in built.planned()] == [True]
    os.utime(d / "queries" / "extra.mp4")
    plan = built.planned()
    assert len(plan) == 2 and "ranks/extra.tsv" in plan[0] and "aligns/extra.json" in plan[1], plan


# -- examples/catalog.mk: Make's bookkeeping, with a stand-in for vmtool ---------------------

CATALOG_MK = MAKEFILE.with_name("catalog.mk")

FAKE_VMTOOL = """\
import os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_VMTOOL_LOG"], "a") as f:
    f.write(" ".join(args) + "\\n")
if "-o" in args:
    with open(args[args.index("-o") + 1], "w") as f:
        f.write("fake\\n")
if args[0] == "rank":
    print("rank\\tid\\n1\\ttrack")
"""


def test_pipelines_doc_shows_catalog_mk():
    doc = (MAKEFILE.parent.parent / "docs" / "pipelines.md").read_text()
    blocks = [b for b in doc.split("```make\n")[1:] if b.startswith("# A music catalog")]
    assert len(blocks) == 1
    assert blocks[0].split("```", 1)[0] == CATALOG_MK.read_text()


def test_catalog_mk_recomputes_only_what_changed(tmp_path):
    exe = _gnu_make()
    fake = tmp_path / "fake_vmtool.py"
    fake.write_text(FAKE_VMTOOL)
    log = tmp_path / "log.txt"
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env["FAKE_VMTOOL_LOG"] = str(log)
    for f in ("music/a/one.mp3", "music/b/two.wav", "music/notes.txt", "videos/v1.mp4", "videos/v2.mkv",
              "new/n1.mp4"):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_bytes(b"")

    def make(*args: str) -> list[str]:
        log.write_text("")
        cmd = [exe, "--no-print-directory", "-f", str(CATALOG_MK), f"VMTOOL={shlex.join([sys.executable, str(fake)])}",
               *args]
        r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        return log.read_text().splitlines()

    ran = make()
    assert [c.split()[0] for c in ran].count("extract") == 2
    assert "extract music/a/one.mp3 music/b/two.wav -a handcrafted" in "\n".join(ran)
    assert "extract videos/v1.mp4 videos/v2.mkv -a handcrafted" in "\n".join(ran)
    assert sorted(c.split()[0] for c in ran) == ["embed", "extract", "extract", "rank", "segment", "segment", "train"]
    assert (tmp_path / "build" / "ranks" / "n1.tsv").read_text().startswith("rank\tid")
    assert make() == []

    (tmp_path / "new" / "n2.mp4").write_bytes(b"")
    assert make() == ["rank new/n2.mp4 build/catalog.h5 -m btrace-mean -k 10 --format tsv --device auto -q"]

    (tmp_path / "music" / "c").mkdir()
    (tmp_path / "music" / "c" / "three.flac").write_bytes(b"")
    ran = make()
    assert ran[0].startswith("extract music/c/three.flac -a handcrafted -v none --resume -o build/music.h5")
    assert ran[1].startswith("segment build/music.h5 -m olda --resume -o build/music-seg.h5")
    assert ran[2].startswith("embed build/music-seg.h5 --model build/model.pt --resume -o build/catalog.h5")
    assert sorted(c.split()[0] for c in ran) == ["embed", "extract", "rank", "rank", "segment"]
    assert make("-q") == []
