"""The house rules of docs/architecture.md: import-linter's contracts hold, and the doc is complete.

The contracts live in pyproject.toml (``[tool.importlinter]``); import-linter runs on
this checkout in a subprocess, without its cache, and a broken contract fails with
its report (the chain of imports that breaks it). docs/architecture.md must have a
row for every package and top-level module of vmtool/ (a new one without a line
fails) and must show the layers exactly as the contract checks them.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
PYPROJECT = ROOT / "pyproject.toml"

# a row of the doc's tables of modules: | `vmtool.name` | purpose |   (planned ones say "(planned)")
ROW = re.compile(r"^\|\s*`vmtool\.([A-Za-z_][A-Za-z0-9_]*)`(/)?\s*(\(planned\))?\s*\|", re.M)


def _on_disk() -> set[str]:
    pkg = ROOT / "vmtool"
    modules = {p.stem for p in pkg.glob("*.py") if p.stem != "__init__"}
    packages = {p.parent.name for p in pkg.glob("*/__init__.py")}
    return modules | packages


def _rows() -> dict[str, bool]:
    """Module name -> whether the doc marks it as planned."""
    return {m.group(1): bool(m.group(3)) for m in ROW.finditer(DOC.read_text(encoding="utf-8"))}


def test_import_contracts_hold():
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(PYPROJECT)!r}, no_cache=True, no_logo=True))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"import-linter: a contract of pyproject.toml is broken\n{proc.stdout}\n{proc.stderr}"


def test_contracts_are_the_documented_ones():
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]
    assert config["root_packages"] == ["vmtool"]
    contracts = {c["id"]: c for c in config["contracts"]}
    assert {"layers", "library-never-prints", "ranking-without-models", "synth-for-demo-and-tests"} <= set(contracts)
    layers = contracts["layers"]
    assert layers["exhaustive"] is True and layers["containers"] == ["vmtool"]
    doc = DOC.read_text(encoding="utf-8")
    block = re.search(r"```text\n# layers\n(.*?)```", doc, re.S)
    assert block, "docs/architecture.md has no ```text block starting with '# layers'"
    shown = [line.strip() for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]
    assert shown == layers["layers"], "docs/architecture.md shows other layers than pyproject.toml's contract"
    for cid in contracts:
        assert f"`{cid}`" in doc, f"contract {cid!r} is not described in docs/architecture.md"


def test_doc_names_every_package_and_module():
    rows = _rows()
    missing = sorted(_on_disk() - set(rows))
    assert not missing, f"docs/architecture.md has no row for vmtool.{', vmtool.'.join(missing)}"
    stale = sorted(name for name, planned in rows.items() if not planned and name not in _on_disk())
    assert not stale, f"docs/architecture.md describes modules that do not exist: {stale}"
