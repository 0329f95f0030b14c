"""``messaging.scale-out``: messages/s with 1, 2 and 4 WebSocket gateways, each a small machine.

The gateways hold the connections and do the per-message work on both ends (a sender's frame in,
the append and publish, a receiver's frame out), so they are the part a chat service adds when
it grows. Each gateway is held to a small CPU budget (a cgroup quota) so that the gateways, not
the shared 2 cores, run out first; the API instances scale with them. The engine's scaling
experiment judges it (:mod:`services.lab.scaling`); throughput is messages acknowledged to their
senders per second, and the design's checks after every variant still require every reader to
get every message once and in order.
"""

from __future__ import annotations

from loadtests.messaging.samples import ACK
from services.lab.load import LoadSpec
from services.lab.scaling import Scaling, scaling_experiment

GATEWAYS = (1, 2, 4)
# About a tenth of a core each: four of them and the rest of the stack (API instances, Kafka,
# PostgreSQL, Caddy, the generator) stay under the machine's cores at what four can carry.
GATEWAY_BUDGET = 0.08
LIFTED_BUDGET = 0.5


def acknowledged_per_s(summary: dict) -> float:
    acks = (summary.get("endpoints") or {}).get(ACK, {})
    return acks.get("requests", 0) / summary["duration_s"] if summary.get("duration_s") else 0.0


SCALE_OUT = scaling_experiment(
    name="messaging.scale-out",
    title="messages/s with 1, 2 and 4 gateways, each held to a small CPU budget",
    question="Does adding gateways add message throughput when the gateways are what runs out?",
    load=LoadSpec(design="messaging", generator="script", rate=1200, duration_s=15, seed_count=400,
                  options={"group_share": "0"}),
    scaling=Scaling(component="messaging-gateway", budget=GATEWAY_BUDGET, size=lambda n: {"instances": n},
                    counts=GATEWAYS, lifted=LIFTED_BUDGET, unit="messages/s", throughput=acknowledged_per_s),
    what="gateways",
)
