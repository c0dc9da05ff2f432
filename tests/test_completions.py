"""The static shell completion scripts of completions/ match the CLI and work."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import typer

from vmtool.cli import _completions, app
from vmtool.models import loss_registry
from vmtool.segmentation import registry as seg_registry
from vmtool.training import presets

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {sh: ROOT / "completions" / f"vmtool.{sh}" for sh in ("bash", "zsh", "fish")}


def _commands() -> dict[str, list]:
    """Visible subcommand name -> its visible options, straight from the app."""
    root = typer.main.get_command(app)
    ctx = typer.Context(root, info_name="vmtool")
    out = {}
    for name in root.list_commands(ctx):
        cmd = root.get_command(ctx, name)
        if not cmd.hidden:
            out[name] = [p for p in cmd.params if p.param_type_name == "option" and not p.hidden]
    return out


def _choices(command: str, option: str) -> list[str]:
    (param,) = [p for p in _commands()[command] if option in p.opts]
    return [str(getattr(c, "value", c)) for c in param.type_descriptor.choices]


def test_scripts_are_up_to_date():
    for path, text in _completions.render().items():
        assert path.read_text() == text, (
            f"completions/{path.name} is out of date: run {_completions.REGENERATE}"
        )


def test_check_reports_stale_scripts(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_completions, "DIR", tmp_path)
    assert _completions.main(["--check"]) == 1
    assert _completions.REGENERATE in capsys.readouterr().err
    assert _completions.main(["--write"]) == 0
    assert _completions.main(["--check"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vmtool.bash", "vmtool.fish", "vmtool.zsh"]


def _section(shell: str, text: str, command: str) -> str:
    """The part of a script that completes one subcommand."""
    if shell == "fish":
        return "\n".join(line for line in text.splitlines() if f"__fish_seen_subcommand_from {command}'" in line)
    start = text.index(f"\n{' ' * (8 if shell == 'bash' else 16)}{command})\n")
    end = text.index(";;", start) if shell == "zsh" else text.index("\n            ;;", start)
    return text[start:end]


@pytest.mark.parametrize("shell", SCRIPTS)
def test_every_command_and_option_is_in_the_scripts(shell):
    text = SCRIPTS[shell].read_text()
    assert "do not edit by hand" in text and "_VMTOOL_COMPLETE" not in text
    for command, options in _commands().items():
        assert re.search(rf"(?<![\w-]){re.escape(command)}(?![\w-])", text), command
        section = _section(shell, text, command)
        for param in options:
            for name in param.opts + param.secondary_opts:
                if not name.startswith("--"):
                    continue
                pattern = rf"-l {name[2:]}\b" if shell == "fish" else rf"(?<![\w-]){name}(?![\w-])"
                assert re.search(pattern, section), f"{shell}: vmtool {command} {name}"


# bash, for real ---------------------------------------------------------------------------------

def complete_bash(line: str, cwd: Path = ROOT) -> list[str]:
    """COMPREPLY for the last word of ``line`` (a trailing space starts an empty word)."""
    words = line.split() + ([""] if line.endswith(" ") else [])
    script = 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _vmtool; printf "%s\\n" "${COMPREPLY[@]}"'
    res = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "_", str(SCRIPTS["bash"]), *words],
                         cwd=cwd, capture_output=True, text=True, check=True, timeout=30)
    assert res.stderr == ""
    return [w for w in res.stdout.splitlines() if w]


needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


@needs_bash
def test_bash_completes_subcommands_and_options():
    assert complete_bash("vmtool ra") == ["rank"]
    assert complete_bash("vmtool ") == list(_commands())
    assert complete_bash("vmtool --vers") == ["--version"]
    assert complete_bash("vmtool rank --me") == ["--method"]
    assert complete_bash("vmtool rank --format json --exclude-s") == ["--exclude-self"]


@needs_bash
def test_bash_completes_choices():
    # rank --method is a free METHOD[:INDEL] string; these are enum (Choice) options.
    assert complete_bash("vmtool rank --format ") == _choices("rank", "--format")
    assert complete_bash("vmtool rank -f t") == [c for c in _choices("rank", "--format") if c.startswith("t")]
    # --loss NAME[:KEY=VALUE,...] and --preset complete the registries' names (from their metavar)
    assert complete_bash("vmtool train --loss ") == list(loss_registry.names())
    assert complete_bash("vmtool train --preset ") == presets.preset_names()
    assert complete_bash("vmtool segment -m ") == _choices("segment", "--method")
    # --query-segments METHOD[:KEY=VALUE,...] completes the registered methods (its shell_complete)
    for cmd in ("rank", "align"):
        assert complete_bash(f"vmtool {cmd} --query-segments ") == list(seg_registry.names())
    assert complete_bash("vmtool rank --query-segments f") == [n for n in seg_registry.names() if n.startswith("f")]
    # --opt=value: bash splits it into '--format' '=' 'value'
    assert complete_bash("vmtool rank --format = j") == ["json"]
    assert complete_bash("vmtool rank --format =") == _choices("rank", "--format")


@needs_bash
def test_bash_completes_files_and_dirs(tmp_path):
    (tmp_path / "clip.mp4").touch()
    (tmp_path / "clap.wav").touch()
    (tmp_path / "cdir").mkdir()
    assert sorted(complete_bash("vmtool info c", tmp_path)) == ["cdir", "clap.wav", "clip.mp4"]
    assert sorted(complete_bash("vmtool extract a.mp4 cl", tmp_path)) == ["clap.wav", "clip.mp4"]
    assert sorted(complete_bash("vmtool segment x.h5 -o c", tmp_path)) == ["cdir", "clap.wav", "clip.mp4"]
    assert complete_bash("vmtool segment x.h5 --plot c", tmp_path) == ["cdir"]  # a directory option
    assert complete_bash("vmtool rank --top ", tmp_path) == []  # a number: nothing to offer


# zsh and fish -----------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_script_parses():
    subprocess.run(["zsh", "-n", str(SCRIPTS["zsh"])], check=True, timeout=30)
    assert SCRIPTS["zsh"].read_text().startswith("#compdef vmtool\n")


needs_fish = pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")


@needs_fish
def test_fish_script_parses():
    subprocess.run(["fish", "--no-execute", str(SCRIPTS["fish"])], check=True, timeout=30)


@needs_fish
def test_fish_completes():
    def complete(line: str) -> list[str]:
        res = subprocess.run(["fish", "--no-config", "-c", 'source $argv[1]; complete -C $argv[2]',
                              str(SCRIPTS["fish"]), line], capture_output=True, text=True, check=True, timeout=30)
        return [w.split("\t")[0] for w in res.stdout.splitlines()]

    assert complete("vmtool ra") == ["rank"]
    assert complete("vmtool rank --me") == ["--method"]
    assert sorted(complete("vmtool rank --format ")) == sorted(_choices("rank", "--format"))
