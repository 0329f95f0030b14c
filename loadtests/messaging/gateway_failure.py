"""``messaging.gateway-failure``: one of two gateways SIGKILLed mid-run.

Whether the dead gateway's users reconnect, and whether anything is lost, doubled or reordered
(every run ends with the per-conversation checks of :mod:`loadtests.messaging.checks`).
"""

from __future__ import annotations

from loadtests.messaging.analysis import loss, p99
from loadtests.messaging.samples import RECONNECT
from services.lab.analysis import endpoint, ms
from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.load import LoadSpec


def _gateway_failure(results: dict[str, VariantResult]) -> Outcome:
    r = results["gateway-1 killed"]
    f = loss(r)
    reconnect = endpoint(r, RECONNECT)
    checks = [
        Check("the fault schedule ran", not r.summary.get("fault_errors") and len(r.summary.get("faults", [])) == 2),
        Check("the kill cut connections, and they came back", (f.get("reconnects") or 0) > 0 and reconnect["requests"] > 0,
              f"{f.get('reconnects', 0)} reconnects, {reconnect['requests']} resumed"),
    ]
    claim = (f"With one of two gateways SIGKILLed mid-run, {f.get('reconnects', 0)} connections reconnected through "
             f"Caddy and resumed (p50 {ms(reconnect['p50_ms'], 1)}, p99 {ms(reconnect['p99_ms'], 1)}); of "
             f"{f.get('acknowledged', 0):,} acknowledged messages {f.get('lost', 0)} were lost, "
             f"{f.get('delivered_twice', 0)} delivered twice and {f.get('out_of_order', 0)} out of order.")
    return Outcome(checks, claim, {"reconnect p50 / p99": f"{ms(reconnect['p50_ms'], 1)} / {ms(reconnect['p99_ms'], 1)}",
                                   "delivery p99": ms(p99(r), 1)})


GATEWAY_FAILURE = Experiment(
    name="messaging.gateway-failure",
    title="one of two gateways SIGKILLed mid-run",
    question="When a gateway dies, do its users reconnect, and is anything lost, doubled or reordered?",
    load=LoadSpec(design="messaging", generator="script", rate=200, duration_s=30, seed_count=200,
                  faults="at 40% kill messaging-gateway-1; at 70% restart messaging-gateway-1"),
    variants=[Variant("gateway-1 killed")],
    evaluate=_gateway_failure,
    columns=[("reconnect p99", lambda r: ms(endpoint(r, RECONNECT)["p99_ms"], 1)),
             ("lost", lambda r: str(loss(r).get("lost", "-")))],
)
