"""``shop.shard-scaling``: checkouts/s with 1, 2 and 4 PostgreSQL shards, each a small machine.

Sharding buys database capacity: N servers, each with its own cores, carry close to N times what
one does, as long as the database is what runs out. On one 2-core machine every part shares the
same cores, so each PostgreSQL server is held to a small CPU budget (a cgroup quota): the shards,
not the shared machine, run out first, and the run shows whether adding them adds checkouts. A
last variant lifts the budget to show where the wall moves next.

The first server is the shop's home: the shard map, the payment stand-in's charges and
fulfillment's table live there whatever the shard count, so it does work no shard count divides
(a checkout's charge is one statement there). Left among the shards it is the part that does not
scale (at 4 shards it would do ~1.5x the others' work and cap the efficiency near 0.75). Here it
holds no buckets (``SHOP_HOME_HOLDS_BUCKETS=false``) and has a budget of its own, so N counts data
shards, as a sharded shop with a separate coordinator database would run. The engine's scaling experiment
judges it (:mod:`services.lab.experiments.scaling`); this module adds the shop's own figures: checkouts/s
from the acknowledgements, what each checkout cost each part, and every answer's status.
"""

from __future__ import annotations

from loadtests.shop import analysis as a
from loadtests.shop.checks import part_url
from services.lab.analysis import read_jsonl
from services.lab.experiments.scaling import Scaling, scaling_experiment
from services.lab.measure.load import LoadSpec

SHARDS = (1, 2, 4)
# A new connection's first statements make asyncpg ask the server about the types they use (a
# recursive catalog query, ~10 ms of CPU each): on a 0.05-core shard the pools' first connections
# take seconds, so checkouts are counted after a warm-up long enough for them.
WARMUP_S, TAIL_S = 10.0, 1.0
# Each PostgreSQL server's share of a core: ~1 core-ms of PostgreSQL per checkout makes one such
# shard carry ~50 checkouts/s, so four of them (~200/s) and the Python tier serving them (~3.6
# core-ms each, ~0.8 core) still leave the machine room: the shards stay the bottleneck.
SHARD_BUDGET = 0.05
LIFTED_BUDGET = 0.3  # four of them and the home: 1.5 cores, leaving the rest room
HOME_BUDGET = 0.3
# Checkouts in flight per shard (k6's VUs): at ~50/s a shard and ~0.3 s a checkout (Little's law)
# 16 keep every shard's queue busy, so its budget is what runs out, without queueing so deep that
# waits reach the deadline below. Growing with N, like the shards, so each N is offered alike.
IN_FLIGHT_PER_SHARD = 16
# Checkouts offered per second (open loop), more than every variant carries: four budgeted shards
# carry ~220/s and the lifted variant all of 300/s, so it is offered more to find its wall (the
# machine, near 320/s).
OFFERED = 400
# The home holds no buckets. A shard on a twentieth of a core answers slower than the shop's 1 s
# outage deadline allows under a queue of checkouts: that deadline detects a dead server, and a
# small one is not dead, so it is raised here (the measured latency is in every variant's report).
# Each instance keeps 4 connections per server (the default is 20), as a pool is sized to its
# server: a twentieth of a core gains nothing from more statements at once, and each connection
# opened under load costs the shard a backend's start and asyncpg's type introspection (every 10 ms
# of CPU is 0.2 s at this budget). With 20, the shard that fell behind drew the checkouts in
# flight, opened connections for them, spent seconds doing so and fell further behind while the
# others idled: one shard at a time at its budget, 87/s at 4 shards; with 4 connections the four
# are busy together and carry ~4x one shard.
APP_ENV = {"SHOP_HOME_HOLDS_BUCKETS": "false", "SHOP_DATABASE_TIMEOUT_S": "5",
           "SHOP_DB_POOL_SIZE": "4", "SHOP_DB_MAX_OVERFLOW": "0"}


def scaling_figures(records: list[dict], summary: dict, timeline: list[dict], assignment, cores: int) -> dict:
    start, end = WARMUP_S, summary["duration_s"] - TAIL_S
    group = a.checkouts(records, summary["started_at"], assignment)
    per_s = a.created_per_second(group, start, end)
    cpu = a.mean_cpu(timeline, start, end)
    by_group = a.cpu_by_group(cpu)
    costs = a.cost_per_checkout(by_group, per_s)
    shards = max(assignment) + 1
    answers = a.every_answer_status(group)
    return {
        "shards": shards, "cores": cores, "window": [start, end], "checkouts_per_s": per_s,
        "cpu": {k: round(v, 1) for k, v in sorted(cpu.items())},
        "cpu_by_group": {k: round(v, 1) for k, v in sorted(by_group.items())},
        "core_ms_per_checkout": {k: round(v, 2) for k, v in sorted(costs.items())},
        "projection": a.projection(costs, shards, cores=cores),
        "saturation": a.saturated(cpu, cores),
        "machine_cpu": a.mean_machine_cpu(timeline, start, end),
        "answer_statuses": {str(k): v for k, v in sorted(answers.items())},
        "client_5xx": {str(k): v for k, v in answers.items() if k >= 500 and k != 503},
        "server_5xx": a.server_errors(summary.get("server", {})),
    }


def _after_load(settings, state, result) -> dict:
    assignment = a.read_shard_map(part_url(state, "postgres-0"))
    cores = int(result.summary.get("machine", {}).get("cores") or 2)
    return scaling_figures(read_jsonl(result.out_dir / "acks.jsonl"), result.summary, result.timeline, assignment, cores)


SHARD_SCALING = scaling_experiment(
    name="shop.shard-scaling",
    title="checkouts/s with 1, 2 and 4 PostgreSQL shards, each held to a small CPU budget",
    question="Does adding shards add checkout capacity when the database is what runs out?",
    load=LoadSpec(design="shop", generator="k6", rate=OFFERED, duration_s=30, seed_count=100, read_weight=0,
                  write_weight=1, max_vus=IN_FLIGHT_PER_SHARD * SHARDS[-1]),
    scaling=Scaling(component="postgres", budget=SHARD_BUDGET, counts=SHARDS, lifted=LIFTED_BUDGET,
                    size=lambda n: {"shards": n + 1, "app_env": APP_ENV},
                    fixed=("postgres-0",), budgets={"postgres-0": HOME_BUDGET}, unit="checkouts/s",
                    load=lambda n: {"max_vus": IN_FLIGHT_PER_SHARD * n},
                    throughput=lambda summary: summary["extra"]["checkouts_per_s"]),
    what="shards",
    after_load=_after_load,
    columns=[("checkouts/s", lambda r: f"{r.extra.get('checkouts_per_s', 0):,.1f}"),
             ("PostgreSQL core-ms / checkout", lambda r: f"{r.extra.get('core_ms_per_checkout', {}).get('postgres', 0):.1f}")],
)
