"""``messaging.fanout``: one sender into groups of 2, 10, 100 and 1,000 members.

What a message to a big group (the celebrity group) costs, in deliveries/s and latency.
"""

from __future__ import annotations

from loadtests.messaging.analysis import p99
from loadtests.messaging.samples import DELIVER
from services.lab.analysis import endpoint, ms
from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Measure,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.load import LoadSpec

GROUPS = (2, 10, 100, 1000)


def _fanout(results: dict[str, VariantResult]) -> Outcome:
    rows = {size: results[f"group of {size}"] for size in GROUPS}
    per_s = {size: endpoint(r, DELIVER)["rps"] for size, r in rows.items()}
    checks = [Check(f"group of {size}: deliveries/s about members x messages/s",
                    per_s[size] >= 0.8 * size * r.summary["achieved_rps"],
                    f"{per_s[size]:,.0f}/s for {r.summary['achieved_rps']:.0f} msg/s")
              for size, r in rows.items()]
    small, big = rows[GROUPS[0]], rows[GROUPS[-1]]
    claim = (f"One sender at {small.summary['offered']}: a pair took {per_s[GROUPS[0]]:,.0f} deliveries/s at p99 "
             f"{ms(p99(small), 1)}; a {GROUPS[-1]:,}-member group {per_s[GROUPS[-1]]:,.0f} deliveries/s at p99 "
             f"{ms(p99(big), 1)}: the same message rate costs {GROUPS[-1] // GROUPS[0]}x the deliveries.")
    facts = {f"group of {size}": f"{per_s[size]:,.0f} deliveries/s, delivery p50 {ms(endpoint(r, DELIVER)['p50_ms'], 1)}, "
             f"p99 {ms(p99(r), 1)}" for size, r in rows.items()}
    return Outcome(checks, claim, facts)


FANOUT = Experiment(
    name="messaging.fanout",
    title="one sender into groups of 2, 10, 100 and 1,000 members",
    question="What does a message to a big group cost (the celebrity group), in deliveries/s and latency?",
    load=LoadSpec(design="messaging", generator="script", rate=10, duration_s=20, seed_count=1000,
                  options={"group_sizes": ",".join(map(str, GROUPS))}),
    variants=[Variant(f"group of {size}", same_stack=size != GROUPS[0],
                      load={"options": {"group_sizes": ",".join(map(str, GROUPS)), "into_group": str(size)}})
              for size in GROUPS],
    evaluate=_fanout,
    # The message rate is the same in every variant; what grows with the group is the deliveries.
    throughput=Measure("deliveries to sockets", "deliveries/s", lambda r: endpoint(r, DELIVER)["rps"]),
    latency=Measure("delivery p99", "ms, send to socket, open loop", p99),
    columns=[("deliveries/s", lambda r: f"{endpoint(r, DELIVER)['rps']:,.0f}"),
             ("delivery p99", lambda r: ms(p99(r), 1))],
)
