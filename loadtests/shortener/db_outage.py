"""``shortener.db-outage``: PostgreSQL paused, availability against consistency.

Cached redirects must keep serving while the database hangs; creates must fail, and fast.
"""

from __future__ import annotations

from loadtests.shortener import analysis
from loadtests.shortener.analysis import CREATE, REDIRECT, window
from services.lab.analysis import pct
from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.load import LoadSpec


def _db_outage(results: dict[str, VariantResult]) -> Outcome:
    r = results["postgres paused"]
    w = window(r, "postgres-0")
    # One second in from each edge: a request that completes in the window's first or last
    # second may have been served before the pause or after the resume.
    inner = (w[0] + 1, w[1] - 1)
    red = analysis.in_window(r.load.timeline, REDIRECT, *inner)
    cre = analysis.in_window(r.load.timeline, CREATE, *inner)
    red_ok = 1 - red["failures"] / red["requests"] if red["requests"] else 0.0
    checks = [
        Check("the fault schedule ran", not r.summary.get("fault_errors") and len(r.summary.get("faults", [])) == 2),
        Check("cached redirects keep serving while PostgreSQL hangs (>= 99.9%)", red_ok >= 0.999, pct(red_ok, 2)),
        Check("creates fail while PostgreSQL hangs", cre["requests"] > 0 and cre["failures"] == cre["requests"],
              f"{cre['failures']} of {cre['requests']} failed"),
        Check("creates fail fast (slowest under 1.5 s, not a hang)", 0 < cre["max_ms"] < 1500, f"{cre['max_ms']:.0f} ms"),
    ]
    claim = (f"With PostgreSQL hung for {w[1] - w[0]:.0f} s, {pct(red_ok, 2)} of redirects (all cached) still succeeded "
             f"while creates failed with 503 within {cre['max_ms']:.0f} ms: the shortener chose availability for "
             f"reads and consistency for writes.")
    return Outcome(checks, claim, {"redirects during outage": f"{red['requests']} ({pct(red_ok, 2)} ok)",
                                   "creates during outage": f"{cre['requests']} (slowest {cre['max_ms']:.0f} ms)"})


DB_OUTAGE = Experiment(
    name="shortener.db-outage",
    title="PostgreSQL paused: availability vs consistency",
    question="What keeps working when the database hangs?",
    load=LoadSpec(design="shortener", generator="k6", rate=500, duration_s=45, warm=True,
                  faults="at 30% pause postgres-0; at 60% resume postgres-0"),
    variants=[Variant("postgres paused")],
    evaluate=_db_outage,
)
