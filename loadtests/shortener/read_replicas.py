"""``shortener.read-replicas``: redirects read from 0, 1 and 2 streaming replicas, the cache off.

With the cache off every redirect is a PostgreSQL read, and each replica runs on a small CPU
budget, like a small database machine, the primary on a larger one. With no replica the primary
serves the reads and the writes (a reference point: the machine, not a budget, may be its limit);
with one, the reads move to the replica; with two, they spread over both and the ceiling should
double. The offered rate is far above any variant's
ceiling (open loop; k6 drops what it cannot start), with requests in flight capped so that queueing
stays inside the database deadline. A replica that cannot keep up fails its reads (503) rather than
passing them to the primary (see :mod:`services.clients.read_routing`). Also measured: the replicas' replication lag under the write
share of the load.
"""

from __future__ import annotations

from loadtests.shortener.analysis import REDIRECT
from services.lab.analysis import endpoint
from services.lab.budgets import bottleneck
from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.load import LoadSpec

# One server on 0.05 core carried ~1,300 redirects/s (cache off), and two replicas of 0.05 core
# ran the machine to 83% before either reached its budget: the app tier's ~0.4 core-ms a request
# is the wall near 1,900 redirects/s. On 0.035 core two replicas stalled (p99 0.6-0.8 s: Patroni's
# Python loop shares each member's budget, and a burst of it throttles the server for several
# periods) and 40 requests in flight could not keep them busy. On 0.03 core a new backend (a
# pool's connection, or the one asyncpg opens to cancel a statement past its deadline) costs about
# a second of wall time, and the replicas' reads timed out in a spiral.
MEMBER_BUDGET = 0.04
# The primary gets a larger machine: every redirect is a click, and the clicks come back to the
# primary as batched UPDATEs whose WAL it ships to every replica, so its writes grow with the reads
# the replicas serve. On the replicas' 0.04 core the primary ran out first with two replicas
# (throttled in 89% of periods, the replicas at 0.034 of 0.04): the write path, not the reads.
PRIMARY_BUDGET = 0.1
MAX_FAILED = 0.001  # of redirects: an open-loop overload may time out a few at its start
IN_FLIGHT = 64
# Pools of 4 per instance: 8 backends per server carry its reads, and few to start on a small budget.
NO_CACHE = {"SHORTENER_CACHE_ENABLED": "false", "SHORTENER_LOCAL_CACHE_SIZE": "0", "SHORTENER_DB_POOL_SIZE": "4"}
COUNTS = (0, 1, 2)
SCALE_GOAL = 1.6  # two replicas' reads/s over one's


def budgets(replicas: int) -> dict[str, float]:
    """The primary's budget and each replica's by name: ``postgres-0`` is also the kind of its replicas
    (``postgres-0-1``), so naming the primary alone would give them its budget too."""
    return {"postgres": MEMBER_BUDGET, "postgres-0": PRIMARY_BUDGET,
            **{f"postgres-0-{m}": MEMBER_BUDGET for m in range(1, replicas + 1)}}


def name_of(replicas: int) -> str:
    return f"{replicas} replica" + ("" if replicas == 1 else "s")


def reads_per_s(r: VariantResult) -> float:
    """Redirects answered 302 per second (a 503 is not a read served)."""
    ep = endpoint(r, REDIRECT)
    return (ep["rps"] or 0.0) * (1 - ep["failures"] / ep["requests"]) if ep["requests"] else 0.0


def replica_usage(r: VariantResult) -> list[bottleneck.Usage]:
    return bottleneck.usage_with_prefix(r.load.timeline, r.summary.get("budgets") or {}, "postgres-0-")


def max_lag(r: VariantResult) -> tuple[float | None, float | None]:
    """The largest replication lag (bytes, seconds) any replica showed in the run's timeline."""
    lags = [lag for row in r.load.timeline for lag in (row.get("replication") or {}).values()]
    if not lags:
        return None, None
    return (max(lag.get("lag_bytes") or 0 for lag in lags), max(lag.get("lag_s") or 0.0 for lag in lags))


def _used(usages: list[bottleneck.Usage]) -> str:
    return ", ".join(f"{u.component} {u.used_cores:.3f} of {u.budget_cores:g} core" for u in usages) or "no reading"


def evaluate(results: dict[str, VariantResult]) -> Outcome:
    one, two = results[name_of(1)], results[name_of(2)]
    rates = {n: reads_per_s(results[name_of(n)]) for n in COUNTS}
    machine = {n: bottleneck.machine_share(results[name_of(n)].load.timeline) for n in COUNTS}
    errors = {n: endpoint(results[name_of(n)], REDIRECT)["failures"] for n in COUNTS}
    usage_one, usage_two = replica_usage(one), replica_usage(two)
    ratio = rates[2] / rates[1] if rates[1] else 0.0
    checks = [
        Check(f"2 replicas carry at least {SCALE_GOAL:g}x the reads of 1", ratio >= SCALE_GOAL,
              f"{rates[2]:,.0f} vs {rates[1]:,.0f} redirects/s ({ratio:.2f}x)"),
        Check("the replicas were what ran out (each at its budget)",
              bool(usage_one) and bool(usage_two) and all(u.at_budget for u in usage_one + usage_two),
              f"1: {_used(usage_one)}; 2: {_used(usage_two)}"),
        Check("the machine below 90% busy with 1 and 2 replicas (else inconclusive)",
              all(machine[n] is not None and machine[n] < bottleneck.MACHINE_BUSY for n in COUNTS[1:]),
              ", ".join(f"{name_of(n)} {m:.0%}" if m is not None else f"{name_of(n)} unknown"
                        for n, m in machine.items())),
        Check(f"failed redirects below {MAX_FAILED:.1%} in every variant",
              all(errors[n] <= MAX_FAILED * max(1, endpoint(results[name_of(n)], REDIRECT)["requests"]) for n in COUNTS),
              ", ".join(f"{name_of(n)}: {errors[n]:,}" for n in COUNTS)),
    ]
    lag_bytes, lag_s = max_lag(two)
    lag = "not recorded" if lag_bytes is None else f"{lag_bytes:,.0f} bytes / {lag_s:.2f} s"
    claim = (f"With the cache off, each replica on {MEMBER_BUDGET:g} core and the primary on {PRIMARY_BUDGET:g}: "
             f"{rates[0]:,.0f} redirects/s with no replica (the primary alone), {rates[1]:,.0f} with one, "
             f"{rates[2]:,.0f} with two ({ratio:.2f}x one); largest replication lag with two replicas: {lag}.")
    facts = {name_of(n): bottleneck.name(bottleneck.usage_over(results[name_of(n)].load.timeline,
                                                               results[name_of(n)].summary.get("budgets") or {}),
                                         machine[n]) for n in COUNTS}
    facts["largest replication lag (2 replicas)"] = lag
    return Outcome(checks, claim, facts, record={"read_replicas": {
        "member_budget_cores": MEMBER_BUDGET, "reads_per_s": {str(n): round(v, 1) for n, v in rates.items()},
        "ratio_2_over_1": round(ratio, 2), "max_lag_bytes": lag_bytes, "max_lag_s": lag_s}})


def charts(out, results: dict[str, VariantResult]):
    from services.lab.report.charts import bar_chart

    return [bar_chart({name_of(n): reads_per_s(results[name_of(n)]) for n in COUNTS}, out / "read_replicas.png",
                      f"shortener.read-replicas: redirects/s, cache off, each server {MEMBER_BUDGET:g} core",
                      "redirects served (per second)")]


READ_REPLICAS = Experiment(
    name="shortener.read-replicas",
    title="redirects read from 0, 1 and 2 replicas, the cache off, each server a small machine",
    question="Do read replicas add read capacity, and how far behind do they fall under writes?",
    # Warm: every seeded link read once first, so each pool has opened its connections (a new backend
    # on a 0.03-core server costs milliseconds of its budget) before the load is measured.
    load=LoadSpec(design="shortener", generator="k6", rate=3000, max_vus=IN_FLIGHT, duration_s=20, read_weight=20,
                  write_weight=1, warm=True),
    variants=[Variant(name_of(n), app_env=NO_CACHE, replicas=n or None, replication="async" if n else None,
                      budgets=budgets(n)) for n in COUNTS],
    evaluate=evaluate,
    charts=charts,
    columns=[("redirects/s", lambda r: f"{reads_per_s(r):,.0f}"),
             ("replicas' CPU", lambda r: _used(replica_usage(r)))],
)
