"""The engine's timeline chart and the charts' file names, drawn from made-up runs and read back from matplotlib."""

from __future__ import annotations

from loadtests.messaging.ordering import ORDERING
from services.lab.experiments.experiment import Variant, VariantResult
from services.lab.experiments.report import draw_charts, plain_name
from services.lab.experiments.scaling import Scaling
from services.lab.measure.load import LoadResult
from services.lab.report import charts as report
from tests.support.charts import PLAIN_FILE_NAME, drawn, extent, has_unit, overlap  # noqa: F401 (drawn: a fixture)

# Two workers stopped 0.3 s apart, as messaging.ordering's schedule does at 1% of the run.
WINDOWS = [{"component": "messaging-fanout-2", "kind": "stop", "start_s": 0.31, "end_s": 15.0},
           {"component": "messaging-fanout-3", "kind": "stop", "start_s": 0.61, "end_s": 23.8}]


def _timeline(seconds: int = 30) -> list[dict]:
    return [{"t": t, "requests": 200, "failures": 0, "p50_ms": 20.0 + t, "p99_ms": 40.0 + t} for t in range(seconds)]


def test_fault_labels_that_start_a_moment_apart_do_not_overprint(tmp_path, drawn):
    report.timeline_chart({"v": _timeline()}, tmp_path / "timeline.png", "t", {"v": WINDOWS})
    ax_rps = drawn[0].axes[0]
    first, second = (t for t in ax_rps.texts if t.get_text().startswith(" stop"))
    assert not overlap(extent(first), extent(second))
    # Both over the data: the busiest second's line stays below the lower label.
    (line,) = ax_rps.get_lines()
    top = ax_rps.transData.transform((0, max(line.get_ydata())))[1]
    assert min(extent(first).y0, extent(second).y0) > top


def test_the_timeline_legends_sit_beside_the_panels(tmp_path, drawn):
    report.timeline_chart({"a": _timeline(), "b": _timeline()}, tmp_path / "timeline.png", "t")
    for ax in drawn[0].axes:
        if ax.get_legend() is not None:
            assert not overlap(extent(ax.get_legend()), extent(ax.patch))


def test_a_variant_name_with_an_arrow_or_punctuation_makes_a_plain_file_name():
    assert plain_name("persisters 1 -> 3") == "persisters-1-to-3"
    assert plain_name("one slow shard (of 4), with deadline") == "one-slow-shard-of-4-with-deadline"
    assert plain_name("gateway 1 killed") == "gateway-1-killed"  # a plain name keeps its old file name


def test_the_ordering_timeline_file_name_is_plain(tmp_path):
    name = ORDERING.variants[0].name
    summary = {"fault_windows": WINDOWS}
    paths = draw_charts(ORDERING, tmp_path, {name: VariantResult(Variant(name), LoadResult(tmp_path, summary, _timeline()))})
    assert [p.name for p in paths] == ["timeline-persisters-1-to-3.png"]
    assert all(PLAIN_FILE_NAME.match(p.name) and p.exists() for p in paths)


def _tick_texts(ax) -> list[str]:
    extent(ax)  # a canvas that can draw
    ax.figure.canvas.draw()
    return [t.get_text() for t in ax.get_yticklabels() + ax.get_yticklabels(minor=True) if t.get_text()]


def test_a_log_axis_reads_plain_numbers_not_powers_of_ten(tmp_path, drawn):
    report.timeline_chart({"v": _timeline()}, tmp_path / "timeline.png", "t")  # p50 20 to p99 69 ms: under a decade
    ax_lat = drawn[0].axes[1]
    assert ax_lat.get_yscale() == "log"
    texts = _tick_texts(ax_lat)
    assert texts and all(t.replace(".", "").isdigit() for t in texts), texts  # "20", "40", not "2x10^1"


def _shard_scaling_points() -> list[dict]:
    """shop.shard-scaling's points as its reference run recorded them: every shard at its 0.05-core budget."""
    used = {1: [0.05], 2: [0.05, 0.048], 4: [0.049, 0.043, 0.05, 0.05]}
    return [{"n": n, "throughput": t, "scaled_used_cores": used[n], "machine_cpu_pct": m}
            for n, t, m in ((1, 53.1, 42.5), (2, 111.7, 27.7), (4, 228.6, 57.4))]


def test_the_scaling_chart_is_linear_with_units_and_its_legends_cover_no_bar(tmp_path, drawn):
    shards = Scaling(component="postgres", budget=0.05, size=lambda n: {"shards": n + 1}, unit="checkouts/s")
    report.scaling_chart(_shard_scaling_points(), shards, tmp_path / "scaling.png", "shop.shard-scaling", "shards")
    ax_rate, ax_cpu = drawn[0].axes
    assert ax_rate.get_yscale() == ax_cpu.get_yscale() == "linear"  # 53 to 229 checkouts/s: not decades
    assert "checkouts/s" in ax_rate.get_ylabel()
    assert all(has_unit(ax.get_ylabel()) for ax in (ax_rate, ax_cpu)), [ax.get_ylabel() for ax in (ax_rate, ax_cpu)]
    bars = [extent(bar) for bar in ax_cpu.patches if bar.get_height() > 0]
    assert len(bars) == 7
    for ax in (ax_rate, ax_cpu):
        legend = extent(ax.get_legend())
        assert not any(overlap(legend, bar) for bar in bars)
        assert not overlap(legend, extent(ax.patch))  # beside the panel: no line or bar under it either
