"""The package's layout rules: modules split by concern stay small, functions stay short."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "workflow_scripts"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MODULES = sorted(PACKAGE.rglob("*.py"))


def _relative(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


@pytest.mark.parametrize("module", MODULES, ids=_relative)
def test_module_is_at_most_400_lines(module):
    lines = len(module.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_relative(module)}: {lines} lines"


@pytest.mark.parametrize("module", MODULES, ids=_relative)
def test_functions_are_at_most_60_lines(module):
    tree = ast.parse(module.read_text())
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{_relative(module)}: " + ", ".join(long)


def test_results_paths_are_built_by_the_paths_module_only():
    """One module owns the file layout: no other module, rule file or the Snakefile spells a
    ``results/`` path (code, docstrings and help texts alike)."""
    root = PACKAGE.parent
    sources = [*MODULES, *sorted((root / "rules").glob("*.smk")), root / "Snakefile"]
    owner = PACKAGE / "paths.py"
    spelled = [
        f"{path.relative_to(root)}:{number}"
        for path in sources
        if path != owner
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "results/" in line
    ]
    assert spelled == []
