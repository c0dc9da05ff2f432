"""Every command looks and behaves alike: help, --version, -q, option names, docs."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from vmtool import __version__
from vmtool.cli import app
from vmtool.cli._docs import commands

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = commands()
ROOT_CMD = typer.main.get_command(app)

# the one meaning of each short option across all commands
SHORT = {
    "-a": "--audio-features", "-v": "--video-features", "-b": "--batch-size", "-d": "--direction",
    "-f": "--format", "-j": "--workers", "-m": "--method", "-o": "--output", "-q": "--quiet",
    "-s": "--scenario", "-h": "--help",
    # -k: --keep-going in the batch commands (as make -k), --top in rank (top-k); no command has both
    "-k": ("--keep-going", "--top"),
}


def _invoke(*args):
    return CliRunner(env={"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}).invoke(app, list(args),
                                                                                      prog_name="vmtool")


def test_the_registered_commands():
    assert COMMANDS == ["extract", "import", "label", "merge", "segment", "train", "embed", "index", "rank", "align", "render", "evaluate",
                        "analyze-structure", "info", "demo"]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_has_a_one_line_summary_and_a_pipeline_example(cmd):
    c = ROOT_CMD.commands[cmd]
    summary = c.help.strip().split("\n\n", 1)[0]
    assert "\n" not in summary and summary.endswith(".") and len(summary) <= 100, summary
    res = _invoke(cmd, "--help")
    assert res.exit_code == 0
    m = re.search(r"Examples?:\n(.*?)\n\n", c.help + "\n\n", flags=re.S)
    assert m, f"{cmd}: no Example(s): section"
    examples = [line.strip() for line in m.group(1).replace("\\\n", " ").splitlines() if line.strip()]
    assert examples and all(e.startswith("vmtool ") or e.startswith(("find ", "ls ", "cat ")) for e in examples)
    assert any(e.startswith(f"vmtool {cmd}") for e in examples)
    # the root help lists the command with its summary
    assert cmd in _invoke("--help").stdout


@pytest.mark.parametrize("cmd", COMMANDS)
def test_version_and_quiet_everywhere(cmd):
    res = _invoke(cmd, "--version")
    assert res.exit_code == 0 and res.stdout == f"vmtool {__version__}\n"
    names = {o for p in ROOT_CMD.commands[cmd].params for o in p.opts}
    assert {"-q", "--quiet", "--version"} <= names
    assert _invoke(cmd, "-h").exit_code == 0


def test_short_options_mean_the_same_everywhere():
    seen = defaultdict(set)
    for name, cmd in ROOT_CMD.commands.items():
        for p in cmd.params:
            longs = [o for o in p.opts + p.secondary_opts if o.startswith("--")]
            for o in p.opts + p.secondary_opts:
                if o.startswith("-") and not o.startswith("--"):
                    seen[o].add(longs[0] if longs else None)
                    want = SHORT.get(o)
                    assert want is not None, f"{name}: new short option {o}; add it to SHORT with its one meaning"
                    assert (longs[0] in want) if isinstance(want, tuple) else longs[0] == want, (name, o, longs)
        names = {o for p in cmd.params for o in p.opts}
        assert not {"--keep-going", "--top"} <= names
    # the shared options use the shared names
    for name, cmd in ROOT_CMD.commands.items():
        for p in cmd.params:
            if "--output" in p.opts:
                assert "-o" in p.opts
            if "--format" in p.opts:
                assert "-f" in p.opts
            if "--workers" in p.opts:
                assert "-j" in p.opts


def test_every_command_is_documented():
    cli = (ROOT / "docs" / "cli.md").read_text()
    overview = cli.split("```text", 1)[1].split("```", 1)[0]
    readme = (ROOT / "README.md").read_text()
    for cmd in COMMANDS:
        assert re.search(rf"^vmtool {cmd}\b", overview, flags=re.M), f"{cmd} missing from the overview of docs/cli.md"
        assert f"### `vmtool {cmd}`" in cli, f"{cmd} missing from the generated reference"
        assert f"vmtool {cmd}" in readme, f"{cmd} missing from README.md"
        for sh in ("bash", "zsh", "fish"):
            assert cmd in (ROOT / "completions" / f"vmtool.{sh}").read_text()


def test_exit_codes_are_documented_as_used():
    from vmtool import errors

    cli = (ROOT / "docs" / "cli.md").read_text()
    table = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", cli, flags=re.M))
    assert set(table) == {"0", "1", "2", "3", "130", "143"}
    assert errors.VmtoolError.exit_code == 1 and errors.FormatError.exit_code == 3
    assert errors.EXIT_INTERRUPTED == 130 and errors.EXIT_TERMINATED == 143
    # usage errors are 2
    assert _invoke("rank", "--no-such-option").exit_code == 2
