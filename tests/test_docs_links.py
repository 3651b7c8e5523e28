"""Links into the docs resolve: README and docs/*.md links, and the ``docs/x.md#heading``
references that --help texts and messages show a user."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"#{1,6}\s+(.*)", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def _markdown_links() -> list[tuple[str, Path, str]]:
    links = []
    for page in PAGES:
        for match in re.finditer(r"\]\(([^)\s]+)\)", page.read_text()):
            target = match.group(1)
            if not target.startswith(("http://", "https://", "mailto:")):
                links.append((f"{page.relative_to(ROOT)} -> {target}", page, target))
    return links


def _source_references() -> list[tuple[str, str]]:
    refs = set()
    for path in (ROOT / "src").rglob("*.py"):
        for match in re.finditer(r"docs/([a-z0-9_-]+\.md)#([a-z0-9_-]+)", path.read_text()):
            refs.add((f"{path.relative_to(ROOT)}: {match.group(0)}", match.group(0)))
    return sorted(refs)


@pytest.mark.parametrize(("where", "page", "target"), _markdown_links(),
                         ids=[link[0] for link in _markdown_links()])
def test_markdown_links_resolve(where: str, page: Path, target: str) -> None:
    file, _, anchor = target.partition("#")
    resolved = (page.parent / file) if file else page
    assert resolved.exists(), f"{where}: no such file"
    if anchor and resolved.suffix == ".md":
        assert anchor in _anchors(resolved), f"{where}: no heading #{anchor}"


@pytest.mark.parametrize(("where", "ref"), _source_references(),
                         ids=[ref[0] for ref in _source_references()])
def test_doc_references_in_the_code_name_existing_headings(where: str, ref: str) -> None:
    file, _, anchor = ref.partition("#")
    assert anchor in _anchors(ROOT / file), f"{where}: {file} has no heading #{anchor}"
