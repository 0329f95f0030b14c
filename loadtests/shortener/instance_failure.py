"""``shortener.instance-failure``: one of three instances killed.

Whether the load balancer hides an instance crash from users (retries on another instance,
active and passive health checks).
"""

from __future__ import annotations

from loadtests.shortener.analysis import REDIRECT, success, window
from services.lab.analysis import pct
from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.load import LoadSpec


def _instance_failure(results: dict[str, VariantResult]) -> Outcome:
    r = results["one of three killed"]
    ok = success(r, REDIRECT)
    w = window(r, "shortener-2")
    checks = [
        Check("the fault schedule ran", not r.summary.get("fault_errors") and len(r.summary.get("faults", [])) == 2),
        Check("GET success through Caddy >= 99.9%", ok >= 0.999, pct(ok, 2)),
    ]
    claim = (f"With one of three instances killed for {w[1] - w[0]:.0f} s, {pct(ok, 2)} of GETs through Caddy "
             f"succeeded (retries on another instance, active and passive health checks).")
    return Outcome(checks, claim, {"GET success": pct(ok, 2)})


INSTANCE_FAILURE = Experiment(
    name="shortener.instance-failure",
    title="one of three instances killed",
    question="Does the load balancer hide an instance crash from users?",
    load=LoadSpec(design="shortener", generator="k6", rate=600, duration_s=45,
                  faults="at 30% kill shortener-2; at 70% restart shortener-2"),
    variants=[Variant("one of three killed", instances=3)],
    evaluate=_instance_failure,
)
