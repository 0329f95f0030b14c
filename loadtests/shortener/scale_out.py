"""``shortener.scale-out``: 1, 2 and 4 instances, each a small machine: does throughput grow with them?

On one 2-core machine every instance shares the same cores, so adding instances adds processes
competing for them and says nothing about scale-out. Each instance is held to a small CPU budget
(a cgroup quota) so that the instances, not the machine, run out first; a last variant lifts the
budget to show where the wall moves next (Caddy, the generator). The engine's scaling experiment
judges it (:mod:`services.lab.experiments.scaling`).
"""

from __future__ import annotations

from services.lab.experiments.scaling import Scaling, scaling_experiment
from services.lab.measure.load import LoadSpec

# Each instance a twentieth of a core: four of them carry ~1,000 requests/s while Caddy, Redis and
# the generator still have room on the machine, so the instances are what runs out at every N.
# Requests in flight grow with N: 200 queued at one throttled instance outwait its own 1 s
# deadlines to Redis and PostgreSQL (503s), which would measure timeouts, not capacity.
INSTANCE_BUDGET = 0.05
IN_FLIGHT_PER_INSTANCE = 40

SCALE_OUT = scaling_experiment(
    name="shortener.scale-out",
    title="1, 2 and 4 instances, each held to a small CPU budget: does throughput grow with them?",
    question="Does adding instances add throughput when the instances are what runs out, and where is the wall next?",
    # Offered far more than any variant can take: k6 drops what it cannot start, so the achieved
    # rate is the ceiling (and errors stay out of it).
    load=LoadSpec(design="shortener", generator="k6", rate=4000, max_vus=160, duration_s=20, read_weight=20,
                  write_weight=1),
    scaling=Scaling(component="shortener", budget=INSTANCE_BUDGET, size=lambda n: {"instances": n},
                    budgets={"shortener-analytics": 0.25}, lifted=0.3,
                    load=lambda n: {"max_vus": IN_FLIGHT_PER_INSTANCE * n}),
    what="instances",
)
