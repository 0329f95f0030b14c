"""shop.failover's figures from a made-up ack log: RTO counts only requests sent after the kill,
the other shard's checkouts are judged over the outage, and steady latency comes from before it."""

from __future__ import annotations

from loadtests.shop import analysis as a
from loadtests.shop.failover import KILLED, failover_figures

ASSIGNMENT = [0, 1] * 8  # 16 buckets over 2 shards
T0 = 1_000.0  # the run's start, seconds since the epoch


def _pick(shard: int, of, make):
    return next(x for x in (make(i) for i in range(10_000)) if of(x) == shard)


SMAP = a.shard_map(ASSIGNMENT)
USER = {s: _pick(s, SMAP.shard_of_user, lambda i: f"u{i}") for s in (0, 1)}
PRODUCT = {s: _pick(s, lambda p: SMAP.shard_of_id(p), lambda i: i + 1) for s in (0, 1)}


def _checkout(key: str, shard: int, at_s: float, answers: list[tuple[float, int, float]]) -> list[dict]:
    """One checkout of a buyer and a product on ``shard``: (sent at, status, ms) per try."""
    rows = [{"event": "attempted", "key": key, "user": USER[shard], "product": PRODUCT[shard], "t": (T0 + at_s) * 1000}]
    return rows + [{"event": "answer", "key": key, "status": status, "ms": took, "t": (T0 + sent) * 1000}
                   for sent, status, took in answers]


def _summary() -> dict:
    return {"started_at": T0, "duration_s": 60, "spec": {"duration_s": 60}, "server": {},
            "fault_windows": [{"component": KILLED, "kind": "kill", "start_s": 20.0, "end_s": 48.0}]}


def test_rto_counts_the_first_success_sent_after_the_kill():
    records = (
        _checkout("before", 1, 10, [(10, 201, 20)])
        # In flight at the kill and answered after it: proves nothing about the new primary.
        + _checkout("in-flight", 1, 19.99, [(19.99, 201, 50)])
        + _checkout("retried", 1, 21, [(21, 503, 1000), (30, 503, 1000), (41, 201, 30)])
        + _checkout("other", 0, 25, [(25, 201, 15)])
        + _checkout("other-late", 0, 45, [(45, 201, 15)])
    )
    f = failover_figures(records, _summary(), ASSIGNMENT)
    assert f["rto_s"] == 21.03
    assert f["other_shard_during"] == {"checkouts": 1, "ok": 1, "rate": 1.0}  # the one inside the outage
    assert f["steady_p50_ms"] == 20 and f["steady_n"] == 1
    assert f["client_5xx"] == {}


def test_no_success_after_the_kill_leaves_rto_unknown():
    records = _checkout("retried", 1, 21, [(21, 503, 1000)]) + _checkout("other", 0, 25, [(25, 201, 15)])
    f = failover_figures(records, _summary(), ASSIGNMENT)
    assert f["rto_s"] is None and f["killed_shard_statuses"] == {"503": 1}


def test_a_run_without_the_kill_says_so():
    summary = {**_summary(), "fault_windows": []}
    assert "error" in failover_figures([], summary, ASSIGNMENT)
