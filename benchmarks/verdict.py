"""How a benchmark row says whether it met its target: True, False, or None (not judged).

A ``--quick`` run uses sizes too small for the speed and memory targets: those are not judged
there (None, printed "not judged (--quick)"), never reported as met. Correctness checks that
hold at any size (identical picks, agreement with the baseline) are judged in both modes.
"""

from __future__ import annotations

NOT_JUDGED_QUICK = "not judged (--quick)"


def verdict(target_met: bool, quick: bool, correct: bool = True) -> bool | None:
    """False when a correctness check failed; else the target's verdict, or None in quick
    mode, where the target is not judged."""
    if not correct:
        return False
    return None if quick else bool(target_met)


def shown(met: bool | None, target: str | None = None) -> str:
    """The ``met`` column as printed: yes, no, or why it was not judged."""
    if met is None:
        return "no target (report)" if target == "report" else NOT_JUDGED_QUICK
    return "yes" if met else "no"
