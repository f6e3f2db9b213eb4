"""Architecture checks: the import-linter contracts hold, and every module opens with a one-line summary."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "edgekube"
MODULES = sorted(PACKAGE.rglob("*.py"))


def test_import_linter_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache", "--config", str(ROOT / ".importlinter")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_there_are_modules_to_check() -> None:
    assert PACKAGE / "__init__.py" in MODULES
    assert len(MODULES) > 20


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_opens_with_a_one_line_summary(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    first = tree.body[0] if tree.body else None
    assert isinstance(first, ast.Expr), "the module must open with a docstring"
    assert isinstance(first.value, ast.Constant) and isinstance(first.value.value, str), (
        "the first statement is no docstring"
    )
    doc = first.value.value
    summary, _, rest = doc.partition("\n")
    assert summary.strip(), "the docstring's first line must be the summary, not blank"
    assert summary == summary.strip(), "the summary must not start or end with spaces"
    assert not rest or not rest.split("\n", 1)[0].strip(), "the summary must be one line, followed by a blank line"
