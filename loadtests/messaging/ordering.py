"""``messaging.ordering``: log-first persisters scaled from 1 to 3 mid-run (a consumer-group rebalance).

Whether per-conversation order survives a rebalance, and what pause it costs.
"""

from __future__ import annotations

from loadtests.messaging.analysis import loss, median_p99, p99, worst_second_p99
from loadtests.messaging.samples import ACK
from services.lab.analysis import ms
from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.load import LoadSpec


def _ordering(results: dict[str, VariantResult]) -> Outcome:
    r = results["persisters 1 -> 3"]
    f = loss(r)
    joined = min((w["end_s"] for w in r.summary.get("fault_windows", []) if w.get("end_s") is not None), default=0.0)
    before = median_p99(r.load.timeline, 3, joined)
    worst = worst_second_p99(r.load.timeline, joined, r.summary["duration_s"])
    checks = [
        Check("the fault schedule ran", not r.summary.get("fault_errors") and len(r.summary.get("faults", [])) == 4),
        Check("per-conversation order never violated", f.get("out_of_order") == 0 and f.get("conversations_with_seq_gaps") == 0,
              f"{f.get('out_of_order')} out of order, {f.get('conversations_with_seq_gaps')} conversations with gaps"),
    ]
    claim = (f"Log-first, the persisting consumer group scaled from 1 to 3 members at {joined:.0f} s (a rebalance "
             f"moved partitions while messages kept coming): no conversation saw a message out of order or a seq gap, "
             f"{f.get('lost', 0)} of {f.get('acknowledged', 0):,} acknowledged messages were lost, and the worst second's "
             f"delivery p99 after the join was {ms(worst, 1)} against {ms(before, 1)} before: the pause a rebalance costs.")
    return Outcome(checks, claim, {"delivery p99 before / worst after the join": f"{ms(before, 1)} / {ms(worst, 1)}",
                                   "send→ack p99": ms(p99(r, ACK), 1)})


ORDERING = Experiment(
    name="messaging.ordering",
    title="log-first persisters scaled from 1 to 3 mid-run (a consumer-group rebalance)",
    question="Does per-conversation order survive a consumer-group rebalance, and what pause does it cost?",
    # Three workers start; two leave gracefully at once (the group is 1 before the sends begin),
    # and come back mid-run: the scale-up is the measured rebalance.
    load=LoadSpec(design="messaging", generator="script", rate=200, duration_s=30, seed_count=200,
                  faults="at 1% stop messaging-fanout-2; at 1% stop messaging-fanout-3; "
                         "at 50% restart messaging-fanout-2; at 50% restart messaging-fanout-3"),
    variants=[Variant("persisters 1 -> 3", workers=3, app_env={"MESSAGING_WRITE_PATH": "log-first"})],
    evaluate=_ordering,
)
