"""The two Perovs-Dopants studies' findings, each checked on this run's own tables.

    python -m workflow_scripts.analysis.findings --table-a1 metrics/tableA1.csv \
        --variants-config variants.json --mace-config mace.json \
        --analysis-config analysis.json \
        --reference-config reference.json \
        --force-shift-summary figures/force_shift_density_summary.csv \
        --descriptor MODEL/DATASET=FILE ... --config-file config.yaml \
        --out metrics/findings.csv

Writes ``findings.csv`` and ``findings.md`` (same rows): one row per finding with the numbers
compared (named, with values), the criterion with its tolerance, and the verdict
``reproduced``, ``not reproduced`` or ``not computed (why)``. Findings a-g compare force MAEs
(eV/Å) of Table A1, h the force-shift summary of Fig. 1, i and j the per-structure mean
descriptors of the embedding maps (Fig. 2). Which variant plays which part is read from the
variants config: the zero-shot, standard and multihead models are the embedding maps'
(``analysis.models``), the others the first variant with the method and data named below.
A finding whose variant, test set or file this run lacks is ``not computed``, never guessed.

The criteria and their tolerances: :mod:`.findings_criteria`; the checks: :mod:`.findings_checks`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from workflow_scripts.analysis.findings_checks import (
    ForceTable,
    check_a,
    check_b,
    check_c,
    check_d,
    check_e,
    check_f,
    check_g,
    check_h,
    check_i,
    check_j,
)
from workflow_scripts.analysis.findings_criteria import (
    COLUMNS,
    CRITERIA,
    FINDINGS,
    NOT_REPRODUCED,
    REPRODUCED,
    Finding,
    NotComputed,
    effective_lr,
    finding_models,
)
from workflow_scripts.cli import setup_logging

log = logging.getLogger(__name__)

# --- all findings ----------------------------------------------------------------------------


def check_all(
    table_a1,
    variants: dict,
    default_lr: float,
    chosen: dict | None = None,
    force_shift_summary: Path | None = None,
    descriptors: dict | None = None,
) -> list[Finding]:
    """Every finding, in order; one that cannot be checked says why."""
    roles = finding_models(variants, default_lr, chosen)
    lrs = {name: effective_lr(v, default_lr) for name, v in variants.items()}
    forces = ForceTable(table_a1)
    checks = {
        "a": lambda: check_a(forces, roles),
        "b": lambda: check_b(forces, roles),
        "c": lambda: check_c(forces, roles),
        "d": lambda: check_d(forces, roles),
        "e": lambda: check_e(forces, roles, lrs),
        "f": lambda: check_f(forces, roles),
        "g": lambda: check_g(forces, roles),
        "h": lambda: check_h(force_shift_summary),
        "i": lambda: check_i(descriptors, roles),
        "j": lambda: check_j(descriptors, roles),
    }
    results = []
    for key, check in checks.items():
        try:
            results.append(check())
        except NotComputed as reason:
            results.append(
                Finding(key, FINDINGS[key], "", CRITERIA[key], f"not computed ({reason})")
            )
        log.info("%s: %s", key, results[-1].verdict)
    return results


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(findings: list[Finding], header: str) -> str:
    counts = {
        label: sum(f.verdict.startswith(label) for f in findings)
        for label in (REPRODUCED, NOT_REPRODUCED, "not computed")
    }
    summary = ", ".join(f"{n} {label}" for label, n in counts.items())
    lines = [header, "", f"{len(findings)} findings: {summary}.", ""]
    lines += ["| id | finding | numbers compared | criterion | verdict |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(_cell(getattr(f, c)) for c in COLUMNS) + " |" for f in findings]
    return "\n".join(lines) + "\n"


def md_header(run_label: str, config_file: str, standins: bool, inputs: list[str]) -> str:
    data = (
        "**Stand-in data (demo)**: stand-in reference sets and foundation model; these verdicts "
        "test the workflow, not the studies' claims."
        if standins
        else "Data: this run's own CP2K data set, reference sets and models."
    )
    return (
        f"# The studies' findings, checked on this run — {run_label}\n\n"
        f"{data}\n\nConfig: `{config_file}`; run label `{run_label}`. Computed from: "
        + ", ".join(f"`{path}`" for path in inputs)
        + ". Force MAEs in eV/Å (Table A1); energies are not used."
    )


def screening_section(comparison_md: Path) -> str:
    """The screen's verdict (its last line: which model could have replaced DFT)."""
    lines = [line for line in comparison_md.read_text().splitlines() if line.strip()]
    return (
        "\n## Dopant screening (beyond the papers)\n\n"
        + lines[-1]
        + f" Every model's numbers: `{comparison_md}`.\n"
    )


def uses_standins(reference: dict, mace: dict) -> bool:
    names = [reference.get(d, {}).get("name", "") for d in ("mptrj", "omat24")]
    sources = [reference.get(d, {}).get("source") for d in ("mptrj", "omat24")]
    return (
        "standin" in sources
        or any("stand-in" in name for name in names)
        or mace.get("foundation_model") == "stand-in"
    )


# --- CLI -----------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table-a1", required=True, type=Path, help="Table A1 (CSV)")
    parser.add_argument("--variants-config", required=True, type=Path)
    parser.add_argument("--mace-config", required=True, type=Path)
    parser.add_argument("--analysis-config", required=True, type=Path)
    parser.add_argument("--reference-config", required=True, type=Path)
    parser.add_argument("--force-shift-summary", type=Path, help="force_shift_density_summary.csv")
    parser.add_argument(
        "--descriptor", action="append", default=[], help="MODEL/DATASET=FILE (repeat)"
    )
    parser.add_argument(
        "--labeller", action="append", default=[], help="TEST_SET=MODEL that made its labels"
    )
    parser.add_argument(
        "--screening-comparison", type=Path, help="the screen's model comparison (markdown)"
    )
    parser.add_argument("--config-file", default="config.yaml", help="named in the Markdown")
    parser.add_argument("--out", required=True, type=Path, help="CSV; the .md is written beside")
    return parser.parse_args(argv)


def run(args) -> list[Finding]:
    import pandas as pd

    from workflow_scripts.analysis import baseline_findings
    from workflow_scripts.analysis.common import (
        files_folder,
        keyed_files,
        load_settings,
        parse_pairs,
    )

    variants = json.loads(args.variants_config.read_text())
    variants.pop("run_label", None)
    mace = json.loads(args.mace_config.read_text())
    reference = json.loads(args.reference_config.read_text())
    settings = load_settings(args.analysis_config)
    default_lr = mace.get("hyperparameters", {}).get("lr", 1.0e-5)
    descriptors = keyed_files(args.descriptor, "--descriptor")
    findings = check_all(
        pd.read_csv(args.table_a1),
        variants,
        default_lr,
        settings.get("models"),
        args.force_shift_summary,
        descriptors,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([f.row() for f in findings], columns=list(COLUMNS)).to_csv(args.out, index=False)
    inputs = [str(args.table_a1)]
    descriptor_folder = files_folder(descriptors) if descriptors else None
    inputs += [str(p) for p in (args.force_shift_summary, descriptor_folder) if p]
    header = md_header(
        settings["run_label"], args.config_file, uses_standins(reference, mace), inputs
    )
    section = baseline_findings.markdown_section(
        pd.read_csv(args.table_a1), variants, parse_pairs(args.labeller, "--labeller")
    )
    if args.screening_comparison:
        section += screening_section(args.screening_comparison)
    args.out.with_suffix(".md").write_text(markdown(findings, header) + section)
    return findings


def main(argv=None) -> int:
    setup_logging()
    for finding in run(parse_args(argv)):
        print(f"{finding.id}: {finding.verdict}  {finding.numbers}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
