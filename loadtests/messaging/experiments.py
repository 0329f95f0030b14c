"""Messaging's experiments: each an interview trade-off, measured, one module each (as the shop's).

Run: ``sdlab experiment NAME``. Every run ends with the per-conversation checks of
:mod:`loadtests.messaging.checks` (nothing acknowledged lost or stored twice, seqs contiguous,
every reader got every message once and in order); the engine adds them to each experiment's
verdict. The capacity curve is the engine's own experiment, declared here.
"""

from __future__ import annotations

from loadtests.messaging.broker_restart import BROKER_RESTART
from loadtests.messaging.connections import CONNECTIONS
from loadtests.messaging.failover import FAILOVER
from loadtests.messaging.fanout import FANOUT
from loadtests.messaging.gateway_failure import GATEWAY_FAILURE
from loadtests.messaging.ordering import ORDERING
from loadtests.messaging.scale_out import SCALE_OUT
from loadtests.messaging.slow_consumer import SLOW_CONSUMER
from services.lab.experiments.capacity import capacity_experiment
from services.lab.measure.load import LoadSpec

# Pairs only, so a message is two deliveries and the rate means one thing (fan-out has its own
# experiment). A chat message seen within 100 ms reads as instant.
CAPACITY = capacity_experiment(
    design="messaging",
    load=LoadSpec(design="messaging", generator="script", rate=50, duration_s=10, seed_count=400,
                  options={"group_share": "0"}),
    question="How many messages/s (pairs) can two gateways take before delivery p99 passes 100 ms?",
    slo_p99_ms=100.0,
    rates=(50, 100, 150, 200, 300, 400, 600, 800, 1000, 1200, 1500, 2000),
    # A rate counts messages sent; the percentiles time each delivery, from the send to a member's socket.
    unit="messages/s",
    latency="send-to-delivery latency",
)

EXPERIMENTS = [CAPACITY, FANOUT, GATEWAY_FAILURE, BROKER_RESTART, SLOW_CONSUMER, CONNECTIONS, ORDERING, SCALE_OUT,
               FAILOVER]
