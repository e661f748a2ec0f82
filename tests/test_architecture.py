"""docs/architecture.md lists every rule under its stage module, in the Snakefile's order."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# rules at the top level and inside ``if`` blocks (the downloads exist only for source: url)
RULE = re.compile(r"^[ \t]*(?:(?:rule|checkpoint) (\w+):|use rule \w+ as (\w+) with:)", re.M)


def rule_names(text: str) -> list[str]:
    """Rules in definition order: ``rule X:``, ``checkpoint X:``, ``use rule Y as X with:``."""
    return [own or derived for own, derived in RULE.findall(text)]


def included_modules() -> list[str]:
    snakefile = (REPO / "Snakefile").read_text()
    return re.findall(r'^include: "rules/(\w+)\.smk"', snakefile, re.M)


def documented_rules() -> dict[str, list[str]]:
    text = (REPO / "docs" / "architecture.md").read_text().split("## Rules by stage", 1)[1]
    return {
        module: re.findall(r"`(\w+)`", names)
        for module, names in re.findall(r"^- `rules/(\w+)\.smk`: (.*)$", text, re.M)
    }


def test_every_rule_is_documented_under_its_module_in_include_order():
    modules = [m for m in included_modules() if m != "common"]
    defined = {m: rule_names((REPO / "rules" / f"{m}.smk").read_text()) for m in modules}
    assert rule_names((REPO / "rules" / "common.smk").read_text()) == []  # functions only
    documented = documented_rules()
    assert list(documented) == modules
    assert documented == defined
    # every rule module is included
    assert sorted(p.stem for p in (REPO / "rules").glob("*.smk")) == sorted(included_modules())


def test_every_rule_has_a_docstring():
    """A rule's docstring, or for ``use rule ... with:`` (which takes none) a comment above."""
    missing = []
    for path in sorted((REPO / "rules").glob("*.smk")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.lstrip().startswith("use rule "):
                if not lines[i - 1].lstrip().startswith("#"):
                    missing.append(f"{path.name}: {line}")
            elif RULE.match(line) and not lines[i + 1].strip().startswith('"""'):
                missing.append(f"{path.name}: {line}")
    assert missing == []
