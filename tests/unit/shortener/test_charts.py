"""The shortener's experiment charts, drawn from made-up variant summaries and read back from matplotlib."""

from __future__ import annotations

from pathlib import Path

from loadtests.shortener.analysis import REDIRECT
from loadtests.shortener.cache import CACHE
from services.lab.experiments.experiment import Variant, VariantResult
from services.lab.experiments.report import draw_charts
from services.lab.measure.load import LoadResult
from tests.support.charts import drawn, has_unit  # noqa: F401 (drawn: a fixture)

CREATE = "/api/v1/links"


def _variant(name: str, redirect_p99: float, create_p99: float, all_p99: float) -> VariantResult:
    summary = {"achieved_rps": 900.0, "p99_ms": all_p99, "loop": "open",
               "endpoints": {REDIRECT: {"rps": 818.0, "p99_ms": redirect_p99}, CREATE: {"rps": 82.0, "p99_ms": create_p99}}}
    return VariantResult(Variant(name), LoadResult(Path("."), summary))


def test_the_cache_chart_plots_the_redirect_p99_the_text_quotes(tmp_path, drawn):
    results = {"cache off": _variant("cache off", 71.8, 135.9, 86.9), "cache on": _variant("cache on", 1.6, 14.1, 2.9)}
    paths = draw_charts(CACHE, tmp_path, results)
    (ax,) = drawn[[p.name for p in paths].index("p99.png")].axes
    assert [bar.get_height() for bar in ax.patches] == [71.8, 1.6]  # the redirects', not every request's 86.9 / 2.9
    assert "redirect p99" in ax.get_ylabel() and has_unit(ax.get_ylabel())
    assert ax.get_yscale() == "linear"  # 1.6 to 72 ms: under two decades
