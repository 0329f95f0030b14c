"""Messaging's experiment charts, drawn from made-up variant summaries and read back from matplotlib."""

from __future__ import annotations

from pathlib import Path

from loadtests.messaging.fanout import FANOUT, GROUPS
from loadtests.messaging.samples import ACK, DELIVER
from services.lab.experiments.experiment import Variant, VariantResult
from services.lab.experiments.report import draw_charts
from services.lab.measure.load import LoadResult
from tests.support.charts import drawn, has_unit  # noqa: F401 (drawn: a fixture)

SEND_RATE = 10.0


def _group(size: int) -> VariantResult:
    """One sender at 10 messages/s into a group of ``size``: ``size`` deliveries a message."""
    deliveries = SEND_RATE * size
    summary = {"achieved_rps": SEND_RATE, "p99_ms": 20.0 + size / 10, "loop": "open",
               "endpoints": {ACK: {"rps": SEND_RATE, "p99_ms": 9.0},
                             DELIVER: {"rps": deliveries, "p99_ms": 20.0 + size / 10}}}
    return VariantResult(Variant(f"group of {size}"), LoadResult(Path("."), summary))


def _heights(fig) -> list[float]:
    return [bar.get_height() for bar in fig.axes[0].patches]


def test_the_fanout_charts_plot_deliveries_per_second_and_the_delivery_p99(tmp_path, drawn):
    results = {f"group of {size}": _group(size) for size in GROUPS}
    paths = draw_charts(FANOUT, tmp_path, results)
    throughput, p99 = (drawn[[p.name for p in paths].index(name)] for name in ("throughput.png", "p99.png"))
    assert _heights(throughput) == [SEND_RATE * size for size in GROUPS]  # not four bars of the send rate
    ylabel = throughput.axes[0].get_ylabel()
    assert "deliveries/s" in ylabel and has_unit(ylabel)
    # 20 to 10,000 deliveries/s: three decades, so a log axis, and the label says so.
    assert throughput.axes[0].get_yscale() == "log" and "log scale" in ylabel
    assert _heights(p99) == [20.0 + size / 10 for size in GROUPS]
    assert "delivery p99" in p99.axes[0].get_ylabel() and has_unit(p99.axes[0].get_ylabel())
    assert p99.axes[0].get_yscale() == "linear"  # 20 to 120 ms: within a decade
