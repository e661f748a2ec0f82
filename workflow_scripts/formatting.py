"""Numbers as table text, written once for every table and report of the workflow."""

from __future__ import annotations

import math


def format_number(value, digits: int = 3, missing: str = "–") -> str:
    """``value`` with ``digits`` decimals; ``missing`` for None, NaN or inf; text as it is."""
    if isinstance(value, str):
        return value
    if value is None or not math.isfinite(value):
        return missing
    return f"{value:.{digits}f}"
