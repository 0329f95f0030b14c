"""``messaging.broker-restart``: the Kafka broker killed and restarted (its memory log lost).

Where the source of truth is: what db-first and log-first each lose when the log is lost, and
what db-first costs in latency over the same runs.
"""

from __future__ import annotations

from loadtests.messaging.analysis import longest_silence, loss
from loadtests.messaging.samples import ACK, DELIVER
from services.lab.analysis import endpoint, fault_window, ms
from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.load import LoadSpec


def _down_s(r: VariantResult) -> float:
    """How long the broker was down in a run (0 when the run had no fault on it)."""
    start, end = fault_window(r.summary, "kafka") or (0.0, 0.0)
    return end - start


def _broker_restart(results: dict[str, VariantResult]) -> Outcome:
    facts, checks = {}, []
    for name, r in results.items():
        start, end = fault_window(r.summary, "kafka") or (0.0, 0.0)
        f = loss(r)
        facts[name] = (f"{f.get('lost', 0)} of {f.get('acknowledged', 0):,} acknowledged lost, "
                       f"{f.get('rejected', 0)} sends refused, delivery silent for {longest_silence(r.load.timeline, start)} s "
                       f"after the kill (broker down {end - start:.0f} s)")
    db, log = results["db-first"], results["log-first"]
    checks.append(Check("db-first: no acknowledged message lost", loss(db).get("lost") == 0,
                        f"{loss(db).get('lost')} lost"))
    checks.append(Check("the fault schedule ran in both", all(not r.summary.get("fault_errors") for r in results.values())))
    # log-first's loss is the measurement (its post-run checks are reported, not required).
    claim = (f"Kafka (Tansu, memory log) killed for {_down_s(db):.0f} s "
             f"and restarted empty: db-first lost {loss(db).get('lost')} of {loss(db).get('acknowledged', 0):,} acknowledged "
             f"messages (the outbox republished, gaps were repaired from PostgreSQL); log-first lost "
             f"{loss(log).get('lost')} of {loss(log).get('acknowledged', 0):,}: acked on the broker's word, not yet "
             f"persisted when its memory went. What db-first costs, over the same runs: send→ack p50 "
             f"{ms(endpoint(db, ACK)['p50_ms'], 1)} against {ms(endpoint(log, ACK)['p50_ms'], 1)}, delivery p50 "
             f"{ms(endpoint(db, DELIVER)['p50_ms'], 1)} against {ms(endpoint(log, DELIVER)['p50_ms'], 1)}.")
    return Outcome(checks, claim, facts)


BROKER_RESTART = Experiment(
    name="messaging.broker-restart",
    title="the Kafka broker killed and restarted (memory log lost), db-first vs log-first",
    question="Where is the source of truth? What does each write path lose when the log is lost?",
    load=LoadSpec(design="messaging", generator="script", rate=200, duration_s=30, seed_count=200,
                  faults="at 35% kill kafka; at 50% restart kafka"),
    variants=[Variant("db-first", app_env={"MESSAGING_WRITE_PATH": "db-first"}),
              Variant("log-first", app_env={"MESSAGING_WRITE_PATH": "log-first"}, checks_measured=True)],
    evaluate=_broker_restart,
    columns=[("lost", lambda r: str(loss(r).get("lost", "-"))), ("refused", lambda r: str(loss(r).get("rejected", "-")))],
)
