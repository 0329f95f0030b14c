"""The checks shop.failover and messaging.failover share (services/lab/replication_status.failover_checks):
the fault schedule ran (kill, then restart), and the killed primary came back as a replica."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.messaging import failover as messaging_failover
from loadtests.shop import failover as shop_failover
from services.lab.contract import LoadResult
from services.lab.experiments.experiment import Variant, VariantResult
from services.lab.replication.status import failover_checks

RAN = {"faults": [{"action": "kill"}, {"action": "restart"}]}


def test_a_run_whose_primary_was_killed_restarted_and_rejoined_passes_both():
    ran, rejoined = failover_checks("sync", RAN, "sync_standby")
    assert (ran.description, ran.passed) == ("sync: the fault schedule ran (kill, then restart)", True)
    assert (rejoined.description, rejoined.passed) == ("sync: the old primary rejoined as a replica", True)
    assert failover_checks("async", RAN, "replica")[1].passed


@pytest.mark.parametrize("summary", [
    {"faults": [{"action": "kill"}]},  # never restarted
    {"faults": [{"action": "restart"}, {"action": "kill"}]},
    {**RAN, "fault_errors": ["restart postgres-0: timed out"]},
    {},
])
def test_a_schedule_that_did_not_run_as_planned_fails(summary):
    ran, _ = failover_checks("async", summary, "replica")
    assert not ran.passed
    assert ran.detail == str(summary.get("fault_errors") or "")


@pytest.mark.parametrize("role", ["leader", None, "unknown"])
def test_an_old_primary_not_back_as_a_replica_fails_and_says_what_it_is(role):
    _, rejoined = failover_checks("async", RAN, role)
    assert not rejoined.passed and rejoined.detail == str(role)


def _result(summary: dict, extra: dict, replication: str = "async") -> VariantResult:
    return VariantResult(Variant(replication, replicas=1, replication=replication),
                         LoadResult(Path("."), {"offered": "100 msg/s", "duration_s": 50, **summary}), extra)


def _named(outcome, words: str) -> list:
    return [c for c in outcome.checks if words in c.description]


def test_both_failover_experiments_use_the_shared_checks():
    shop_extra = {"rto_s": 18.0, "other_shard_during": {"checkouts": 10, "ok": 10, "rate": 1.0},
                  "client_5xx": {}, "server_5xx": {}, "killed_shard_statuses": {}, "steady_p50_ms": 5.0,
                  "steady_p99_ms": 9.0, "steady_n": 100, "rejoined_as": "leader"}
    shop = shop_failover.evaluate({"async": _result({**RAN, "loss": {"unreadable_acked_count": 0}}, shop_extra)})
    messaging = messaging_failover.evaluate({"async": _result({"loss": {"lost": 0}}, {"rejoined_as": "leader"})})
    for outcome in (shop, messaging):
        assert len(_named(outcome, "the fault schedule ran")) == 1
        [rejoined] = _named(outcome, "the old primary rejoined as a replica")
        assert not rejoined.passed and rejoined.detail == "leader"
    assert _named(shop, "the fault schedule ran")[0].passed
    assert not _named(messaging, "the fault schedule ran")[0].passed  # its summary has no faults
