"""The shop's own figures for ``sdlab top``, from one window of its processes' ``/metrics``."""

from __future__ import annotations

from services.lab.measure.metrics_window import MetricsWindow


def gauges(window: MetricsWindow) -> list[tuple[str, str]]:
    per_shard = window.increase_by("shop_shard_queries_total", "shard")
    seconds = max(window.seconds, 1e-9)
    outcomes = window.increase_by("shop_checkouts_total", "outcome")
    backlog = window.gauge("shop_outbox_backlog")
    held = window.gauge("shop_reservations_held")
    return [
        ("queries/s per shard", ", ".join(f"{shard}: {n / seconds:,.0f}" for shard, n in
                                          sorted(per_shard.items(), key=lambda kv: int(kv[0]))) or "-"),
        ("checkouts", ", ".join(f"{o} {n:,.0f}" for o, n in sorted(outcomes.items())
                                if n and not o.startswith("key_")) or "none"),
        ("reservations held", "-" if held is None else f"{held:,.0f}"),
        ("outbox backlog (rows)", "-" if backlog is None else f"{backlog:,.0f}"),
        ("events relayed/s", f"{window.rate('shop_events_relayed_total'):,.0f}"),
        ("sagas recovered", f"{window.increase('shop_sagas_recovered_total'):,.0f}"),
        ("shard map version", "-" if (v := window.gauge("shop_shard_map_version")) is None else f"{v:.0f}"),
    ]
