"""Reading a shop run back: the generator's log of every checkout and listing, placed on the run's
clock and on the shards, and the arithmetic the experiments quote (recovery time, percentiles,
per-checkout CPU cost and what it projects). Pure functions, except :func:`latest_map` and
:func:`read_shard_map`.

The k6 script (``load.k6.js``) logs, per checkout, an ``attempted`` record (user, key, product,
``t`` in ms since the epoch), one ``answer`` record per HTTP request sent for it (status, error
code, ``Idempotent-Replayed``, latency), and ``acknowledged`` at its first 201; with
``--option log_listings=1``, a ``listing`` record per listing (latency, status, partial flag). The
run's ``summary.json`` says when its t=0 was (``started_at``), which puts those records on the
same axis as the timeline and the fault windows.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field

from services.lab.analysis import percentile
from shop.sharding import ShardMap

CHECKOUT_ROUTE = "/api/v1/checkout"
IN_USE = "idempotency_key_in_use"


def figures(r) -> dict:
    """The post-run checks' figures of a run (orders, charges, losses), empty when none ran."""
    return r.summary.get("loss") or {}


# --- the shards of a checkout ----------------------------------------------------------------

def shard_map(assignment: list[int] | tuple[int, ...]) -> ShardMap:
    """A map from its bucket assignment alone (the servers' URLs do not matter here)."""
    shards = max(assignment) + 1
    return ShardMap(0, tuple(str(i) for i in range(shards)), tuple(assignment))


async def latest_map(first_db_url: str) -> dict[str, list]:
    """The newest shard map on the first server: ``assignment`` (shard per bucket) and ``shards`` (URLs)."""
    import asyncpg

    conn = await asyncpg.connect(first_db_url)
    try:
        row = await conn.fetchrow("SELECT assignment, shards FROM shard_map ORDER BY version DESC LIMIT 1")
    finally:
        await conn.close()
    return {k: json.loads(row[k]) if isinstance(row[k], str) else list(row[k]) for k in ("assignment", "shards")}


def read_shard_map(first_db_url: str) -> list[int]:
    """The bucket assignment in use (shard index per bucket), from the first PostgreSQL server."""
    return asyncio.run(latest_map(first_db_url))["assignment"]


@dataclass
class Checkout:
    """One checkout (one idempotency key) as its client saw it."""

    key: str
    user: str
    product: str
    t: float  # run seconds at its first request
    user_shard: int
    product_shard: int
    answers: list[dict] = field(default_factory=list)

    @property
    def shards(self) -> set[int]:
        return {self.user_shard, self.product_shard}

    @property
    def final(self) -> dict | None:
        """The answer it ended on: the first final one (a 201, 402, 404, a 409 that is not "in use"...),
        else the last one."""
        for a in self.answers:
            if is_final(a):
                return a
        return self.answers[-1] if self.answers else None

    @property
    def status(self) -> int | None:
        final = self.final
        return None if final is None else final["status"]

    @property
    def ok(self) -> bool:
        return self.status == 201


def is_final(answer: dict) -> bool:
    status = answer["status"]
    return status not in (0, 503) and not (status == 409 and answer.get("code") == IN_USE)


def checkouts(records: list[dict], started_at: float, assignment, ends_at: float | None = None) -> list[Checkout]:
    """Every attempted checkout with its answers, in the order started, on the run's clock.

    ``ends_at`` (run seconds): the scheduled end. A request sent after it that got no answer (status 0)
    was cut by the generator stopping its iterations, not left unanswered by the server: it is dropped.
    """
    smap = shard_map(assignment)
    found: dict[str, Checkout] = {}
    for r in records:
        if r.get("event") == "attempted" and "product" in r and "t" in r:
            found[r["key"]] = Checkout(r["key"], r["user"], str(r["product"]), r["t"] / 1000 - started_at,
                                       smap.shard_of_user(r["user"]), smap.shard_of_id(int(r["product"])))
    for r in records:
        cut = ends_at is not None and r.get("status") == 0 and r.get("t", 0) / 1000 - started_at >= ends_at
        if r.get("event") == "answer" and r.get("key") in found and not cut:
            found[r["key"]].answers.append(r)
    return sorted(found.values(), key=lambda c: c.t)


def listings(records: list[dict], started_at: float) -> list[dict]:
    """The listing records, each with ``s``: its start in run seconds."""
    return [{**r, "s": r["t"] / 1000 - started_at} for r in records if r.get("event") == "listing"]


# --- numbers ------------------------------------------------------------------------------------

def rate(ok: int, total: int) -> float | None:
    return ok / total if total else None


def success(group: list[Checkout]) -> dict:
    ok = sum(c.ok for c in group)
    return {"checkouts": len(group), "ok": ok, "rate": rate(ok, len(group))}


def between(items, start: float, end: float, at=lambda x: x.t) -> list:
    return [x for x in items if start <= at(x) < end]


def per_second(group: list[Checkout]) -> dict[int, tuple[int, int]]:
    """Second (of the run, by start) -> (succeeded, started)."""
    out: dict[int, list[int]] = {}
    for c in group:
        row = out.setdefault(math.floor(c.t), [0, 0])
        row[0] += c.ok
        row[1] += 1
    return {s: (ok, n) for s, (ok, n) in sorted(out.items())}


def recovery_time(series: dict[int, tuple[int, int]], resume_s: float, baseline: float,
                  share: float = 0.95, min_count: int = 3) -> float | None:
    """Seconds from ``resume_s`` to the start of the first whole second after it whose checkouts
    (those started in it, at least ``min_count``) succeeded at ``share`` of ``baseline`` or better;
    None when none did."""
    for second, (ok, n) in sorted(series.items()):
        if second >= resume_s and n >= min_count and ok / n >= share * baseline:
            return round(second - resume_s, 3)
    return None


def statuses(group: list[Checkout]) -> Counter:
    """Final answers by status (and error code): ``{"201": n, "503 shard_unavailable": m, ...}``."""
    return Counter(f"{c.status}" + (f" {c.final.get('code')}" if c.final and c.final.get("code") else "")
                   for c in group)


def every_answer_status(group: list[Checkout]) -> Counter:
    return Counter(a["status"] for c in group for a in c.answers)


_SERVER_KEY = re.compile(r"^http_requests_total\{(.*)\}$")


def server_statuses(server_delta: dict[str, float]) -> Counter:
    """HTTP answers the instances counted over the run, by (route, status), from their /metrics."""
    out: Counter = Counter()
    for key, value in server_delta.items():
        m = _SERVER_KEY.match(key)
        if not m or not value:
            continue
        labels = dict(part.split("=", 1) for part in m.group(1).split(",") if "=" in part)
        out[(labels.get("route", "?"), int(labels.get("status", 0)))] += int(value)
    return out


def server_errors(server_delta: dict[str, float], allowed: tuple[int, ...] = (503,)) -> dict[str, int]:
    """Server-counted 5xx answers other than ``allowed``, by ``"route status"``."""
    return {f"{route} {status}": n for (route, status), n in sorted(server_statuses(server_delta).items())
            if status >= 500 and status not in allowed}


def listing_stats(rows: list[dict]) -> dict:
    ms = [r["ms"] for r in rows if r.get("status") == 200]
    return {"listings": len(rows), "answered": len(ms), "partial": sum(1 for r in rows if r.get("partial")),
            "errors": sum(1 for r in rows if r.get("status") != 200),
            "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99), "max_ms": max(ms) if ms else None}


# --- idempotency under hostile retries ------------------------------------------------------------

def retry_counts(group: list[Checkout], records: list[dict]) -> dict:
    """What a client that retries everything sent and got back."""
    answers = [a for c in group for a in c.answers]
    acked = {r["key"] for r in records if r.get("event") == "acknowledged"}
    finals = [c.final for c in group]
    return {
        "checkouts": len(group),
        "requests": len(answers),
        "duplicates_sent": len(answers) - len(group),
        # Copies sent together with a checkout's first request (one http.batch: the same start).
        "concurrent_copies": sum(1 for c in group for a in c.answers[1:] if a["t"] == c.answers[0]["t"]),
        "created": sum(1 for a in answers if a["status"] == 201 and not a.get("replayed")),
        "replays": sum(1 for a in answers if a.get("replayed")),
        "in_use": sum(1 for a in answers if a["status"] == 409 and a.get("code") == IN_USE),
        "timeouts": sum(1 for a in answers if a["status"] == 0),
        "unavailable": sum(1 for a in answers if a["status"] == 503),
        "acknowledged_keys": len(acked & {c.key for c in group}),
        "declined_keys": sum(1 for f in finals if f and f["status"] == 402),
        "refused_keys": sum(1 for f in finals if f and is_final(f) and f["status"] not in (201, 402)),
        "unanswered_keys": sum(1 for f in finals if f is None or not is_final(f)),
    }


# --- CPU per checkout, and what it projects --------------------------------------------------------

def component_group(name: str) -> str:
    """``postgres-3`` -> ``postgres``; ``shop-2`` -> ``shop``: copies of one part counted together."""
    return re.sub(r"-\d+$", "", name)


def cpu_by_group(cpu: dict[str, float]) -> dict[str, float]:
    out: Counter = Counter()
    for name, value in cpu.items():
        out[component_group(name)] += value
    return dict(out)


def mean_cpu(timeline: list[dict], start: float, end: float) -> dict[str, float]:
    """Average CPU% (100 = one core) per component over the seconds in [start, end)."""
    rows = [r["cpu"] for r in timeline if start <= r["t"] < end and r.get("cpu")]
    sums: Counter = Counter()
    for row in rows:
        sums.update(row)
    return {k: v / len(rows) for k, v in sums.items()} if rows else {}


def cost_per_checkout(cpu_percent: dict[str, float], per_s: float) -> dict[str, float]:
    """Core-milliseconds of each part per checkout: its CPU (100% = one core) over the checkout rate."""
    if per_s <= 0:
        return {}
    return {name: 10.0 * value / per_s for name, value in cpu_percent.items()}


def projection(costs_ms: dict[str, float], shards: int, db_group: str = "postgres", cores: int = 2,
               generator: str = "load-generator") -> dict:
    """What the measured costs allow.

    - ``db_ceiling``: checkouts/s with each of the ``shards`` servers on a core of its own (the
      database work spreads evenly over the shards: each does 1/shards of it);
    - ``rest_ceiling``: checkouts/s of everything else (apps, balancer, broker, cache; not the load
      generator) on ``cores`` cores of its own;
    - ``machine_ceiling``: checkouts/s of the whole stack on these ``cores``, the generator included;
    - ``limit``: which of the database or the rest would stop first once each has its cores.
    """
    db = costs_ms.get(db_group, 0.0)
    rest = sum(v for k, v in costs_ms.items() if k not in (db_group, generator))
    total = sum(costs_ms.values())
    db_ceiling = shards * 1000.0 / db if db else None
    rest_ceiling = cores * 1000.0 / rest if rest else None
    limit = None
    if db_ceiling is not None and rest_ceiling is not None:
        limit = "database" if db_ceiling < rest_ceiling else "rest of the stack"
    return {"db_core_ms": db, "rest_core_ms": rest, "total_core_ms": total, "db_ceiling": db_ceiling,
            "rest_ceiling": rest_ceiling, "machine_ceiling": cores * 1000.0 / total if total else None,
            "limit": limit}


def saturated(cpu_percent: dict[str, float], cores: int, machine_share: float = 0.85,
              one_core_share: float = 0.9) -> dict:
    """Whether the machine's cores ran out (total >= ``machine_share`` of them), and which single
    processes sat near a full core (a single-threaded process cannot use more)."""
    total = sum(cpu_percent.values())
    return {"total_percent": total, "machine": total >= machine_share * 100 * cores,
            "busiest": max(cpu_percent.items(), key=lambda kv: kv[1]) if cpu_percent else None,
            "at_one_core": sorted(k for k, v in cpu_percent.items() if v >= one_core_share * 100)}


def mean_machine_cpu(timeline: list[dict], start: float, end: float) -> float | None:
    """The whole machine's average CPU% (100 = every core busy) over [start, end), every process counted."""
    values = [r["machine_cpu"] for r in timeline if start <= r["t"] < end and r.get("machine_cpu") is not None]
    return sum(values) / len(values) if values else None


def created_per_second(group: list[Checkout], start: float, end: float) -> float:
    """Checkouts that ended 201 and started in [start, end), per second."""
    if end <= start:
        return 0.0
    return sum(1 for c in between(group, start, end) if c.ok) / (end - start)
