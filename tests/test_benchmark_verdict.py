"""A benchmark row's ``met`` column can say no, and in --quick mode never claims a waived
target (benchmarks/verdict.py, benchmarks/run.py)."""

import sys

from workflow_scripts.config import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import run  # noqa: E402
from verdict import verdict  # noqa: E402


def test_quick_mode_does_not_judge_targets_but_still_fails_wrong_results():
    assert verdict(target_met=True, quick=True) is None
    assert verdict(target_met=False, quick=True) is None
    assert verdict(target_met=True, quick=True, correct=False) is False
    assert verdict(target_met=False, quick=False) is False
    assert verdict(target_met=True, quick=False) is True


def test_met_column_reads_yes_no_or_why_not_judged():
    rows = {
        "missed at full size": ({"met": False, "target": ">= 10x"}, "no"),
        "met": ({"met": True, "target": ">= 10x"}, "yes"),
        "quick (FPS 1.3x against >= 10x)": (
            {"met": verdict(1.3 >= 10, quick=True), "target": ">= 10x"},
            "not judged (--quick)",
        ),
        "a report": ({"met": None, "target": "report"}, "no target (report)"),
    }
    for name, (row, shown) in rows.items():
        assert run.cell(row, "met") == shown, name
