"""Rewrite the walkthroughs' registered figures from their evidence, after a re-measurement.

``sdlab evidence --remeasure`` replaces the evidence; tests/unit/test_doc_figures.py then names every
figure that no longer matches. This rewrites each such figure in its doc and in its registry at the
precision the doc printed it ("1,049", "2.9", "~2,700"), and lists what it could not place. It changes
numbers only: a sentence that interprets them ("the primary ran out first") still has to be read again.

    python -m tests.support.refresh_figures            # rewrite, then list what is left to do by hand
    python -m tests.support.refresh_figures --dry-run  # list the changes only

It also prints the ``sdlab estimate`` examples again (README and each walkthrough's section 2), which read
the bench and load evidence.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shlex
from dataclasses import replace
from pathlib import Path

from services.lab.cli import entry as cli
from services.lab.config import REPO_ROOT
from tests.unit.doc_figures import (
    DOCS,
    EVIDENCE_LINK,
    NUMBER,
    Figure,
    agrees,
    approximate,
    blocks,
    lookup,
    passages,
    problems,
    summary_path,
)
from tests.unit.test_doc_estimates import EXAMPLES
from tests.unit.test_doc_figures import FIGURES, NAMED_RUN, ROW, UNNAMED_RUNS

REGISTRIES = {"shortener.md": "figures_shortener.py", "messaging.md": "figures_messaging.py", "shop.md": "figures_shop.py"}
UNIT_DIR = Path(__file__).resolve().parents[1] / "unit"


def printed_like(shown: str, value: float, approx: bool = False) -> str:
    """``value`` printed the way ``shown`` was: its decimals, its thousands separator, an approximate
    figure's rounding ("~2,700" stays at hundreds)."""
    whole, _, fraction = shown.lstrip("-").replace(",", "").partition(".")
    if approx and not fraction and whole.strip("0"):
        unit = 10 ** (len(whole) - len(whole.rstrip("0")))
        value = round(value / unit) * unit
    # A 4-digit figure the doc printed without a comma (a year, a port) keeps that style.
    pattern = f"{{:{',' if ',' in shown or len(whole) < 4 else ''}.{len(fraction)}f}}"
    text = pattern.format(abs(value))
    negative = value < 0 and text.strip("0.,") != ""
    return ("-" if negative else "") + text


def rewritten(figure: Figure, data: object) -> str:
    """The figure's text with each number that disagrees printed again from its path's value."""
    text = figure.text
    spans = list(zip(NUMBER.finditer(figure.text), approximate(figure.text), figure.paths))
    for match, approx, path in reversed(spans):
        value = float(lookup(data, path))  # type: ignore[arg-type]
        if not agrees(match.group(0), value, figure.scale, approx):
            text = text[:match.start()] + printed_like(match.group(0), value * figure.scale, approx) + text[match.end():]
    return text


def refresh(figure: Figure, dry_run: bool) -> str | None:
    """Rewrite one figure; returns a line saying what changed, or raises LookupError when it cannot."""
    if not problems(figure):
        return None
    doc_path = DOCS / figure.doc
    doc = doc_path.read_text()
    passage = next((p for p in passages(doc, figure.id, figure.where) if figure.text in p), None)
    if passage is None:
        raise LookupError(f"{figure.name}: its text is not in its passage")
    new_text = rewritten(figure, json.loads(summary_path(figure, passage).read_text()))
    if new_text == figure.text:
        raise LookupError(f"{figure.name}: {problems(figure)}")
    registry = UNIT_DIR / REGISTRIES[figure.doc]
    source = registry.read_text()
    literal = json.dumps(figure.text, ensure_ascii=False)
    if source.count(literal) != 1:
        raise LookupError(f"{figure.name}: its text stands {source.count(literal)} times in {registry.name} as {literal}")
    if not dry_run:
        doc_path.write_text(doc.replace(passage, passage.replace(figure.text, new_text, 1), 1))
        registry.write_text(source.replace(literal, json.dumps(new_text, ensure_ascii=False)))
        if problems(replace(figure, text=new_text)):
            raise LookupError(f"{figure.name}: still wrong after the rewrite: {problems(replace(figure, text=new_text))}")
    return f"{figure.doc} {figure.id}: {figure.text!r} -> {new_text!r}"


def refresh_estimates(dry_run: bool) -> list[str]:
    """Each ``sdlab estimate`` example in the README and the walkthroughs, replaced by the command's output
    on the runs it names (tests/unit/test_doc_estimates.py holds them to it)."""
    changed = []
    for doc, command, shown in EXAMPLES:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            cli.main(shlex.split(command)[1:])
        fresh = out.getvalue().rstrip("\n")
        if fresh != shown:
            changed.append(f"{doc}: `{command}` printed again")
            if not dry_run:
                path = REPO_ROOT / doc
                path.write_text(path.read_text().replace(shown, fresh, 1))
    return changed


def refresh_row_commits(dry_run: bool) -> list[str]:
    """A table row that names its run's commit ("at `abfecda`, an Intel Xeon") names the commit its
    evidence now holds. Rows that name none follow their doc's sentence (and UNNAMED_RUNS in
    tests/unit/test_doc_figures.py), which stay for a person to edit."""
    changed = []
    rows = [(doc, block) for doc in UNNAMED_RUNS for block in blocks((DOCS / doc).read_text()) if ROW.match(block)]
    for doc, row in rows:  # read now: the figures rewritten above changed the rows
        links, named = EVIDENCE_LINK.findall(row), NAMED_RUN.search(row)
        if not links or not named:
            continue
        machine = json.loads(((DOCS / links[0]).parent / "summary.json").read_text())["machine"]
        commit, cpu = machine["commit"][:7], "Intel Xeon" if "Intel" in machine["cpu_model"] else "AMD EPYC"
        fresh = row.replace(named.group(0), f"at `{commit}`, {'an' if cpu[0] in 'AEIOU' else 'a'} {cpu}", 1)
        if fresh != row:
            changed.append(f"{doc} {ROW.match(row)[1]}: {named.group(0)} -> at `{commit}`")
            if not dry_run:
                path = DOCS / doc
                path.write_text(path.read_text().replace(row, fresh, 1))
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    os.chdir(REPO_ROOT)  # the estimate examples name docs/evidence/... relative to the repository
    left = []
    for figure in FIGURES:
        try:
            line = refresh(figure, args.dry_run)
        except (LookupError, KeyError, ValueError, TypeError) as exc:
            left.append(str(exc))
            continue
        if line:
            print(line)
    for line in refresh_row_commits(args.dry_run) + refresh_estimates(args.dry_run):
        print(line)
    for line in left:
        print("BY HAND:", line)
    # Registry entries are read at import: rerun after a rewrite to see figures a first pass moved.


if __name__ == "__main__":
    main()
