"""A CSV table as a small self-contained HTML page, so the Snakemake report shows it inline.

    python -m workflow_scripts.analysis.tables html --csv metrics/table1.csv \
        --title "Force MAE (eV/Å)" --out report/table1.html

(The report offers CSV files only as downloads; it displays HTML pages.)
"""

from __future__ import annotations

import argparse
import html
import sys
from pathlib import Path

STYLE = """
body { font-family: sans-serif; font-size: 14px; margin: 1em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #bbb; padding: 4px 8px; text-align: right; }
th { background: #eee; }
td:first-child, th:first-child { text-align: left; }
"""


def table_html(csv: Path, title: str, digits: int = 4) -> str:
    """The table with ``digits`` significant digits, empty cells left empty."""
    import pandas as pd

    frame = pd.read_csv(csv, keep_default_na=False, na_values=[""])
    body = frame.to_html(index=False, na_rep="", float_format=lambda x: f"{x:.{digits}g}", border=0)
    name = html.escape(title)
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{name}</title>"
        f"<style>{STYLE}</style></head><body>\n<h3>{name}</h3>\n{body}\n"
        f"<p>Source: {html.escape(str(csv))}</p></body></html>\n"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    page = sub.add_parser("html", help="CSV -> HTML page")
    page.add_argument("--csv", required=True)
    page.add_argument("--title", required=True)
    page.add_argument("--digits", type=int, default=4, help="significant digits of floats")
    page.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table_html(Path(args.csv), args.title, args.digits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
