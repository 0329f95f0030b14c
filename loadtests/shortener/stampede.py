"""``shortener.stampede``: a hot key expiring under load, with and without single-flight.

How many database reads one expiry of a hot key causes.
"""

from __future__ import annotations

from loadtests.shortener import analysis
from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.load import LoadSpec


def reads_per_expiry(r: VariantResult) -> float:
    return r.extra.get("hot_key_db_reads", 0) / max(1, r.extra.get("expiries", 1))


def _stampede(results: dict[str, VariantResult]) -> Outcome:
    on, off = results["single-flight on"], results["single-flight off"]
    per_on, per_off = reads_per_expiry(on), reads_per_expiry(off)
    instances = analysis.balanced_instances(on.summary)
    checks = [Check("single-flight: at most one database read per expiry per instance", per_on <= len(instances) + 0.5,
                    f"{per_on:.1f} reads per expiry, {len(instances)} instances"),
              Check("without single-flight more reads per expiry", per_off > per_on, f"{per_off:.1f} vs {per_on:.1f}")]
    claim = (f"When the hot key expired under load, single-flight held database reads to {per_on:.1f} per expiry "
             f"({len(instances)} instances) against {per_off:.1f} without it.")
    return Outcome(checks, claim, {"reads per expiry (on, off)": f"{per_on:.1f}, {per_off:.1f}"})


_STAMPEDE_ENV = {"SHORTENER_CACHE_TTL_S": "2", "SHORTENER_CACHE_TTL_JITTER": "0", "SHORTENER_LOCAL_CACHE_SIZE": "0"}
STAMPEDE = Experiment(
    name="shortener.stampede",
    title="a hot key expiring under load, with and without single-flight",
    question="How many database reads does one expiry of a hot key cause?",
    # One link, so every database read is the hot key's; its TTL is 2 s and nothing else caches it.
    load=LoadSpec(design="shortener", generator="k6", rate=2000, duration_s=30, read_weight=1, write_weight=0,
                  seed_count=1),
    variants=[Variant("single-flight on", app_env={**_STAMPEDE_ENV, "SHORTENER_SINGLE_FLIGHT": "true"}),
              Variant("single-flight off", app_env={**_STAMPEDE_ENV, "SHORTENER_SINGLE_FLIGHT": "false"})],
    evaluate=_stampede,
    after_load=analysis.stampede_after_load,
    columns=[("DB reads per expiry", lambda r: f"{reads_per_expiry(r):.1f}")],
)
