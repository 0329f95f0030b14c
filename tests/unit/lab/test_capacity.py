"""The capacity experiment's search and verdicts, on made-up step summaries."""

from __future__ import annotations

from pathlib import Path

from services.lab.experiments.capacity import capacity_experiment, miss_reason
from services.lab.experiments.experiment import Variant, VariantResult
from services.lab.measure.load import LoadResult, LoadSpec
from services.lab.report import charts as report
from tests.support.charts import crosses, drawn, extent, has_unit, overlap  # noqa: F401 (drawn: a fixture)


def _summary(rate: float, p99: float, achieved: float | None = None, failures: int = 0, dropped: int = 0) -> dict:
    requests = int(rate * 10)
    return {"offered_rps": rate, "achieved_rps": achieved if achieved is not None else rate, "requests": requests,
            "failures": failures, "p50_ms": p99 / 5, "p99_ms": p99, "dropped_iterations": dropped,
            "spec": {"duration_s": 10}}


def test_miss_reasons():
    assert miss_reason(_summary(100, 10), 50, 0.001) is None
    assert "p99 80 ms" in miss_reason(_summary(100, 80), 50, 0.001)
    assert "errors" in miss_reason(_summary(100, 10, failures=5), 50, 0.001)
    assert "achieved 50 of 100" in miss_reason(_summary(100, 10, achieved=50), 50, 0.001)
    assert "dropped" in miss_reason(_summary(100, 10, dropped=50), 50, 0.001)


def _run(exp, results: dict, rate: float, p99: float, **kw) -> object:
    summary = _summary(rate, p99, **kw)
    name = f"{rate:.0f} req-s" + (" again" if f"{rate:.0f} req-s" in results else "")
    results[name] = VariantResult(Variant(name), LoadResult(Path("."), summary))
    return exp.more(results)


def test_steps_rise_a_miss_is_retried_and_the_knee_is_below_the_first_rate_that_missed_twice():
    exp = capacity_experiment(design="d", load=LoadSpec(design="d"), question="?", rates=(100, 200, 400, 800, 1600))
    assert exp.name == "d.capacity" and exp.load.generator == "k6"
    results: dict = {}
    assert _run(exp, results, 100, 5).load["rate"] == 200
    again = _run(exp, results, 200, 90)  # one pause: the same rate once more, on the same stack
    assert again.load["rate"] == 200 and again.same_stack and again.name == "200 req-s again"
    assert _run(exp, results, 200, 9).load["rate"] == 400
    assert _run(exp, results, 400, 120).load["rate"] == 400
    assert _run(exp, results, 400, 130).load["rate"] == 800  # missed twice: one rate missed, go on
    assert _run(exp, results, 800, 300).load["rate"] == 800
    assert _run(exp, results, 800, 900, achieved=500) is None  # two rates missed: past saturation
    outcome = exp.evaluate(results)
    assert outcome.passed
    assert outcome.facts["knee (req/s)"] == 200
    assert "knee is 200 req/s" in outcome.claim and "p99 9.00 ms" in outcome.claim
    assert "At 400 req/s it saturated" in outcome.claim


def test_a_rate_that_met_above_one_that_missed_is_not_the_knee():
    exp = capacity_experiment(design="d", load=LoadSpec(design="d"), question="?", rates=(100, 200, 400))
    results: dict = {}
    _run(exp, results, 100, 5)
    _run(exp, results, 200, 80)
    _run(exp, results, 200, 85)
    _run(exp, results, 400, 20)
    assert exp.evaluate(results).facts["knee (req/s)"] == 100


def test_no_knee_fails_the_experiment():
    exp = capacity_experiment(design="d", load=LoadSpec(design="d"), question="?", rates=(100, 200))
    results: dict = {}
    _run(exp, results, 100, 500)
    _run(exp, results, 100, 500)
    _run(exp, results, 200, 900)
    assert _run(exp, results, 200, 900) is None
    assert not exp.evaluate(results).passed


def _tried(rates_and_p99s: list[tuple[float, float]]) -> dict:
    """Runs in order; a rate already run is its retry."""
    results: dict = {}
    for rate, p99 in rates_and_p99s:
        name = f"{rate:.0f} req-s" + (" again" if f"{rate:.0f} req-s" in results else "")
        results[name] = VariantResult(Variant(name), LoadResult(Path("."), _summary(rate, p99)))
    return results


def test_the_chart_marks_each_point_as_a_first_try_or_a_retry(tmp_path, drawn):
    exp = capacity_experiment(design="d", load=LoadSpec(design="d"), question="?", rates=(100, 200, 400))
    (chart,) = exp.charts(tmp_path, _tried([(100, 5), (200, 80), (200, 30), (400, 90), (400, 95)]))
    assert chart.exists()
    ax_lat, ax_rate = drawn[0].axes
    assert ax_lat.get_yscale() == "log"  # a few ms to seconds: decades
    for ax in (ax_lat, ax_rate):
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "first try" in legend and any(t.startswith("retry") for t in legend)
    # Every run is a marker: filled for a first try, hollow for a retry, at the rate and p99 it measured.
    markers = {(ln.get_marker(), ln.get_markerfacecolor() == "none"): list(zip(ln.get_xdata(), ln.get_ydata()))
               for ln in ax_lat.get_lines() if ln.get_linestyle() == "None" and ln.get_color() == report.COLORS[1]}
    assert markers[("o", False)] == [(100, 5), (200, 80), (400, 90)]
    assert markers[("s", True)] == [(200, 30), (400, 95)]
    # The line joins the run the verdict counts: 200's retry met the objective, 400 missed twice.
    (p99_line,) = [ln for ln in ax_lat.get_lines() if ln.get_label().startswith("p99")]
    assert list(p99_line.get_ydata()) == [5, 30, 90]


def test_the_messaging_chart_counts_messages_and_names_the_delivery_latency(tmp_path, drawn):
    from loadtests.messaging.experiments import CAPACITY

    CAPACITY.charts(tmp_path, _tried([(50, 8), (100, 9), (150, 300), (150, 320)]))
    ax_lat, ax_rate = drawn[0].axes
    assert "messages/s" in ax_rate.get_ylabel() and "messages/s" in ax_rate.get_xlabel()
    assert "request" not in ax_rate.get_ylabel() + ax_rate.get_xlabel()
    assert "delivery latency" in ax_lat.get_ylabel() and has_unit(ax_lat.get_ylabel())
    assert all(has_unit(ax.get_ylabel()) for ax in (ax_lat, ax_rate))


def test_the_legends_sit_beside_the_data(tmp_path, drawn):
    exp = capacity_experiment(design="d", load=LoadSpec(design="d"), question="?", rates=(100, 200, 400))
    exp.charts(tmp_path, _tried([(100, 5), (200, 9), (400, 300), (400, 320)]))
    for ax in drawn[0].axes:
        assert not overlap(extent(ax.get_legend()), extent(ax.patch))


def test_the_knee_label_sits_clear_of_the_achieved_line(tmp_path, drawn):
    exp = capacity_experiment(design="d", load=LoadSpec(design="d"), question="?", rates=(100, 200, 400, 800))
    exp.charts(tmp_path, _tried([(100, 5), (200, 9), (400, 30), (800, 300), (800, 320)]))
    ax_rate = drawn[0].axes[1]
    (label,) = [t for t in ax_rate.texts if "knee" in t.get_text()]
    assert "400" in label.get_text()
    assert not any(crosses(line, extent(label)) for line in ax_rate.get_lines() if line.get_label() == "achieved")
