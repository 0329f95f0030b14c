"""The README's `sdlab estimate` examples are the command's real output on the reference runs they name:
replacing docs/evidence or changing a design's estimate model without re-running them fails here."""

from __future__ import annotations

import re
import shlex

import pytest

from services.lab.cli import entry as cli
from services.lab.config import REPO_ROOT

EXAMPLE = re.compile(r"<details><summary><code>(sdlab estimate [^<]*)</code></summary>\n\n(.*?)\n\n</details>", re.S)
EXAMPLES = EXAMPLE.findall((REPO_ROOT / "README.md").read_text())


def test_there_is_one_example_per_design():
    assert sorted(shlex.split(command)[2] for command, _ in EXAMPLES) == ["messaging", "shop", "shortener"]


@pytest.mark.parametrize("command, shown", EXAMPLES, ids=[shlex.split(c)[2] for c, _ in EXAMPLES])
def test_each_example_is_the_real_output(command, shown, capsys, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # the examples name docs/evidence/... relative to the repository
    assert cli.main(shlex.split(command)[1:]) == 0
    assert capsys.readouterr().out.rstrip("\n") == shown, f"re-run `{command}` and paste its output into README.md"
