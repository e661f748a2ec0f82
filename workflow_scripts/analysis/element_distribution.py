"""Element distribution of the defect structures (Fig. 3a): host A/B/X elements, substituents.

    python -m workflow_scripts.analysis.element_distribution \
        --manifest structures/manifest.csv --hosts-dir hosts \
        --settings analysis.json --dataset-name Perovs-Dopants \
        --out figures/element_distribution.png

Counts are per defect structure (one manifest row each): every structure adds one to each
element on the A, B and X sites of its host (read from ``{hosts-dir}/{host}.json``, site
property ``role``) and one to its substituent on its site, or to ``vacancy``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from pathlib import Path

from workflow_scripts.analysis.common import (
    add_source_note,
    apply_style,
    load_settings,
    write_figure,
)
from workflow_scripts.cli import run_cli
from workflow_scripts.elements import ATOMIC_NUMBER

log = logging.getLogger(__name__)

SITES = ("A", "B", "X")
SITE_COLOURS = {"A": "#4C72B0", "B": "#DD8452", "X": "#55A868"}
VACANCY = "vacancy"


def site_of(role: str) -> str:
    """``A`` from ``A``, ``A1`` or ``A_sub``."""
    site = str(role)[:1]
    if site not in SITES:
        raise ValueError(f"unknown site role {role!r}")
    return site


def host_site_elements(host_json: Path) -> dict[str, list[str]]:
    """Elements on each site of a host structure (pymatgen JSON with ``role`` site property)."""
    structure = json.loads(Path(host_json).read_text())
    elements: dict[str, set[str]] = {site: set() for site in SITES}
    for site in structure["sites"]:
        role = site.get("properties", {}).get("role")
        if role is None:
            raise KeyError(f"{host_json}: a site has no 'role' property")
        elements[site_of(role)].update(s["element"] for s in site["species"])
    return {site: sorted(found, key=ATOMIC_NUMBER.__getitem__) for site, found in elements.items()}


def _order(element: str) -> int:
    return ATOMIC_NUMBER.get(element, 1000)


def element_counts(manifest, hosts: dict[str, dict[str, list[str]]]):
    """Long table: panel (``host`` or ``substituent``), site, element, structures."""
    import pandas as pd

    counts: Counter[tuple[str, str, str]] = Counter()
    for row in manifest.itertuples(index=False):
        if row.host not in hosts:
            raise KeyError(f"manifest host {row.host!r} has no host structure file")
        for site, elements in hosts[row.host].items():
            counts.update(("host", site, element) for element in elements)
        species = VACANCY if row.kind == "vacancy" else row.species
        counts[("substituent", site_of(row.role), species)] += 1

    def order(key):
        panel, site, element = key
        return (panel != "host", SITES.index(site) if panel == "host" else 0, _order(element))

    rows = [(*key, counts[key]) for key in sorted(counts, key=order)]
    return pd.DataFrame(rows, columns=["panel", "site", "element", "count"])


def draw(table, n_structures: int, title: str, note: str):
    """Host elements grouped by site (top); substituents stacked by site (bottom)."""
    plt = apply_style()
    hosts = table[table["panel"] == "host"]
    subs = table[table["panel"] == "substituent"]
    sub_elements = sorted(set(subs["element"]), key=_order)
    width = max(8.0, 0.42 * max(len(hosts), len(sub_elements)) + 2)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(width, 9), layout="constrained")
    positions = range(len(hosts))
    bars = top.bar(positions, hosts["count"], color=[SITE_COLOURS[s] for s in hosts["site"]])
    top.bar_label(bars, fontsize=9)
    top.set_xticks(list(positions), hosts["element"])
    top.set_ylabel("number of defect structures")
    top.set_xlabel("host element (grouped by site)")
    top.set_title("Host perovskite elements on the A, B and X sites")
    base = [0] * len(sub_elements)
    for site in SITES:
        part = subs[subs["site"] == site].set_index("element")["count"]
        heights = [int(part.get(element, 0)) for element in sub_elements]
        if any(heights):
            bottom.bar(
                range(len(sub_elements)),
                heights,
                bottom=base,
                color=SITE_COLOURS[site],
                label=f"on {site} site",
            )
            base = [b + h for b, h in zip(base, heights, strict=True)]
    for x, total in enumerate(base):
        bottom.text(x, total, str(total), ha="center", va="bottom", fontsize=9)
    bottom.set_xticks(range(len(sub_elements)), sub_elements)
    bottom.set_ylabel("number of defect structures")
    bottom.set_xlabel("substituent element (or vacancy)")
    bottom.set_title("Substituents and vacancies")
    bottom.legend(loc="upper right", ncol=3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=SITE_COLOURS[s]) for s in SITES]
    top.legend(handles, [f"{s} site" for s in SITES], loc="upper right", ncol=3)
    for ax in (top, bottom):
        ax.set_ylim(top=ax.get_ylim()[1] * 1.2)  # room for the legend and the counts
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.tick_params(axis="x", labelsize=10 if width < 14 else 9)
    fig.suptitle(f"{title} ({n_structures} defect structures)", fontsize=13)
    add_source_note(fig, note)
    return fig


def run(args) -> None:
    import pandas as pd

    settings = load_settings(args.settings)
    manifest = pd.read_csv(args.manifest, keep_default_na=False)
    files = {Path(path).stem: Path(path) for path in args.hosts}
    missing = sorted(set(manifest["host"]) - set(files))
    if missing:
        raise SystemExit(f"--hosts: no structure file for host(s) {missing} of {args.manifest}")
    hosts = {host: host_site_elements(files[host]) for host in sorted(set(manifest["host"]))}
    folders = sorted({str(path.parent) for path in files.values()})
    table = element_counts(manifest, hosts)
    title = f"Elements of {args.dataset_name}"
    note = (
        f"Data: {args.manifest} and host structures in {', '.join(folders)}. "
        f"Run: {settings['run_label']}"
    )
    write_figure(draw(table, len(manifest), title, note), args.out, table)
    log.info("element counts:\n%s", table.to_string(index=False))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True, help="the defect manifest (CSV)")
    parser.add_argument(
        "--hosts", nargs="+", required=True, help="each host's structure JSON ({host}.json)"
    )
    parser.add_argument("--settings", required=True, help="the analysis settings (JSON)")
    parser.add_argument("--dataset-name", required=True, help="shown in the title")
    parser.add_argument("--out", required=True, help="PNG; the CSV is written beside it")
    return run_cli(parser, argv, run)


if __name__ == "__main__":
    sys.exit(main())
