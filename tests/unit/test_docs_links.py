"""The documentation in docs/ stays reachable and in step with the code.

- No file of the repository cites the design notes that are not part of it (the two markdown files named
  in ``_FORBIDDEN`` below); code points into docs/ instead, as ``docs/<page>.md#<section>``.
- Every ``docs/<page>.md[#section]`` pointer in the code, and every relative link between the docs pages,
  leads to an existing file and heading (headings turned into anchors as GitHub does it).
- The numbers of the preset table in docs/codebases.md and the rounding examples in docs/tracking.md match
  ``siamdeploy.presets`` and ``siamdeploy.runtime.crop.round_by_rule``.
"""
from __future__ import annotations

import dataclasses
import enum
import os
import re
from pathlib import Path

import pytest

import siamdeploy.config as config_module
from siamdeploy.config import TrackParams
from siamdeploy.presets import PRESETS
from siamdeploy.runtime.crop import round_by_rule

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
THIS = Path(__file__).resolve()
SCANNED_DIRS = ("siamdeploy", "tests", "benchmarks", "scripts", "docs")
SCANNED_FILES = ("README.md",)
SUFFIXES = {".py", ".md", ".sh", ".toml", ".txt", ".cfg", ".yaml", ".yml"}
# Spelled in pieces so that this file does not cite them itself.
_FORBIDDEN = re.compile(r"\b(?:" + "REFERENCE" + r"|" + "DESIGN" + r")\.md\b|\b" + "DESIGN" + r" principle",
                        re.IGNORECASE)
_DOC_POINTER = re.compile(r"\bdocs/([A-Za-z0-9_./-]+\.md)(?:#([A-Za-z0-9_-]+))?")
_MD_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


# ------------------------------------------------------------------------------------------------ helpers
def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces -> hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def heading_anchors(markdown: str) -> set[str]:
    """Anchors of every ATX heading outside fenced code blocks (duplicates get ``-1``, ``-2``, ...)."""
    anchors: set[str] = set()
    counts: dict[str, int] = {}
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        match = None if fenced else re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = github_slug(match.group(2))
            n = counts.get(slug, 0)
            counts[slug] = n + 1
            anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def repository_files() -> list[Path]:
    """Text files whose comments and docstrings may point into docs/ (this test file excluded)."""
    files = [ROOT / name for name in SCANNED_FILES if (ROOT / name).is_file()]
    for folder in SCANNED_DIRS:
        for dirpath, dirnames, filenames in os.walk(ROOT / folder):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__pycache__"]
            for name in filenames:
                path = Path(dirpath) / name
                if path.suffix in SUFFIXES and path.resolve() != THIS:
                    files.append(path)
    return sorted(files)


def forbidden_citations(text: str) -> list[str]:
    """Lines (``N: text``) citing the design notes that are not in the repository."""
    return [f"{i}: {line.strip()}" for i, line in enumerate(text.splitlines(), 1) if _FORBIDDEN.search(line)]


def broken_doc_pointers(text: str, docs_dir: Path) -> list[str]:
    """``docs/<page>.md[#anchor]`` pointers in ``text`` whose page or heading does not exist."""
    broken = []
    for match in _DOC_POINTER.finditer(text):
        page, anchor = match.group(1), match.group(2)
        path = docs_dir / page
        if not path.is_file():
            broken.append(f"{match.group(0)} (no file docs/{page})")
        elif anchor and anchor not in heading_anchors(path.read_text(encoding="utf-8")):
            broken.append(f"{match.group(0)} (no heading '#{anchor}' in docs/{page})")
    return broken


def broken_markdown_links(page: Path) -> list[str]:
    """Relative links of a markdown page whose target file (or, for a .md target, heading) is missing."""
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in _MD_LINK.findall(text):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        path = (page.parent / file_part).resolve() if file_part else page
        if not path.exists():
            broken.append(f"{target} (no file {file_part})")
        elif anchor and path.suffix == ".md" and anchor not in heading_anchors(path.read_text(encoding="utf-8")):
            broken.append(f"{target} (no heading '#{anchor}' in {path.name})")
    return broken


def markdown_table(markdown: str, section: str) -> list[dict[str, str]]:
    """Rows of the first table under the heading whose anchor is ``section``, as header -> cell text."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith("#") and github_slug(line.lstrip("#")) == section)
    rows = []
    header: list[str] | None = None
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        if not line.startswith("|"):
            if header is not None and rows:
                break
            continue
        cells = [c.strip().strip("`").strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif not all(set(c) <= set("-: ") for c in cells):
            rows.append(dict(zip(header, cells)))
    return rows


def rule_value(name: str) -> object:
    """The object siamdeploy.config uses for a rounding rule named ``name`` (a string or an enum member)."""
    for value in vars(config_module).values():
        members = list(value) if isinstance(value, type) and issubclass(value, enum.Enum) else [value]
        for member in members:
            if getattr(member, "value", member) == name:
                return member
    return name


# ------------------------------------------------------------------------------------------------ checks
def test_the_checks_catch_what_they_are_meant_to(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## Crop rounding\n\n```\n# not a heading\n```\n\n[x](page.md#nope) [y](gone.md)\n")
    assert heading_anchors(page.read_text()) == {"title", "crop-rounding"}
    assert github_slug("DaSiamRPN-BIG's adaptive search size") == "dasiamrpn-bigs-adaptive-search-size"
    assert github_slug("pysot config.yaml") == "pysot-configyaml"
    cited = "x = 1  # see " + "REFERENCE" + ".md §6\n"
    assert forbidden_citations(cited) == [f"1: {cited.strip()}"]
    assert forbidden_citations('"""(' + "DESIGN" + ' principle 8)"""') != []
    assert forbidden_citations("see docs/tracking.md#crop-rounding") == []
    assert broken_doc_pointers("docs/page.md#crop-rounding docs/page.md", tmp_path) == []
    assert len(broken_doc_pointers("docs/page.md#no-such docs/other.md#title", tmp_path)) == 2
    assert len(broken_markdown_links(page)) == 2


def test_docs_pages_exist() -> None:
    for name in ("README.md", "tracking.md", "codebases.md", "checkpoints.md"):
        assert (DOCS / name).is_file(), f"docs/{name} is missing"


def test_no_citation_of_notes_outside_the_repository() -> None:
    found = {str(p.relative_to(ROOT)): forbidden_citations(p.read_text(encoding="utf-8", errors="replace"))
             for p in repository_files()}
    found = {k: v for k, v in found.items() if v}
    assert not found, ("these files cite notes that are not in the repository; point to the docs/ page "
                       f"instead (docs/<page>.md#<section>): {found}")


def test_docs_pointers_in_the_code_resolve() -> None:
    broken = {str(p.relative_to(ROOT)): broken_doc_pointers(p.read_text(encoding="utf-8", errors="replace"), DOCS)
              for p in repository_files()}
    broken = {k: v for k, v in broken.items() if v}
    assert not broken, f"docs/ pointers to missing pages or headings: {broken}"


def test_the_code_points_into_the_docs() -> None:
    pointers = [m for p in repository_files() if p.suffix == ".py"
                for m in _DOC_POINTER.finditer(p.read_text(encoding="utf-8", errors="replace"))]
    assert len(pointers) >= 15, f"expected the docstrings to point into docs/, found {len(pointers)} pointers"


@pytest.mark.parametrize("page", ["README.md"] + sorted(f"docs/{p.name}" for p in DOCS.glob("*.md")))
def test_links_between_docs_pages_resolve(page: str) -> None:
    assert broken_markdown_links(ROOT / page) == []


def test_preset_table_matches_the_presets() -> None:
    rows = markdown_table((DOCS / "codebases.md").read_text(encoding="utf-8"), "presets")
    by_name = {row["preset"]: row for row in rows}
    assert sorted(by_name) == sorted(PRESETS), "docs/codebases.md#presets must list every preset once"
    for name, row in by_name.items():
        preset = PRESETS[name]
        t = preset.track
        expected = {"source": preset.source, "penalty_k": t.penalty_k, "window_influence": t.window_influence,
                    "lr": t.lr, "instance": t.instance_size, "base_size": t.base_size, "N": t.score_size(),
                    "mask threshold": t.mask_threshold if t.tracker == "siammask" else None}
        for column, value in expected.items():
            cell = row[column]
            if value is None:
                assert cell == "", f"{name}: '{column}' does not apply, but the table gives {cell}"
                continue
            if cell == "":
                assert t.tracker == "siamfc", f"{name}: '{column}' is blank in the table"
                continue
            if isinstance(value, str):
                assert cell == value, f"{name}: {column} is {value}, the table says {cell}"
            else:
                assert float(cell) == pytest.approx(float(value)), f"{name}: {column} is {value}, table {cell}"


def test_rule_fields_table_names_real_fields() -> None:
    rows = markdown_table((DOCS / "codebases.md").read_text(encoding="utf-8"), "rule-fields")
    fields = {f.name for f in dataclasses.fields(TrackParams)}
    named = [re.findall(r"[a-z_]+", row["field"]) for row in rows]
    assert len(named) >= 10
    missing = sorted({n for names in named for n in names} - fields)
    assert not missing, f"docs/codebases.md#rule-fields names fields TrackParams does not have: {missing}"


def test_rounding_examples_match_round_by_rule() -> None:
    rows = markdown_table((DOCS / "tracking.md").read_text(encoding="utf-8"), "crop-rounding")
    assert len(rows) == 4
    for row in rows:
        for column in ("2.5", "-2.5", "3.5", "-22.5"):
            got = round_by_rule(float(column), rule_value(row["rule"]))  # type: ignore[arg-type]
            assert got == int(row[column]), f"{row['rule']}({column}) = {got}, docs/tracking.md says {row[column]}"
