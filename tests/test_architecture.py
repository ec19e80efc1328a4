"""The floors hold: import-linter's contracts in pyproject.toml pass here and fail on a planted upward import."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
SCRIPTS = {"generate", "run", "demo"}


def _packages() -> list[str]:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    if not LINT_IMPORTS.exists():
        pytest.skip(f"{LINT_IMPORTS} not installed (make setup installs import-linter)")
    # cwd first on the path, so the copy's packages are the ones analysed, not the installed checkout.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """The packages and pyproject.toml, copied: a place to plant imports without touching the checkout."""
    for name in _packages():
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contracts_hold_on_this_tree():
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers_contract(tree_copy: Path):
    records = tree_copy / "core" / "records.py"
    records.write_text(records.read_text() + "\nfrom loop.generate import generate  # planted\n")
    result = _lint_imports(tree_copy)
    assert result.returncode != 0
    assert "floors:" in result.stdout and "BROKEN" in result.stdout
    assert "core.records -> loop.generate" in result.stdout


def test_a_sideways_import_between_stages_breaks_it(tree_copy: Path):
    export = tree_copy / "review_app" / "export.py"
    export.write_text(export.read_text() + "\nfrom generator.prompts import Planner  # planted\n")
    result = _lint_imports(tree_copy)
    assert result.returncode != 0
    assert "review_app.export -> generator.prompts" in result.stdout


def test_two_modules_importing_each_other_break_the_cycles_contract(tree_copy: Path):
    io = tree_copy / "core" / "io.py"
    io.write_text(io.read_text() + "\nimport core.inputs  # planted: core.inputs imports core.io\n")
    result = _lint_imports(tree_copy)
    assert result.returncode != 0
    assert "no import cycles" in result.stdout and "BROKEN" in result.stdout


def test_no_package_imports_a_script():
    """generate.py, run.py and demo.py are the roof's roof: thin entry points nothing else depends on."""
    offenders = []
    for package in _packages():
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
                offenders += [f"{path.relative_to(REPO)} imports {n}" for n in names if n.split(".")[0] in SCRIPTS]
    assert not offenders
