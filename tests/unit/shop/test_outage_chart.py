"""shop.shard-outage's chart, drawn from a made-up run and read back from matplotlib."""

from __future__ import annotations

from pathlib import Path

from loadtests.shop.outage import VARIANT, charts
from services.lab.experiments.experiment import Variant, VariantResult
from services.lab.measure.load import LoadResult
from tests.support.charts import crosses, drawn, extent, has_unit, overlap  # noqa: F401 (drawn: a fixture)


def _paused_run() -> VariantResult:
    """30 s with the shard paused from 10 to 20 s: checkouts needing it fail, listings go partial at the deadline."""
    t = list(range(30))
    during = [10 <= s < 20 for s in t]
    series = {"t": t, "up_rate": [100.0] * 30, "hit_rate": [0.0 if d else 100.0 for d in during],
              "listing_p99": [260.0 if d else 12.0 for d in during], "partial_share": [100.0 if d else 0.0 for d in during]}
    return VariantResult(Variant(VARIANT), LoadResult(Path("."), {}), extra={"series": series, "window": [10.0, 20.0]})


def test_every_panel_names_its_quantity_and_unit_and_no_legend_covers_a_point(tmp_path, drawn):
    (path,) = charts(tmp_path, {VARIANT: _paused_run()})
    assert path.exists()
    panels = drawn[0].axes
    labels = [ax.get_ylabel() for ax in panels]
    assert all(has_unit(label) for label in labels), labels  # not a bare "ms" or "%"
    assert "listing p99" in labels[1] and "partial" in labels[2]
    for ax in panels:
        assert ax.get_yscale() == "linear"
        assert not overlap(extent(ax.get_legend()), extent(ax.patch))


def test_the_pause_label_sits_clear_of_the_lines(tmp_path, drawn):
    charts(tmp_path, {VARIANT: _paused_run()})
    ax_ok = drawn[0].axes[0]
    (label,) = [t for t in ax_ok.texts if "paused" in t.get_text()]
    assert not any(crosses(line, extent(label)) for line in ax_ok.get_lines())
