"""``messaging.failover``: the database's primary killed under chat load (db-first: PostgreSQL is the
truth), with a streaming replica under Patroni, asynchronous against synchronous replication.

A message is acknowledged once its row is committed, so what a failover may lose is exactly what
replication had not shipped: with synchronous replication nothing (0 acknowledged lost, required),
with asynchronous whatever was in flight (counted, not required). Order and exactly-once delivery
must survive the switch of primaries either way: sequence numbers come from the database, and the
new primary continues them. Between the kill and the promotion, sends are refused with an error
frame (the generator counts them) and deliveries stop; the report gives that silence.
"""

from __future__ import annotations

from loadtests.messaging.analysis import longest_silence, loss
from loadtests.messaging.samples import ACK
from services.lab.analysis import endpoint, fault_window, ms
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

KILLED = "postgres-0"
SILENCE_BOUND_S = TTL_S + 2 * LOOP_WAIT_S + 10
DB_FIRST = {"MESSAGING_WRITE_PATH": "db-first"}


def _after_load(settings, state, result) -> dict:
    return {"rejoined_as": member_role(state, KILLED)}


def evaluate(results: dict[str, VariantResult]) -> Outcome:
    checks, facts, parts = [], {}, []
    for name, r in results.items():
        start, _ = fault_window(r.summary, KILLED) or (0.0, 0.0)
        f = loss(r)
        silence = longest_silence(r.load.timeline, start)
        ack = endpoint(r, ACK)
        schedule_ran, rejoined = failover_checks(name, r.summary, r.extra.get("rejoined_as"))
        checks += [
            schedule_ran,
            Check(f"{name}: deliveries resumed within {SILENCE_BOUND_S} s of the kill", silence <= SILENCE_BOUND_S,
                  f"silent {silence} s"),
            rejoined,
        ]
        if r.variant.replication == "sync":
            checks.append(Check(f"{name}: RPO 0: no acknowledged message lost", f.get("lost") == 0,
                                f"{f.get('lost')} of {f.get('acknowledged')}"))
        facts[name] = (f"{f.get('lost')} of {f.get('acknowledged', 0):,} acknowledged messages lost, "
                       f"{f.get('stored_twice')} stored twice, {f.get('rejected', 0):,} sends refused; deliveries "
                       f"silent {silence} s after the kill; send→ack p50 {ms(ack['p50_ms'], 1)}, p99 "
                       f"{ms(ack['p99_ms'], 1)} over the run; the old primary came back as {r.extra.get('rejoined_as')}")
        parts.append(f"{name}: {f.get('lost')} of {f.get('acknowledged', 0):,} acknowledged lost, deliveries silent "
                     f"{silence} s, send→ack p50 {ms(ack['p50_ms'], 1)}")
    first = next(iter(results.values()))
    claim = (f"With messaging's PostgreSQL primary killed under {first.summary['offered']} of chat (db-first) and one "
             "streaming replica under Patroni: " + "; ".join(parts) + ".")
    return Outcome(checks, claim, facts)


FAILOVER = Experiment(
    name="messaging.failover",
    title="the database's primary killed under chat load: asynchronous vs synchronous replication",
    question="When messaging's database primary dies (db-first), are acknowledged messages lost, doubled or "
             "reordered across the failover, and how long does chat stop, with asynchronous and with "
             "synchronous replication?",
    load=LoadSpec(design="messaging", generator="script", rate=100, duration_s=50, seed_count=200,
                  faults=f"at 30% kill {KILLED}; at 80% restart {KILLED}"),
    variants=[
        Variant("async", app_env=DB_FIRST, replicas=1, replication="async", checks_measured=True),
        Variant("sync", app_env=DB_FIRST, replicas=1, replication="sync"),
    ],
    evaluate=evaluate,
    after_load=_after_load,
    columns=[("lost", lambda r: str(loss(r).get("lost", "-"))), ("refused", lambda r: str(loss(r).get("rejected", "-")))],
)
