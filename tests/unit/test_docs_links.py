"""The README and docs/ point only at what exists: every relative link names a file (and, with
`#anchor`, one of its headings), every README section named in quotes (`the README's "What
answers" table`) is a heading of the README, and every `see "NAME"` a heading of the same page
or of the README."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# A README section named in quotes: `README's "NAME"`, or in the README itself `see "NAME"`.
NAMED = re.compile(r"README's\s+\"([^\"]+)\"|\bsee\s+\"([^\"]+)\"", re.IGNORECASE)


def headings(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    return [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_every_relative_link_names_a_file_and_heading_that_exist() -> None:
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            found = (page.parent / path).resolve() if path else page
            if not found.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and found.suffix == ".md" and anchor not in map(slug, headings(found)):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def test_every_section_named_in_quotes_is_a_heading() -> None:
    readme = [h.lower() for h in headings(REPO / "README.md")]
    missing = []
    for page in PAGES:
        own = [h.lower() for h in headings(page)]
        text = " ".join(page.read_text().split())  # a name may be wrapped over two lines
        for of_readme, seen in NAMED.findall(text):
            name = (of_readme or seen).lower()
            if not any(h.startswith(name) for h in (readme if of_readme else readme + own)):
                missing.append(f"{page.name}: {name!r}")
    assert missing == []
