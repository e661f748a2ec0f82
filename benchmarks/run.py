"""Run every benchmark and print measured figure, same-run baseline, ratio and target.

    python benchmarks/run.py            # full sizes (tens of minutes; run on an idle machine)
    python benchmarks/run.py --quick    # small sizes, a smoke test of every benchmark
    python benchmarks/run.py --only fps mptrj_stream

Each ``benchmarks/bench_<name>.py`` exposes ``run(quick: bool) -> list[dict]`` with keys
benchmark, measured, baseline, unit, ratio, target, met, notes; ``met`` is True, False or None
(not judged: a target waived at ``--quick`` sizes, or a report without a target; see
``verdict.py``). Results are also written to
``benchmarks/results/latest.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

from verdict import shown

HERE = Path(__file__).resolve().parent
COLUMNS = ("benchmark", "measured", "baseline", "unit", "ratio", "target", "met")


def discover() -> dict[str, Path]:
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cell(row: dict, column: str) -> str:
    if column == "met":
        return shown(row.get("met"), row.get("target"))
    return fmt(row.get(column))


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def machine() -> str:
    import os

    cores = os.cpu_count()
    return (
        f"{platform.node()} {platform.machine()}, {cores} cores, Python {platform.python_version()}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--only", nargs="*", help="benchmark names (default: all)")
    args = parser.parse_args(argv)
    available = discover()
    names = args.only or list(available)
    unknown = set(names) - set(available)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; available: {sorted(available)}")
    rows = []
    for name in names:
        start = time.perf_counter()
        print(f"== {name} ...", flush=True)
        results = load(available[name]).run(quick=args.quick)
        for row in results:
            row.setdefault("notes", "")
            rows.append(row)
            print("   " + "  ".join(f"{c}={cell(row, c)}" for c in COLUMNS), flush=True)
            if row["notes"]:
                print(f"   notes: {row['notes']}", flush=True)
        print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)
    print()
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        print("| " + " | ".join(cell(row, c) for c in COLUMNS) + " |")
    out = HERE / "results" / ("quick.json" if args.quick else "latest.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "quick": args.quick, "rows": rows}, indent=1))
    print(f"\nmachine: {machine()}; written {out.relative_to(HERE.parent)}")
    return 1 if any(row["met"] is False for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
