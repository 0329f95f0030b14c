"""``messaging.scale-out``: 1, 2 and 4 fan-out workers (log-first persisters), each a small machine.

Log-first, a gateway acknowledges a message once it is on the ``message-sent`` log; the fan-out
workers, one consumer group over that topic's partitions, store each message (its seq assigned
there) and route it to its members' gateways. They are the part that limits delivery and the one
that scales by adding copies: the group spreads the partitions over its members (4 partitions: 4,
2 and 1 per worker at N = 1, 2, 4), and every message costs a worker the same whatever N is.
Gateways would not: with one gateway both members of a pair are on it and a message is delivered
from memory, with more most go through Kafka to another gateway, so a message costs more as N grows.

Each worker is held to a small CPU budget so that the workers, not the shared machine, run out;
the rest of the stack runs unbudgeted beside them. The open loop offers more than N workers carry,
with a bound on messages in flight (:mod:`loadtests.messaging.inflight`) so that the backlog, and
the drain after the last send, stay short. Throughput is **messages delivered per second**: log-first
acknowledgements measure the gateways' produce to the log, not the workers; what the workers
carry shows as messages arriving on their members' sockets. The engine's scaling experiment judges
it (:mod:`services.lab.experiments.scaling`) over the seconds the sends ran (not the connection storm before).
"""

from __future__ import annotations

from loadtests.messaging.samples import ACK, DELIVER
from services.lab.experiments.scaling import Scaling, scaling_experiment
from services.lab.measure.load import LoadSpec

WORKERS = (1, 2, 4)
# A worker's cost is mostly per batch, not per message, so a busy one gets cheaper per message
# (measured: ~0.25 core-ms a message at 0.1 core, where it carried every one of 250/s offered,
# while Tansu, the gateways and the generator took ~2.3 core-ms each): a worker must be small
# for four of them to run out while the rest of the stack still has room on the machine.
WORKER_BUDGET = 0.03
LIFTED_BUDGET = 0.25  # four of them could carry more than the rest of the stack: where the wall moves
# One worker on its budget carried ~150 messages/s (measured). Every variant is offered more than
# four workers with the lifted budget could take; a send due while N x IN_FLIGHT_PER_WORKER
# messages are in flight (about a second of what N workers carry; lifted, a few hundred ms) is
# dropped and counted.
CARRIED_PER_WORKER = 150
OFFERED = 6000
IN_FLIGHT_PER_WORKER = 150
MEMBERS = 2  # pairs only: a message is two deliveries (its sender's socket gets it too)
# Seconds of the sends not counted: the workers' backlog fills up to the bound first.
WARMUP_S = 3
# Fetches wait up to 50 ms (the design's 5 ms is for latency on Tansu, which holds a fetch its
# whole wait): 5 ms polls cost an idle worker 0.03 core, all of a small budget, and Tansu a share
# of the machine per reader. Latencies here are the throughput setting's, not the design's.
APP_ENV = {"MESSAGING_WRITE_PATH": "log-first", "MESSAGING_FETCH_MAX_WAIT_MS": "50"}


def _sent(row: dict) -> bool:
    return row.get("by_name", {}).get(ACK, [0])[0] > 0


def sending(rows: list[dict]) -> list[dict]:
    """The seconds the sends ran, after the warm-up and without the last (partial) one."""
    seconds = [r["t"] for r in rows if _sent(r)]
    if not seconds:
        return []
    first, last = min(seconds) + WARMUP_S, max(seconds)
    return [r for r in rows if first <= r["t"] < last]


def delivered_per_s(rows: list[dict]) -> float:
    """Messages that reached their members' sockets, per second of the window."""
    window = sending(rows)
    deliveries = sum(r.get("by_name", {}).get(DELIVER, [0])[0] for r in window)
    return deliveries / MEMBERS / len(window) if window else 0.0


def _after_load(settings, state, result) -> dict:
    window = sending(result.timeline)
    return {"delivered_per_s": round(delivered_per_s(result.timeline), 1),
            "window": [window[0]["t"], window[-1]["t"] + 1] if window else None}


SCALE_OUT = scaling_experiment(
    name="messaging.scale-out",
    title="1, 2 and 4 fan-out workers (log-first), each held to a small CPU budget",
    question="Does adding fan-out workers add delivered messages/s when they are what runs out, and where is the wall next?",
    load=LoadSpec(design="messaging", generator="script", rate=OFFERED, duration_s=30, seed_count=800,
                  options={"group_share": "0", "drain_s": "15"}),
    scaling=Scaling(component="messaging-fanout", budget=WORKER_BUDGET, counts=WORKERS, lifted=LIFTED_BUDGET,
                    size=lambda n: {"workers": n, "app_env": APP_ENV},
                    load=lambda n: {"max_vus": IN_FLIGHT_PER_WORKER * n},
                    unit="messages/s", throughput=lambda summary: summary["extra"]["delivered_per_s"],
                    window=sending),
    what="fan-out workers",
    after_load=_after_load,
    columns=[("delivered messages/s", lambda r: f"{r.extra.get('delivered_per_s', 0):,.1f}")],
)
