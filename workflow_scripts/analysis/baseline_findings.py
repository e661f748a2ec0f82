"""Beyond the papers: do other foundation models share the MACE foundation's dopant gap?

The papers' finding (a) is that the zero-shot foundation errs more on Perovs-Dopants than on
MPtrj, and both propose to test other pretrained models. For each baseline (a Table A1 model
that is not a MACE variant) this section of ``findings.md`` gives its force MAE on both test
sets, their ratio judged by finding (a)'s criterion, and its dopant error against the zero-shot
foundation's and the best Perovs-Dopants finetune's. A baseline that made a test set's labels
(the demo's stand-in labeller) is not judged on that set: its error there is zero by
construction.
"""

from __future__ import annotations

import math

from workflow_scripts.formatting import format_number

DOPANTS, MPTRJ = "perovs_dopants", "mptrj"
GAP_MIN_RATIO = 1.1  # finding (a)'s criterion: dopant / MPtrj force MAE, 10 % margin
HEADER = [
    "baseline",
    "F MAE {dopants} (eV/Å)",
    "F MAE {mptrj} (eV/Å)",
    "dopants / MPtrj",
    "dopant gap (≥ 1.1)",
    "/ zero-shot foundation",
    "/ best Perovs-Dopants finetune",
]


def _force(table, model: str, test_set: str) -> float:
    rows = table[(table["model"] == model) & (table["test_set"] == test_set)]
    if rows.empty:
        return math.nan
    return float(rows.iloc[0]["force_mae_ev_per_a"])


def _ratio(numerator: float, denominator: float) -> float:
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator == 0:
        return math.nan
    return numerator / denominator


def baseline_rows(table, variants: dict, labellers: dict[str, str]) -> list[list[str]]:
    """One row per baseline, in Table A1's order."""
    models = list(dict.fromkeys(table["model"]))
    baselines = [m for m in models if m not in variants]
    zero_shot = next((m for m in models if variants.get(m, {}).get("method") == "zero_shot"), None)
    finetuned = [
        m
        for m in models
        if variants.get(m, {}).get("data") == DOPANTS
        and variants[m]["method"] in ("standard", "multihead")
    ]
    best = min(
        (_force(table, m, DOPANTS) for m in finetuned),
        key=lambda v: v if math.isfinite(v) else math.inf,
        default=math.nan,
    )
    rows = []
    for model in baselines:
        dopants, mptrj = _force(table, model, DOPANTS), _force(table, model, MPTRJ)
        if labellers.get(MPTRJ) == model:
            gap, verdict = math.nan, "not judged: it labelled the MPtrj test set"
        else:
            gap = _ratio(dopants, mptrj)
            verdict = "–" if not math.isfinite(gap) else ("yes" if gap >= GAP_MIN_RATIO else "no")
        to_zero_shot = _ratio(dopants, _force(table, zero_shot, DOPANTS)) if zero_shot else math.nan
        rows.append(
            [
                model,
                format_number(dopants, 4),
                format_number(mptrj, 4) + (" §" if labellers.get(MPTRJ) == model else ""),
                format_number(gap, 2),
                verdict,
                format_number(to_zero_shot, 2),
                format_number(_ratio(dopants, best), 2),
            ]
        )
    return rows


def markdown_section(table, variants: dict, labellers: dict[str, str]) -> str:
    """The baseline section of findings.md ('' when the run has no baseline)."""
    rows = baseline_rows(table, variants, labellers)
    if not rows:
        return ""
    test_sets = table["test_set"]
    names = dict(zip(test_sets, table.get("test_set_name", test_sets), strict=True))
    dopants, mptrj = names.get(DOPANTS, DOPANTS), names.get(MPTRJ, MPTRJ)
    header = [h.format(dopants=dopants, mptrj=mptrj) for h in HEADER]
    lines = [
        "",
        "## Other foundation models (beyond the papers)",
        "",
        "Does each baseline, evaluated zero-shot, err more on Perovs-Dopants than on MPtrj, as the "
        f"MACE foundation does (finding a, dopants / MPtrj ≥ {GAP_MIN_RATIO})? Force MAE from "
        "Table A1; the last two columns divide the baseline's dopant error by the zero-shot "
        "foundation's and by the best Perovs-Dopants finetune's (below 1: the baseline is better).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if any(labellers.get(MPTRJ) == row[0] for row in rows):
        lines += ["", "§ this model made the MPtrj test set's labels (stand-in data)."]
    return "\n".join(lines) + "\n"
