"""The figure refresher prints a new measurement the way the doc printed the old one."""

from __future__ import annotations

from tests.support.refresh_figures import printed_like, rewritten
from tests.unit.doc_figures import Figure, agrees


def test_a_new_value_keeps_the_printed_precision_and_separator():
    assert printed_like("1,049", 1187.6) == "1,188"
    assert printed_like("2.9", 3.04) == "3.0"
    assert printed_like("243", 1020.2) == "1,020"  # crossing a thousand gains the doc's comma
    assert printed_like("2026", 2031) == "2031"  # a 4-digit figure printed bare stays bare
    assert printed_like("0.82", 0.8449) == "0.84"
    assert printed_like("-3.5", -0.04) == "0.0"  # no "-0.0"
    assert printed_like("-12", -13.2) == "-13"


def test_an_approximate_figure_keeps_its_rounding():
    assert printed_like("2,700", 2861.0, approx=True) == "2,900"
    assert printed_like("490", 512.0, approx=True) == "510"


def test_only_the_numbers_that_disagree_are_printed_again():
    figure = Figure("x.md", "E1", "p99 **71.8 → 1.6 ms** at ~2,700/s", ("a", "b", "c"))
    new = rewritten(figure, {"a": 71.79, "b": 2.04, "c": 2651})
    assert new == "p99 **71.8 → 2.0 ms** at ~2,700/s"
    percent = Figure("x.md", "E1", "10.94% stale", ("f",), scale=100)
    assert rewritten(percent, {"f": 0.1234}) == "12.34% stale"
    assert agrees("12.34", 0.1234, scale=100)
