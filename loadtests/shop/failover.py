"""``shop.failover``: a shard's primary killed under a checkout load, with a streaming replica under
Patroni, asynchronous against synchronous replication.

What replication buys and what it costs, measured. Each PostgreSQL server has one replica
(``--replicas 1``); a third of the way in, the primary of shard 1 is SIGKILLed, Patroni promotes its
replica once the leader's lease runs out, and the shop's multi-host URLs find the new primary; later
the old primary is started again and rejoins as a replica. Per variant it reports:

- **RPO**: acknowledged orders lost (an order answered 201 that its buyer cannot read afterwards):
  must be 0 with synchronous replication (a commit waits for the replica); with asynchronous
  replication whatever had not reached the replica is lost, counted and named;
- **RTO**: seconds from the kill to the first checkout on that shard that succeeded, counting only
  requests sent after the kill (one in flight before it proves nothing);
- checkouts that never needed the killed shard, which must carry on (>= 99% succeed meanwhile);
- the steady-state price of each mode: checkout p50/p99 before the kill.
"""

from __future__ import annotations

from loadtests.shop import analysis as a
from loadtests.shop.checks import part_url
from services.lab.analysis import fault_window, ms, pct, percentile, read_jsonl
from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.load import LoadSpec
from services.lab.replication.layout import LOOP_WAIT_S, TTL_S
from services.lab.replication.status import failover_checks, member_role

KILLED, KILLED_SHARD = "postgres-1", 1
# Kill -> promotion is bounded by the leader's lease and one HA loop; then a connection to the new
# primary and the retrying client's next try. The slack covers the promotion on a busy machine.
RTO_BOUND_S = TTL_S + 2 * LOOP_WAIT_S + 10
UP_SUCCESS = 0.99
LOAD = LoadSpec(design="shop", name="failover", generator="k6", rate=30, duration_s=60, seed_count=100,
                read_weight=0, write_weight=1, faults=f"at 30% kill {KILLED}; at 80% restart {KILLED}")


def failover_figures(records: list[dict], summary: dict, assignment) -> dict:
    """RTO, the other shard's checkouts during the outage and the steady-state latency, from the ack log."""
    window = fault_window(summary, KILLED)
    if window is None or "started_at" not in summary:
        return {"error": f"no kill of {KILLED} in this run"}
    killed_at = window[0]
    started_at = summary["started_at"]
    group = a.checkouts(records, started_at, assignment, ends_at=summary.get("spec", {}).get("duration_s"))
    hit = [c for c in group if KILLED_SHARD in c.shards]
    # The first 201 on the killed shard among requests sent after the kill: when writes came back.
    back = [(ans["t"] + ans["ms"]) / 1000 - started_at for c in hit for ans in c.answers
            if ans["status"] == 201 and ans["t"] / 1000 - started_at > killed_at]
    rto = round(min(back) - killed_at, 2) if back else None
    outage_end = killed_at + (rto if rto is not None else summary["duration_s"])
    up = a.between([c for c in group if KILLED_SHARD not in c.shards], killed_at, outage_end)
    steady = [ans["ms"] for c in a.between(group, 3, killed_at - 1) for ans in c.answers if ans["status"] == 201]
    answers = a.every_answer_status(group)
    return {
        "killed_at_s": round(killed_at, 2), "rto_s": rto,
        "other_shard_during": a.success(up),
        "killed_shard_statuses": dict(a.statuses(a.between(hit, killed_at, outage_end))),
        "steady_p50_ms": percentile(steady, 50), "steady_p99_ms": percentile(steady, 99), "steady_n": len(steady),
        "client_5xx": {str(s): n for s, n in sorted(answers.items()) if s >= 500 and s != 503},
        "server_5xx": a.server_errors(summary.get("server", {})),
    }


def _after_load(settings, state, result) -> dict:
    assignment = a.read_shard_map(part_url(state, "postgres-0"))
    figures = failover_figures(read_jsonl(result.out_dir / "acks.jsonl"), result.summary, assignment)
    return {**figures, "rejoined_as": member_role(state, KILLED)}


def _lost(r: VariantResult) -> tuple[int, int]:
    loss = r.summary.get("loss") or {}
    return int(loss.get("unreadable_acked_count", -1)), int(loss.get("acknowledged", 0))


def evaluate(results: dict[str, VariantResult]) -> Outcome:
    checks, parts, facts = [], [], {}
    for name, r in results.items():
        f = r.extra
        if "error" in f:
            checks.append(Check(f"{name}: the kill ran and the run logged its checkouts", False, f["error"]))
            continue
        lost, acked = _lost(r)
        up = f["other_shard_during"]
        schedule_ran, rejoined = failover_checks(name, r.summary, f.get("rejoined_as"))
        checks += [
            schedule_ran,
            Check(f"{name}: writes on the killed shard came back within {RTO_BOUND_S} s (ttl {TTL_S} s + 2 loops + 10 s)",
                  f["rto_s"] is not None and f["rto_s"] <= RTO_BOUND_S, f"{f['rto_s']} s"),
            Check(f"{name}: checkouts needing only the other shard succeeded meanwhile (>= {UP_SUCCESS:.0%})",
                  up["checkouts"] > 0 and (up["rate"] or 0) >= UP_SUCCESS,
                  f"{up['ok']} of {up['checkouts']} ({pct(up['rate'])})"),
            Check(f"{name}: no 500 anywhere", not f["client_5xx"] and not f["server_5xx"],
                  f"client {f['client_5xx'] or 'none'}, server {f['server_5xx'] or 'none'}"),
            rejoined,
        ]
        if r.variant.replication == "sync":
            checks.append(Check(f"{name}: RPO 0: no acknowledged order lost", lost == 0, f"{lost} of {acked}"))
        facts[name] = (f"RPO: {lost} of {acked:,} acknowledged orders lost; RTO: {f['rto_s']} s from the kill to the "
                       f"first checkout on {KILLED} that succeeded; the other shard's checkouts meanwhile "
                       f"{pct(up['rate'])} ({up['ok']} of {up['checkouts']}); the killed shard's checkouts in that "
                       f"window ended {f['killed_shard_statuses']}; before the kill a paid checkout took p50 "
                       f"{ms(f['steady_p50_ms'])}, p99 {ms(f['steady_p99_ms'])} ({f['steady_n']} answers); "
                       f"the old primary came back as {f.get('rejoined_as')}")
        parts.append(f"{name}: {lost} of {acked:,} acknowledged orders lost, writes back {f['rto_s']} s after the kill, "
                     f"steady checkout p50 {ms(f['steady_p50_ms'])} / p99 {ms(f['steady_p99_ms'])}")
    first = next(iter(results.values()))
    claim = (f"With {KILLED}'s primary killed under {first.summary['offered']} of checkouts and one streaming replica "
             "per server under Patroni: " + "; ".join(parts) + ".")
    return Outcome(checks, claim, facts)


FAILOVER = Experiment(
    name="shop.failover",
    title="a shard's primary killed under checkouts: asynchronous vs synchronous replication, RPO and RTO",
    question="When a shard's primary dies, how many acknowledged orders are lost (RPO) and how long are its "
             "writes down (RTO), with asynchronous and with synchronous replication, and what does sync cost "
             "when nothing fails?",
    load=LOAD,
    variants=[
        # Asynchronous: what it loses is the measurement, not a failure of the run.
        Variant("async", replicas=1, replication="async", checks_measured=True),
        Variant("sync", replicas=1, replication="sync"),
    ],
    evaluate=evaluate,
    after_load=_after_load,
    columns=[("RTO", lambda r: f"{r.extra.get('rto_s')} s"),
             ("acknowledged lost", lambda r: "{} of {}".format(*_lost(r))),
             ("steady p50 / p99", lambda r: f"{ms(r.extra.get('steady_p50_ms'))} / {ms(r.extra.get('steady_p99_ms'))}")],
)
