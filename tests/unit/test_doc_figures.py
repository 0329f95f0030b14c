"""Every registered walkthrough figure that carries an evidence id equals its evidence's `summary.json` at the
precision the doc prints (tests/unit/doc_figures.py): a stale or mistyped number fails here, and so does a figure
whose text was edited without its registry entry."""

from __future__ import annotations

import json
import re

import pytest

from tests.unit.doc_figures import (
    DOCS,
    EVIDENCE_LINK,
    Figure,
    agrees,
    approximate,
    blocks,
    lookup,
    numbers,
    passages,
    problems,
)
from tests.unit.figures_messaging import FIGURES as MESSAGING
from tests.unit.figures_shop import FIGURES as SHOP
from tests.unit.figures_shortener import FIGURES as SHORTENER

FIGURES = [*SHORTENER, *MESSAGING, *SHOP]


# The commit (and machine) a walkthrough's rows ran at unless the row names its own ("at `abfecda`, an Intel Xeon"),
# as each doc's text says: one re-measurement of every row (sdlab evidence --remeasure).
REMEASURED = ("2a51ccb", "Intel")
UNNAMED_RUNS = {"shortener.md": REMEASURED, "messaging.md": REMEASURED, "shop.md": REMEASURED}
UNNAMED_EXCEPTIONS: dict[str, tuple[str, str]] = {}
NAMED_RUN = re.compile(r"\bat `([0-9a-f]{7})`, an? (Intel Xeon|AMD EPYC)")
ROW = re.compile(r"^\| *([EMS]\d+) *\|")
ROWS = [(doc, block) for doc in UNNAMED_RUNS for block in blocks((DOCS / doc).read_text()) if ROW.match(block)]


@pytest.mark.parametrize("doc, row", ROWS, ids=[f"{doc}:{ROW.match(row)[1]}" for doc, row in ROWS])
def test_each_row_names_the_commit_and_machine_its_evidence_ran_at(doc, row):
    links = EVIDENCE_LINK.findall(row)
    if not links:
        pytest.skip("a row summarising every experiment links no one summary")
    machine = json.loads(((DOCS / links[0]).parent / "summary.json").read_text())["machine"]
    named = NAMED_RUN.search(row)
    commit, cpu = named.groups() if named else UNNAMED_EXCEPTIONS.get(ROW.match(row)[1], UNNAMED_RUNS[doc])
    assert named or commit in (DOCS / doc).read_text()
    assert machine["commit"].startswith(commit), f"{links[0]} ran at {machine['commit']}, the doc says {commit}"
    assert cpu.split()[0] in machine["cpu_model"], f"{links[0]} ran on {machine['cpu_model']}, the doc says {cpu}"


@pytest.mark.parametrize("figure", FIGURES, ids=[f.name[:90] for f in FIGURES])
def test_the_figure_matches_its_evidence(figure):
    assert problems(figure) == []


def test_every_walkthrough_has_registered_figures():
    assert {f.doc for f in FIGURES} >= {"shortener.md", "messaging.md", "shop.md"}


def test_numbers_are_read_as_printed():
    assert numbers("**243 / 557 / 1,049 req/s** at p99 2.9 ms, N=4") == ["243", "557", "1,049", "2.9", "4"]


def test_agreement_is_at_the_printed_precision():
    assert agrees("1,049", 1049.2) and agrees("2.9", 2.932927) and agrees("0.49", 0.485)
    assert not agrees("2.9", 2.96) and not agrees("87", 71.84) and not agrees("1,049", 1050)
    assert agrees("35", 0.35, scale=100) and not agrees("35", 0.36, scale=100)


def test_a_figure_marked_approximate_is_checked_to_its_last_nonzero_digit():
    assert approximate("~2,700 decrements/s, near 490 reservations/s, 18%") == [True, True, False]
    assert agrees("2,700", 2705.1, approx=True) and agrees("490", 487.6, approx=True)
    assert not agrees("2,700", 2705.1) and not agrees("2,700", 2760, approx=True) and not agrees("490", 484, approx=True)
    assert agrees("0", 0.3, approx=True) and not agrees("0", 0.6, approx=True)


def test_paths_read_quoted_keys_indexes_and_numbers_in_strings():
    data = {"variants": {"cache on": {"endpoints": {"/{code}": {"p99_ms": 1.6}}}},
            "points": [{"n": 1}, {"n": 2}], "facts": {"p99 (ms)": "18 / 26"}}
    assert lookup(data, 'variants["cache on"].endpoints["/{code}"].p99_ms') == 1.6
    assert lookup(data, "points[1].n") == 2
    assert lookup(data, 'facts["p99 (ms)"]#1') == 26.0
    assert lookup(data, 'facts["p99 (ms)"]#1 - facts["p99 (ms)"]#0 + points[1].n') == 10.0


def test_a_row_is_found_by_its_id_and_a_paragraph_by_its_citation():
    doc = "| # | x |\n|---|---|\n| E1 | 9 ms |\n| E10 | 7 ms |\n\nAs measured, 9 ms **[C3, E8]**.\n"
    assert passages(doc, "E1") == ["| E1 | 9 ms |"]
    assert passages(doc, "E8") == ["As measured, 9 ms **[C3, E8]**."]
    assert passages(doc, "E2", where="| E10 |") == ["| E10 | 7 ms |"]


@pytest.fixture
def lab(tmp_path):
    """A doc with one row and its evidence, as the walkthroughs are laid out."""
    (tmp_path / "evidence" / "demo" / "run").mkdir(parents=True)
    (tmp_path / "evidence" / "demo" / "run" / "summary.json").write_text(json.dumps(
        {"points": [{"rps": 243.2}, {"rps": 557.4}], "p99_ms": 71.84}))
    (tmp_path / "demo.md").write_text(
        "| E7 | **243 / 557 req/s**, p99 **72 ms**; wrong: **87 ms** | [report](evidence/demo/run/report.md) |\n")
    return tmp_path


def test_a_right_figure_passes(lab):
    figure = Figure("demo.md", "E7", "**243 / 557 req/s**", ("points[0].rps", "points[1].rps"))
    assert problems(figure, docs=lab) == []
    assert problems(Figure("demo.md", "E7", "p99 **72 ms**", ("p99_ms",)), docs=lab) == []


def test_a_deliberately_wrong_figure_fails(lab):
    wrong = problems(Figure("demo.md", "E7", "wrong: **87 ms**", ("p99_ms",)), docs=lab)
    assert len(wrong) == 1 and "prints 87" in wrong[0] and "71.84" in wrong[0]


def test_a_figure_edited_in_the_doc_but_not_the_registry_fails(lab):
    assert "is not in its row" in problems(Figure("demo.md", "E7", "**243 / 558 req/s**",
                                                  ("points[0].rps", "points[1].rps")), docs=lab)[0]


def test_a_registry_entry_with_the_wrong_count_of_paths_fails(lab):
    assert "2 numbers" in problems(Figure("demo.md", "E7", "**243 / 557 req/s**", ("points[0].rps",)), docs=lab)[0]


@pytest.mark.parametrize("doc_text, figure", [
    ("| E1 | redirect p50 **9.9 → 0.37 ms** | [report](evidence/shortener/cache/report.md) |",
     Figure("old.md", "E1", "redirect p50 **9.9 → 0.37 ms**", (
         'variants["cache off"].endpoints["/{code}"].p50_ms', 'variants["cache on"].endpoints["/{code}"].p50_ms'))),
    ("| M1 | a bare hop p99 of 215 ms (M8) | [report](evidence/messaging/capacity/report.md) |",
     Figure("old.md", "M1", "a bare hop p99 of 215 ms", ("kafka_hop_p99_ms",), "messaging/bench")),
    ("At ~15 KiB each (measured, compression off **[M6]**)",
     Figure("old.md", "M6", "At ~15 KiB each", ('facts["compression off"].kib_per_idle_connection',),
            "messaging/connections")),
], ids=["E1 all-request p50 quoted as the redirect's", "M1 hop p99 215 ms", "M6 15 KiB"])
def test_the_figures_this_test_was_written_for_fail_against_the_real_evidence(tmp_path, doc_text, figure):
    """Figures the walkthroughs once printed, against the evidence they cited: each is caught."""
    (tmp_path / "evidence").symlink_to(DOCS / "evidence")
    (tmp_path / "old.md").write_text(doc_text + "\n")
    found = problems(figure, docs=tmp_path)
    assert found and all(" prints " in problem for problem in found)


def test_an_id_the_doc_does_not_cite_fails(lab):
    assert "no row or paragraph" in problems(Figure("demo.md", "E99", "x", ()), docs=lab)[0]
