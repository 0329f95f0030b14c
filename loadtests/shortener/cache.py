"""``shortener.cache``: the cache off and on at the same offered load.

What the Redis + in-process cache buys on the redirect path: the hit ratio, PostgreSQL reads/s
and redirect p99 of both variants.
"""

from __future__ import annotations

from loadtests.shortener.analysis import REDIRECT
from services.lab.analysis import endpoint, pct
from services.lab.experiment import Check, Experiment, Outcome, Variant, VariantResult
from services.lab.load import LoadSpec


def _server(r: VariantResult, key: str) -> float:
    return r.summary["server"].get(key, 0.0)


def hit_ratio(r: VariantResult) -> float | None:
    hits = _server(r, "cache_hits_total{layer=local}") + _server(r, "cache_hits_total{layer=redis}")
    total = hits + _server(r, "cache_misses_total")
    return hits / total if total else None


def db_reads_per_s(r: VariantResult) -> float:
    return _server(r, "db_reads_total") / r.summary["duration_s"]


def _cache(results: dict[str, VariantResult]) -> Outcome:
    off, on = results["cache off"], results["cache on"]
    reads_off, reads_on = db_reads_per_s(off), db_reads_per_s(on)
    p99_off, p99_on = endpoint(off, REDIRECT)["p99_ms"] or 0.0, endpoint(on, REDIRECT)["p99_ms"] or 0.0
    ratio = hit_ratio(on) or 0.0
    checks = [
        Check("same offered load in both variants", off.summary["offered"] == on.summary["offered"]),
        Check("cache on: hit ratio >= 90%", ratio >= 0.9, pct(ratio, 2)),
        Check("cache on: PostgreSQL reads/s at most 20% of cache off", reads_on <= 0.2 * max(reads_off, 1),
              f"{reads_on:.0f}/s vs {reads_off:.0f}/s"),
        Check("cache on: redirect p99 not worse", p99_on <= p99_off * 1.1, f"{p99_on:.0f} ms vs {p99_off:.0f} ms"),
    ]
    claim = (f"At the same offered {on.summary['offered']}, the cache (hit ratio {pct(ratio, 2)}) cut PostgreSQL reads "
             f"from {reads_off:,.0f}/s to {reads_on:,.0f}/s and redirect p99 from {p99_off:.0f} ms to {p99_on:.0f} ms.")
    return Outcome(checks, claim, {"db reads/s (off, on)": f"{reads_off:.0f}, {reads_on:.0f}", "hit ratio (on)": pct(ratio, 2)})


CACHE = Experiment(
    name="shortener.cache",
    title="cache off vs on at the same offered load",
    question="What does the Redis + in-process cache buy on the redirect path?",
    load=LoadSpec(design="shortener", generator="k6", rate=900, duration_s=40),
    variants=[
        Variant("cache off", app_env={"SHORTENER_CACHE_ENABLED": "false", "SHORTENER_LOCAL_CACHE_SIZE": "0"}),
        Variant("cache on"),
    ],
    evaluate=_cache,
    columns=[("hit ratio", lambda r: pct(hit_ratio(r), 2)), ("DB reads/s", lambda r: f"{db_reads_per_s(r):,.0f}")],
)
