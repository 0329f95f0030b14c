"""Every relative link in README.md and docs/*.md points to a file that exists and, into a markdown
file, to a heading it has (anchors as GitHub makes them), so a renamed section or a moved file fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.lab.config import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.M)
EXTERNAL = ("http://", "https://", "mailto:")


def _prose(text: str) -> str:
    """The text outside code: fenced blocks dropped, code spans blanked (links in them are not links)."""
    return CODE_SPAN.sub("code", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its rendered text, lowercased, punctuation but - and _ dropped, spaces to -."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for heading in HEADING.findall(FENCE.sub("", path.read_text())):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")  # GitHub numbers a repeated heading's anchor
    return found


def _rel(path: Path) -> Path:
    try:
        return path.relative_to(REPO_ROOT)
    except ValueError:
        return path


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in LINK.findall(_prose(path.read_text())):
        if target.startswith(EXTERNAL):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with that anchor in {_rel(linked)}")
    return broken


def test_anchors_are_githubs():
    assert slug("8. Trade-offs, measured") == "8-trade-offs-measured"
    assert slug("6.2 ID generation (`SHORTENER_ID_SCHEME`)") == "62-id-generation-shortener_id_scheme"
    assert slug("From measured cost to a fleet: `sdlab estimate`") == "from-measured-cost-to-a-fleet-sdlab-estimate"
    assert slug("6.9 Replication and failover (`sdlab up --replicas 1 [--replication sync]`)") == \
        "69-replication-and-failover-sdlab-up---replicas-1---replication-sync"


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "there.md").write_text("# A heading\n\n```\n# not a heading\n```\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md#a-heading) [gone](missing.md) [bad anchor](there.md#not-a-heading)\n"
                    "[self](#nowhere) `[in code](missing.md)` [web](https://example.com/x)\n")
    assert broken_links(page) == ["missing.md: no such file",
                                  f"there.md#not-a-heading: no heading with that anchor in {_rel(tmp_path / 'there.md')}",
                                  f"#nowhere: no heading with that anchor in {_rel(page)}"]


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO_ROOT)) for d in DOCS])
def test_every_relative_link_resolves(doc):
    assert broken_links(doc) == []
