"""Reading a run's timeline and the stack after a run, for the shortener's experiments."""

from __future__ import annotations

import json
import re
import statistics
import time

from services.lab.analysis import endpoint, fault_window
from services.lab.experiments.experiment import VariantResult
from shortener import domain
from shortener.config import ShortenerSettings

REDIRECT, CREATE = "/{code}", "/api/v1/links"
OFFLINE_CODES = 1_000_000
CODE_SPACE = 62**7


def window(r: VariantResult, component: str) -> tuple[float, float]:
    """The run's fault window on ``component``; (0, 0) when it had none (its checks then fail)."""
    return fault_window(r.summary, component) or (0.0, 0.0)


def success(r: VariantResult, name: str) -> float:
    e = endpoint(r, name)
    return 1.0 - e["failures"] / e["requests"] if e["requests"] else 0.0


def balanced_instances(summary: dict) -> list[str]:
    """The instances behind the load balancer (``shortener-1``...), not workers like the aggregator."""
    design = summary["spec"]["design"]
    return [n for n in summary["instances_scraped"] if re.fullmatch(rf"{design}-\d+", n)]


def p99_between(timeline: list[dict], start: float, end: float) -> float:
    values = [r["p99_ms"] for r in timeline if start <= r["t"] < end and r.get("p99_ms") is not None]
    return statistics.median(values) if values else 0.0


def recovery_s(timeline: list[dict], after: float, baseline_p99: float, hold: int = 3) -> str:
    """How long after ``after`` the per-second p99 stays within 1.5x the baseline for ``hold`` seconds."""
    rows = [r for r in timeline if r["t"] >= after]
    for i in range(len(rows) - hold + 1):
        span = rows[i:i + hold]
        if all(r.get("p99_ms") is not None and r["p99_ms"] <= 1.5 * max(baseline_p99, 1.0) for r in span):
            return f"within {rows[i]['t'] - after:.0f} s"
    return "not within the run"


def in_window(timeline: list[dict], name: str, start: float, end: float) -> dict:
    requests = failures = 0
    slowest = 0.0
    for r in timeline:
        if start <= r["t"] < end and name in r.get("by_name", {}):
            n, f, *mx = r["by_name"][name]
            requests, failures = requests + n, failures + f
            slowest = max(slowest, mx[0] if mx else 0.0)
    return {"requests": requests, "failures": failures, "max_ms": slowest}


def _prefix_share(codes: list[str], prefix: int = 4) -> float:
    pairs = list(zip(codes, codes[1:]))
    return sum(a[:prefix] == b[:prefix] for a, b in pairs) / len(pairs) if pairs else 0.0


def _offline(scheme: str, n: int, secret: bytes) -> tuple[int, float]:
    """Collisions among ``n`` codes made by the scheme's pure function, and seconds taken."""
    start = time.perf_counter()
    if scheme == "hash":
        codes = (domain.hash_code(f"https://example.com/offline/{i}", 0) for i in range(n))
    elif scheme == "random":
        codes = (domain.random_code() for _ in range(n))
    else:
        obfuscator = domain.CounterObfuscator(secret)
        codes = (obfuscator.code(i) for i in range(n))
    seen: set[str] = set()
    collisions = 0
    for code in codes:
        if code in seen:
            collisions += 1
        seen.add(code)
    return collisions, time.perf_counter() - start


def ids_after_load(settings, state, result) -> dict:
    scheme = next(c for c in state.components.values() if c.kind == "app").env.get("SHORTENER_ID_SCHEME", "hash")
    acked = [json.loads(line) for line in (result.out_dir / "acks.jsonl").read_text().splitlines() if line.strip()]
    codes = [a["code"] for a in acked if a["event"] == "acknowledged"]
    secret = ShortenerSettings.model_fields["id_secret"].default.get_secret_value().encode()
    collisions, seconds = _offline(scheme, OFFLINE_CODES, secret)
    return {
        "collisions_during_run": result.summary["server"].get("code_collisions_total", 0.0),
        "offline_codes": OFFLINE_CODES,
        "offline_collisions": collisions,
        "offline_expected_birthday": round(OFFLINE_CODES**2 / (2 * CODE_SPACE), 2),
        "offline_seconds": round(seconds, 1),
        "guess_hit_rate": OFFLINE_CODES / CODE_SPACE,
        "adjacent_prefix_share": _prefix_share(codes),
        "plain_counter_prefix_share": _prefix_share([domain.base62(i, 7) for i in range(10_000)]),
    }


def stampede_after_load(settings, state, result) -> dict:
    ttl = float(next(c for c in state.components.values() if c.kind == "app").env["SHORTENER_CACHE_TTL_S"])
    return {
        "hot_key_db_reads": result.summary["server"].get("db_reads_total", 0.0),
        "expiries": max(1, int(result.summary["duration_s"] // ttl)),
        "coalesced": result.summary["server"].get("single_flight_coalesced_total", 0.0),
    }
