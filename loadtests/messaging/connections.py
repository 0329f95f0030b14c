"""``messaging.connections``: idle connections on one gateway, permessage-deflate off and on.

What an idle WebSocket costs in memory, and what compression adds.
"""

from __future__ import annotations

from loadtests.messaging.analysis import rss_per_connection
from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.load import LoadSpec

IDLE_CONNECTIONS = 5000


def _connections_after_load(settings, state, result) -> dict:
    gateway = state.components["messaging-gateway-1"]
    return rss_per_connection(f"http://{settings.host}:{state.ports['messaging']}", gateway.url, gateway.pid,
                              IDLE_CONNECTIONS, say=print)


def _connections(results: dict[str, VariantResult]) -> Outcome:
    off, on = results["compression off"].extra, results["compression on"].extra
    checks = [
        Check(f"held {IDLE_CONNECTIONS:,} idle connections on one gateway, both ways",
              off["connections_held"] == on["connections_held"] == IDLE_CONNECTIONS,
              f"{off['connections_held']:,} / {on['connections_held']:,}"),
        Check("compression off: <= 20 KiB per idle connection", off["kib_per_idle_connection"] <= 20,
              f"{off['kib_per_idle_connection']} KiB"),
        Check("compression on costs more memory", on["kib_per_idle_connection"] > off["kib_per_idle_connection"],
              f"{on['kib_per_idle_connection']} vs {off['kib_per_idle_connection']} KiB"),
    ]
    claim = (f"An idle connection costs the gateway {off['kib_per_idle_connection']} KiB without permessage-deflate "
             f"and {on['kib_per_idle_connection']} KiB with it ({IDLE_CONNECTIONS:,} held; the websockets docs say "
             f"~14 and ~64): 10,000 connections need ~{off['kib_per_idle_connection'] * 10_000 / 1024:.0f} MiB "
             f"or ~{on['kib_per_idle_connection'] * 10_000 / 1024:.0f} MiB.")
    return Outcome(checks, claim, {"compression off": off, "compression on": on})


CONNECTIONS = Experiment(
    name="messaging.connections",
    title="idle connections on one gateway, permessage-deflate off vs on",
    question="What does an idle WebSocket cost in memory, and what does compression add?",
    load=LoadSpec(design="messaging", generator="script", rate=20, duration_s=5, seed_count=20),
    variants=[Variant("compression off", app_env={"MESSAGING_COMPRESSION": "false"}),
              Variant("compression on", app_env={"MESSAGING_COMPRESSION": "true"})],
    evaluate=_connections,
    after_load=_connections_after_load,
    columns=[("KiB per idle connection", lambda r: str(r.extra.get("kib_per_idle_connection", "-")))],
)
