"""The docs stay true: README commands, CI entry point, generated CLI reference."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    head = text.split("---", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", head, flags=re.S)


def test_readme_starts_with_exactly_two_commands():
    install_demo, tests = readme_commands()
    assert install_demo.strip().endswith("vmtool demo")
    assert "pytest" in tests and "[test]" in tests


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == readme_commands()[1].strip()


def test_cli_reference_is_current():
    from vmtool.cli._docs import DOC, updated

    text = DOC.read_text()
    assert updated(text) == text, "docs/cli.md is out of date: run python -m vmtool.cli._docs --write"


def test_tables_generated_from_the_registries_are_current():
    from vmtool.cli._docs import SECTIONS, updated_sections

    for path in dict.fromkeys(f for f, _, _ in SECTIONS):
        text = path.read_text()
        assert updated_sections(path, text) == text, f"{path.name} is out of date: run python -m vmtool.cli._docs --write"


def test_completion_scripts_exist():
    # Static scripts (tests/test_completions.py checks they match the CLI), not typer's dynamic shims.
    for sh in ("bash", "zsh", "fish"):
        text = (ROOT / "completions" / f"vmtool.{sh}").read_text()
        assert "python -m vmtool.cli._completions --write" in text and "_VMTOOL_COMPLETE" not in text


def test_every_extractor_is_documented():
    from vmtool import features

    doc = (ROOT / "docs" / "features.md").read_text()
    for name in features.names():
        assert f"`{name}`" in doc


def test_every_segmentation_method_is_documented():
    # docs/methods.md's table of segmentation methods lists exactly the registered ones
    from vmtool.segmentation import registry

    text = (ROOT / "docs" / "methods.md").read_text()
    section = text.split("## Segmentations (`vmtool segment`)", 1)[1].split("\n## ", 1)[0]
    table = section.split("| method | what | paper |", 1)[1].split("\n\n", 1)[0]
    documented = re.findall(r"^\| `([\w-]+)` \|", table, flags=re.M)
    assert sorted(documented) == sorted(registry.names())
