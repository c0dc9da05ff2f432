"""Fuzz every vmtool reader with damaged files: byte flips and truncations.

Valid files of each kind (features, segmented, catalog, model, wav, mp4) are generated,
then damaged at random and given to every command that reads them (info, segment,
embed, rank, evaluate, merge, train, extract). The only acceptable outcomes are success
or a vmtool error: exit 1 or 3 with ``Error:``/``Warning:`` lines on stderr. A
traceback, another exit code, a signal (segmentation fault) or a run longer than
``--timeout`` is a failure; its input is kept in ``--keep`` for reproduction.

Each case runs in a child forked from a process that has already imported vmtool, so a
crash or hang cannot take the fuzzer down, and no case pays the import time.

Usage::

    python benchmarks/fuzz_readers.py --cases 500 --seed 0 [--keep DIR] [--write]

``--write`` records the run (cases, outcomes, load average) in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _names() -> dict[str, Path]:
    return {"features": Path("features.h5"), "catalog": Path("catalog.h5"), "model": Path("model.pt"),
            "segmented": Path("segmented.h5"), "wav": Path("song.wav"), "mp4": Path("clip.mp4")}


def build_corpus(d: Path) -> dict[str, Path]:
    """Small valid files of every kind vmtool reads."""
    import numpy as np
    from typer.testing import CliRunner

    from vmtool.cli import app
    from vmtool.synth import synth_catalog
    from vmtool.synth import synth_music, write_media
    from vmtool.synth import synth_features

    d.mkdir(parents=True, exist_ok=True)
    run = CliRunner().invoke
    files = {k: d / v.name for k, v in _names().items()}
    synth_features(files["features"], 12, frames=(8, 12))
    synth_catalog(files["catalog"], 6, seed=1, dim=16)
    for args in (["train", files["features"], "-o", files["model"], "--epochs", "1", "-q",
                  "--audio-layers", "32,16", "--video-layers", "32,16"],
                 ["segment", files["features"], "-m", "fixed", "--window", "3", "-q", "-o", files["segmented"]]):
        res = run(app, [str(a) for a in args])
        assert res.exit_code == 0, res.output
    y, truth = synth_music(duration=6.0, tempo=120.0, sections="AB", seed=0)
    write_media(files["wav"], audio=y, sr=truth.sr)
    frames = (np.full((64, 96, 3), 40 * (k // 12), np.uint8) for k in range(72))
    write_media(files["mp4"], frames=frames, fps=12.0, audio=y[: truth.sr * 6], sr=truth.sr)
    return files


def readers(files: dict[str, Path], bad: Path, kind: str, out: Path) -> list[list[str]]:
    """The command lines that read a file of *kind* (the damaged copy is *bad*)."""
    f, m = str(files["features"]), str(files["model"])
    b, o = str(bad), str(out)
    small = ["--audio-layers", "32,16", "--video-layers", "32,16", "--epochs", "1", "-q"]
    if kind in ("features", "segmented"):
        return [["info", b], ["segment", b, "-m", "fixed", "--window", "3", "-q", "-o", o],
                ["merge", b, f if kind == "segmented" else str(files["segmented"]), "-q", "-o", o],
                ["embed", b, "--model", m, "-q", "-o", o], ["train", b, "-o", o + ".pt", *small]]
    if kind == "catalog":
        return [["info", b], ["rank", f"{b}#item00001", b, "-q"], ["evaluate", b, "-m", "clip,nw-dtw", "-q"],
                ["align", f"{b}#item00001", f"{b}#item00002", "-q"], ["merge", b, "-q", "-o", o]]
    if kind == "model":
        return [["info", b], ["embed", f, "--model", b, "-q", "-o", o],
                ["train", f, "-o", b, "--resume", *small]]
    if kind in ("wav", "mp4"):
        video = ["-v", "color"] if kind == "mp4" else ["-v", "none"]
        return [["extract", b, "-a", "handcrafted", *video, "-q", "-o", o],
                ["segment", b, "-m", "fixed", "--window", "2", "-q", "-o", o]]
    raise ValueError(kind)


def damage(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Flip 1-8 bytes, or truncate, or both."""
    b = bytearray(data)
    what = []
    if rng.random() < 0.7:
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            x = rng.randrange(1, 256)
            b[i] ^= x
            what.append(f"flip@{i}^{x}")
    if rng.random() < 0.4 or not what:
        n = rng.randrange(len(b))
        del b[n:]
        what.append(f"cut@{n}")
    return bytes(b), " ".join(what)


def run_case(args: list[str], timeout: float, workdir: Path) -> tuple[str, int, str]:
    """Run one command line in a forked child; (verdict, exit code or -signal, stderr)."""
    err_path = workdir / "stderr.txt"
    pid = os.fork()
    if pid == 0:  # child
        code = 70
        try:
            fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 2)
            nul = os.open(os.devnull, os.O_WRONLY)
            os.dup2(nul, 1)
            sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), write_through=True)
            sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), write_through=True)
            from vmtool.cli import app

            try:
                app(args=args, prog_name="vmtool", standalone_mode=True)
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 70
        finally:
            sys.stderr.flush()
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "hang", -9, ""
        time.sleep(0.02)
    err = err_path.read_text(errors="replace")
    if os.WIFSIGNALED(status):
        return "crash", -os.WTERMSIG(status), err
    code = os.WEXITSTATUS(status)
    lines = [x for x in err.splitlines() if x.strip()]
    clean = all(x.startswith(("Error: ", "Warning: ")) for x in lines)
    if code == 0 and clean:
        return "ok", code, err
    if code in (1, 3) and clean and any(x.startswith("Error: ") for x in lines):
        return "vmtool-error", code, err
    return "failure", code, err


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--keep", type=Path, default=None, help="directory for the inputs of failures")
    ap.add_argument("--write", action="store_true", help="record the run in docs/reliability.md")
    ap.add_argument("--build", type=Path, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.gettempdir() + "/numba-fuzz")
    import torch  # noqa: F401  (imported once, before the forks, but not used here)

    import vmtool.cli  # noqa: F401

    if a.build is not None:
        build_corpus(a.build)
        return 0
    rng = random.Random(a.seed)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="vmtool-fuzz-") as tmp:
        d = Path(tmp)
        # built in another process: torch's thread pools, once used, do not survive a fork
        subprocess.run([sys.executable, __file__, "--build", str(d / "corpus")], check=True)
        files = {k: d / "corpus" / v.name for k, v in _names().items()}
        kinds = list(files)
        outcomes: Counter = Counter()
        failures = []
        for case in range(a.cases):
            kind = rng.choice(kinds)
            src = files[kind]
            data, what = damage(src.read_bytes(), rng)
            work = d / f"case{case}"
            work.mkdir()
            bad = work / f"bad{src.suffix}"
            bad.write_bytes(data)
            args = rng.choice(readers(files, bad, kind, work / "out.h5"))
            verdict, code, err = run_case(args, a.timeout, work)
            outcomes[verdict] += 1
            if verdict in ("failure", "crash", "hang"):
                last = err.strip().splitlines()[-1] if err.strip() else ""
                failures.append((case, kind, what, args[0], verdict, code, last))
                print(f"case {case}: {verdict} (exit {code}) {args[0]} on damaged {kind} [{what}]: {last}",
                      file=sys.stderr)
                if a.keep is not None:
                    a.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(bad, a.keep / f"case{case}-{kind}{src.suffix}")
                    (a.keep / f"case{case}.txt").write_text(f"{' '.join(args)}\n{what}\n\n{err}")
            shutil.rmtree(work, ignore_errors=True)
    secs = time.time() - t0
    load = os.getloadavg()
    summary = (f"{a.cases} cases (seed {a.seed}): " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
               + f"; {secs:.0f} s; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(summary)
    if a.write:
        _record(summary, failures)
    return 1 if failures else 0


def _record(summary: str, failures) -> None:
    doc = ROOT / "docs" / "reliability.md"
    text = doc.read_text()
    start, end = "<!-- fuzz_readers:start -->", "<!-- fuzz_readers:end -->"
    body = f"{start}\nLast run of `python benchmarks/fuzz_readers.py`: {summary}.\n"
    if failures:
        body += "".join(f"- case {c}: {v} (exit {code}) in `{cmd}` on a damaged {k} file ({w}): {last}\n"
                        for c, k, w, cmd, v, code, last in failures)
    body += end
    i, j = text.index(start), text.index(end) + len(end)
    doc.write_text(text[:i] + body + text[j:])


if __name__ == "__main__":
    sys.exit(main())
