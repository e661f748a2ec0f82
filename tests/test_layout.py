"""The package's layout rules: modules split by concern stay under 400 lines, functions under
60, and one module (workflow_scripts/paths.py) spells the results/ layout."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "workflow_scripts"
ROOT = PACKAGE.parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, str]:
    return {str(p.relative_to(PACKAGE)): p.read_text() for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_is_over_400_lines():
    over = {
        name: len(text.splitlines())
        for name, text in _modules().items()
        if len(text.splitlines()) > MAX_MODULE_LINES
    }
    assert over == {}


def test_no_function_is_over_60_lines():
    over = {}
    for name, text in _modules().items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    over[f"{name}:{node.name}"] = length
    assert over == {}


def test_results_paths_are_spelled_by_the_paths_module_only():
    """No rule file, Snakefile line, module, benchmark or script but workflow_scripts/paths.py
    spells a path under the workflow's results/ (benchmarks/results/ is the benchmarks' own)."""
    spelling = re.compile(r"(?<![\w/.-])results/")
    sources = [
        *sorted((ROOT / "rules").glob("*.smk")),
        ROOT / "Snakefile",
        *sorted(PACKAGE.rglob("*.py")),
        *sorted((ROOT / "benchmarks").glob("*.py")),
        *sorted((ROOT / "scripts").glob("*.*")),
    ]
    spelled = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sources
        if path != PACKAGE / "paths.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if spelling.search(line)
    ]
    assert spelled == []
