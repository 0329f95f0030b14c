"""The `sdlab estimate` examples in README.md and in each walkthrough's back of the envelope (§2) are the
command's real output on the reference runs they name: replacing docs/evidence or changing a design's
estimate model without re-running them fails here."""

from __future__ import annotations

import re
import shlex

import pytest

from services.lab.cli import entry as cli
from services.lab.config import REPO_ROOT

EXAMPLE = re.compile(r"<details><summary><code>(sdlab estimate [^<]*)</code></summary>\n\n(.*?)\n\n</details>", re.S)
# The command's output has a level-2 heading of its own, so §2 ends at the "## 3." heading, not at the next "## ".
BACK_OF_THE_ENVELOPE = re.compile(r"^## 2\. .*?(?=^## 3\. )", re.M | re.S)
WALKTHROUGHS = {"shortener": "docs/shortener.md", "messaging": "docs/messaging.md", "shop": "docs/shop.md"}
DOCS = ("README.md", *WALKTHROUGHS.values())


def examples(text: str) -> list[tuple[str, str]]:
    """Each example's command line and the output shown under it."""
    return EXAMPLE.findall(text)


def design_of(command: str) -> str:
    return shlex.split(command)[2]


EXAMPLES = [(doc, command, shown) for doc in DOCS for command, shown in examples((REPO_ROOT / doc).read_text())]


def test_the_readme_has_one_example_per_design():
    found = examples((REPO_ROOT / "README.md").read_text())
    assert sorted(design_of(command) for command, _ in found) == ["messaging", "shop", "shortener"]


@pytest.mark.parametrize("design, doc", WALKTHROUGHS.items(), ids=list(WALKTHROUGHS))
def test_each_walkthrough_sizes_its_own_design_in_its_back_of_the_envelope(design, doc):
    text = (REPO_ROOT / doc).read_text()
    section = BACK_OF_THE_ENVELOPE.search(text)
    assert section, f"{doc} has no '## 2.' section followed by '## 3.'"
    assert [design_of(command) for command, _ in examples(section.group())] == [design]
    assert len(examples(text)) == 1, f"{doc}: the estimate belongs in §2 only"


@pytest.mark.parametrize("doc, command, shown", EXAMPLES, ids=[f"{doc}:{design_of(c)}" for doc, c, _ in EXAMPLES])
def test_each_example_is_the_real_output(doc, command, shown, capsys, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # the examples name docs/evidence/... relative to the repository
    assert cli.main(shlex.split(command)[1:]) == 0
    assert capsys.readouterr().out.rstrip("\n") == shown, f"re-run `{command}` and paste its output into {doc}"
