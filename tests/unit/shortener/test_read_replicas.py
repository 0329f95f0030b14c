"""shortener.read-replicas: reads/s per variant, the replicas at their budget, the machine's share."""

from __future__ import annotations

from loadtests.shortener.analysis import REDIRECT
from loadtests.shortener.read_replicas import (
    COUNTS,
    MEMBER_BUDGET,
    PRIMARY_BUDGET,
    READ_REPLICAS,
    evaluate,
    max_lag,
    name_of,
    reads_per_s,
)
from services.lab.budgets.rules import resolve
from services.lab.contract import LoadResult
from services.lab.experiments.experiment import Variant, VariantResult


def _result(n: int, rps: float, *, replica_cores: float, machine: float = 60.0) -> VariantResult:
    members = ["postgres-0"] + [f"postgres-0-{i}" for i in range(1, n + 1)]
    budgets = {m: MEMBER_BUDGET for m in members}
    row = {"machine_cpu": machine, "budget": {m: {"cores": replica_cores, "throttled": 0.5} for m in members},
           "replication": {m: {"role": "replica", "lag_bytes": 4096 * n, "lag_s": 0.01 * n} for m in members[1:]}}
    summary = {"endpoints": {REDIRECT: {"rps": rps, "requests": 10000, "failures": 0}}, "budgets": budgets}
    return VariantResult(Variant(name_of(n)), LoadResult(None, summary, [row] * 5))


def test_two_replicas_at_their_budget_doubling_one_pass():
    results = {name_of(n): _result(n, rps, replica_cores=0.039) for n, rps in zip(COUNTS, (480, 500, 990))}
    outcome = evaluate(results)
    assert outcome.passed, [c for c in outcome.checks if not c.passed]
    assert "500 with one" in outcome.claim and "990 with two (1.98x one)" in outcome.claim
    assert "8,192 bytes / 0.02 s" in outcome.claim


def test_reads_that_did_not_grow_or_a_busy_machine_fail():
    flat = {name_of(n): _result(n, rps, replica_cores=0.039) for n, rps in zip(COUNTS, (480, 500, 600))}
    assert [c.description for c in evaluate(flat).checks if not c.passed] == ["2 replicas carry at least 1.6x the reads of 1"]
    busy = {name_of(n): _result(n, rps, replica_cores=0.039, machine=95.0) for n, rps in zip(COUNTS, (480, 500, 990))}
    assert [c.description for c in evaluate(busy).checks if not c.passed] == [
        "the machine below 90% busy with 1 and 2 replicas (else inconclusive)"]
    idle = {name_of(n): _result(n, rps, replica_cores=0.02) for n, rps in zip(COUNTS, (480, 500, 990))}
    assert [c.description for c in evaluate(idle).checks if not c.passed] == [
        "the replicas were what ran out (each at its budget)"]


def test_no_lag_recorded_is_said_not_invented():
    r = VariantResult(Variant("x"), LoadResult(None, {}, [{"machine_cpu": 10}]))
    assert max_lag(r) == (None, None)


def test_variants_turn_the_cache_off_and_budget_every_server():
    assert [v.replicas for v in READ_REPLICAS.variants] == [None, 1, 2]
    assert all(v.app_env["SHORTENER_CACHE_ENABLED"] == "false" for v in READ_REPLICAS.variants)


def test_the_primary_and_each_replica_get_their_own_budget():
    # The lab's resolution, as `up` applies it: a replica is not given the primary's budget.
    members = ["postgres-0", "postgres-0-1", "postgres-0-2", "postgres-1", "postgres-1-1", "postgres-1-2"]
    given = resolve(READ_REPLICAS.variants[2].budgets, members, machine_cores=2)
    assert given == {"postgres-0": PRIMARY_BUDGET, "postgres-0-1": MEMBER_BUDGET, "postgres-0-2": MEMBER_BUDGET,
                     "postgres-1": MEMBER_BUDGET, "postgres-1-1": MEMBER_BUDGET, "postgres-1-2": MEMBER_BUDGET}


def test_redirects_answered_503_are_not_reads_served():
    r = _result(1, 800, replica_cores=0.04)
    r.summary["endpoints"][REDIRECT]["failures"] = 2500
    assert reads_per_s(r) == 600


def test_a_few_timeouts_at_the_start_of_an_overload_pass_and_more_fail():
    few = {name_of(n): _result(n, rps, replica_cores=0.039) for n, rps in zip(COUNTS, (480, 500, 990))}
    few[name_of(2)].summary["endpoints"][REDIRECT]["failures"] = 10
    assert evaluate(few).passed
    few[name_of(2)].summary["endpoints"][REDIRECT]["failures"] = 11
    assert [c.description for c in evaluate(few).checks if not c.passed] == [
        "failed redirects below 0.1% in every variant"]


def test_the_primary_alone_may_run_the_machine_out_it_is_the_reference():
    results = {name_of(n): _result(n, rps, replica_cores=0.039, machine=95.0 if n == 0 else 60.0)
               for n, rps in zip(COUNTS, (1800, 500, 990))}
    assert evaluate(results).passed
