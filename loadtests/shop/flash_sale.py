"""``shop.flash-sale``: thousands of buyers on one product with limited stock, per inventory strategy.

The same open-loop flash sale (k6, every arrival a checkout of the flash product; a quarter as
many units as arrivals, so it sells out mid-run) against three stacks that differ only in
``SHOP_INVENTORY_STRATEGY``:

- ``conditional-update``: one ``UPDATE ... WHERE available >= q`` takes the unit and records the
  reservation; the hot row is locked from that statement to the commit;
- ``select-for-update``: ``SELECT ... FOR UPDATE``, decide in the application, ``UPDATE``, insert:
  the row stays locked across those round trips;
- ``redis-gate``: a Redis counter in front (a Lua script takes the unit), then the conditional
  update for those it let through; the losers never reach the row.

Per strategy it reports the paid orders/s while selling (first to last 201, from the client's
clock in the ack log), the time from the first arrival to the last unit paid, checkout p50/p99,
the p99 of the sold-out 409s (the losers' wait), how many reservation tries reached the database
and how many the gate turned away (the shop's ``shop_stock_tries_total``), and the stock
figures of the flash product read back from its shard (oversold must be 0, sold == paid orders).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg

from loadtests.shop.checks import part_url
from services.lab.analysis import endpoint, ms, percentile, read_jsonl
from services.lab.config import LabSettings
from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.load import LoadResult, LoadSpec
from services.lab.report import charts as report
from services.lab.state import LabState

CHECKOUT = "/api/v1/checkout"
STRATEGIES = ("conditional-update", "select-for-update", "redis-gate")
LABELS = {"conditional-update": "conditional UPDATE", "select-for-update": "SELECT ... FOR UPDATE",
          "redis-gate": "Redis gate, then UPDATE"}
FLASH_SHARE = 0.25  # units for a quarter of the arrivals: the sale ends mid-run
# 4,000 arrivals (100/s for 40 s) for 1,000 units. A paid checkout is several transactions on two
# shards, a payment call and the outbox, all in two Python processes sharing two cores with
# PostgreSQL, Redis, Caddy and payments: such a machine pays a few dozen orders/s, so 100
# arrivals/s pushes it past what it carries, and the sale still ends well inside the run.
# At most IN_FLIGHT checkouts at once (k6's VUs; past that k6 drops arrivals and counts them): as
# many as the two instances have database connections to a shard (2 x 20). More in flight only
# queue for a connection and for the row inside the shop's 1-second database deadline, and the
# sale drowns in 503s and retries (on a 2-core machine: 100 in flight paid half as many orders/s
# as 40, with reservation tries timing out).
IN_FLIGHT = 40
LOAD = LoadSpec(design="shop", name="flash-sale", generator="k6", rate=100, duration_s=40, seed_count=50,
                read_weight=0, write_weight=1, max_vus=IN_FLIGHT,
                options={"scenario": "flash-sale", "flash_share": str(FLASH_SHARE), "users": "1000"})


# --- pure figures from the generator's ack log ------------------------------------------------------

def accepted_times_ms(records: list[dict]) -> list[float]:
    """When each checkout was first answered 201 or 202 (an asynchronous checkout's "reserved, payment
    pending"), wall clock ms, one per Idempotency-Key: the request's start plus its latency."""
    first: dict[str, float] = {}
    for r in records:
        if r.get("event") == "answer" and r.get("status") in (201, 202) and r.get("t") is not None:
            at = float(r["t"]) + float(r.get("ms") or 0.0)
            key = r.get("key") or f"#{len(first)}"
            first[key] = min(at, first.get(key, at))
    return sorted(first.values())


def paid_times_ms(records: list[dict]) -> list[float]:
    """When each checkout got its first 201 (wall clock, ms), one per Idempotency-Key: from the
    ``acknowledged`` record's ``t``, or from an ``answer`` record with status 201 (``t`` is when
    that request started, ``ms`` its latency)."""
    first: dict[str, float] = {}
    for r in records:
        at = None
        if r.get("event") == "acknowledged" and r.get("t") is not None:
            at = float(r["t"])
        elif r.get("event") == "answer" and r.get("status") == 201 and r.get("t") is not None:
            at = float(r["t"]) + float(r.get("ms") or 0.0)
        if at is not None:
            key = r.get("key") or f"#{len(first)}"
            first[key] = min(at, first.get(key, at))
    return sorted(first.values())


def selling(paid_ms: list[float], start_ms: float) -> dict:
    """Paid orders over time: how many, orders/s from the first to the last, when those came
    (seconds from ``start_ms``), and how many in each second from ``start_ms``."""
    paid = sorted(paid_ms)
    span_s = (paid[-1] - paid[0]) / 1000 if len(paid) >= 2 else 0.0
    per_second: list[int] = []
    for at in paid:
        second = max(0, int((at - start_ms) // 1000))
        per_second += [0] * (second + 1 - len(per_second))
        per_second[second] += 1
    return {
        "paid": len(paid),
        "first_paid_s": round((paid[0] - start_ms) / 1000, 3) if paid else None,
        "last_paid_s": round((paid[-1] - start_ms) / 1000, 3) if paid else None,
        "selling_s": round(span_s, 3),
        # n payments over the span between the first and the last: n - 1 intervals.
        "orders_per_s": round((len(paid) - 1) / span_s, 1) if span_s > 0 else None,
        "paid_per_second": per_second,
    }


def load_start_ms(summary: dict, records: list[dict]) -> float | None:
    """The load's t=0 (wall clock, ms): the run's own, else its first attempt's."""
    if summary.get("started_at"):
        return float(summary["started_at"]) * 1000
    attempts = [float(r["t"]) for r in records if r.get("event") == "attempted" and r.get("t") is not None]
    return min(attempts) if attempts else None


def _answer_ms(records: list[dict], status: int, code: str | None = None) -> list[float]:
    return [float(r["ms"]) for r in records if r.get("event") == "answer" and r.get("status") == status
            and (code is None or r.get("code") == code) and r.get("ms") is not None]


def sold_out_answers(records: list[dict]) -> dict:
    """The sold-out 409s (``out_of_stock``, not a key still in use): how many, and their latency."""
    ms = _answer_ms(records, 409, "out_of_stock")
    return {"sold_out_answers": len(ms), "sold_out_p50_ms": percentile(ms, 50), "sold_out_p99_ms": percentile(ms, 99)}


def paid_answers(records: list[dict]) -> dict:
    """The 201s (the winners, replays included): their latency."""
    ms = _answer_ms(records, 201)
    return {"paid_p50_ms": percentile(ms, 50), "paid_p99_ms": percentile(ms, 99)}


def stock_tries(server: dict) -> dict:
    """The shop's reservation tries by path (``shop_stock_tries_total``), summed over instances."""
    prefix = "shop_stock_tries_total{path="
    tries = {k[len(prefix):-1]: int(v) for k, v in server.items() if k.startswith(prefix)}
    return {"gate_refused": tries.get("gate_refused", 0),
            "reached_database": sum(v for k, v in tries.items() if k.startswith("database_")),
            "database_taken": tries.get("database_taken", 0), "database_refused": tries.get("database_refused", 0),
            "database_errors": tries.get("database_error", 0)}


# --- read back from the shards ------------------------------------------------------------------------

async def _fetch(url: str, sql: str, *args) -> list:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def _shard_urls(first_db_url: str) -> list[str]:
    row = (await _fetch(first_db_url, "SELECT shards FROM shard_map ORDER BY version DESC LIMIT 1"))[0]
    return json.loads(row["shards"]) if isinstance(row["shards"], str) else list(row["shards"])


async def paid_order_times(first_db_url: str, product_id: int | None = None) -> list[float]:
    """When each paid order (holding ``product_id``, or any) was settled paid: wall clock, ms."""
    where = "AND EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id AND i.product_id = $1)" \
        if product_id is not None else ""
    args = (product_id,) if product_id is not None else ()
    sql = (f"SELECT extract(epoch FROM o.updated_at) * 1000 AS t FROM orders o WHERE o.status = 'paid' "
           f"AND o.bucket IN (SELECT bucket FROM owned_buckets) {where}")
    urls = await _shard_urls(first_db_url)
    return sorted(float(r["t"]) for rows in await asyncio.gather(*(_fetch(u, sql, *args) for u in urls))
                  for r in rows)


async def flash_stock_figures(first_db_url: str, product_id: int) -> dict:
    """The flash product's row and reservations (its shard) and the paid orders holding it (every shard)."""
    urls = await _shard_urls(first_db_url)
    stock = [r for rows in await asyncio.gather(*(_fetch(u, """
        SELECT p.initial_stock, p.available,
               coalesce(sum(r.quantity) FILTER (WHERE r.status = 'held'), 0) AS held,
               coalesce(sum(r.quantity) FILTER (WHERE r.status = 'sold'), 0) AS sold
        FROM products p LEFT JOIN reservations r ON r.product_id = p.id
        WHERE p.id = $1 AND p.bucket IN (SELECT bucket FROM owned_buckets) GROUP BY p.id""", product_id)
        for u in urls)) for r in rows]
    paid = [r for rows in await asyncio.gather(*(_fetch(u, """
        SELECT count(DISTINCT o.id) AS orders, coalesce(sum(i.quantity), 0) AS units
        FROM order_items i JOIN orders o ON o.id = i.order_id
        WHERE i.product_id = $1 AND o.status = 'paid' AND o.bucket IN (SELECT bucket FROM owned_buckets)""",
        product_id) for u in urls)) for r in rows]
    if not stock:
        return {"found": False}
    s = stock[0]
    return {"found": True, "stock": s["initial_stock"], "available": s["available"], "held": s["held"],
            "sold": s["sold"], "paid_orders": sum(r["orders"] for r in paid),
            "paid_units": sum(r["units"] for r in paid),
            "oversold": max(0, -s["available"], s["sold"] + s["held"] - s["initial_stock"])}


def measure(first_db_url: str, out_dir: Path, summary: dict) -> dict:
    """Every figure of one flash-sale run (after the design's checks let the sagas settle). Paid
    orders over time come from the orders themselves (when each was settled paid), so an order
    whose buyer gave up before its 201 counts too; the 201s the buyers got are ``paid_acks``."""
    seed = json.loads((out_dir / "seed.json").read_text())
    product = int(seed["flash_product"]["id"])
    records = read_jsonl(out_dir / "acks.jsonl")
    paid_at = asyncio.run(paid_order_times(first_db_url, product))
    start = load_start_ms(summary, records) or (paid_at[0] if paid_at else 0.0)
    figures = {"flash_product": str(product), **selling(paid_at, start),
               "paid_acks": len(paid_times_ms(records)), **sold_out_answers(records), **paid_answers(records),
               **stock_tries(summary.get("server", {})), **asyncio.run(flash_stock_figures(first_db_url, product))}
    figures["arrivals"] = sum(1 for r in records if r.get("event") == "attempted")
    figures["dropped"] = summary.get("dropped_iterations", 0)
    figures["sold_out"] = bool(figures.get("found")) and figures["sold"] == figures["stock"] and figures["held"] == 0
    figures["sold_out_s"] = figures["last_paid_s"] if figures["sold_out"] else None
    return figures


def _after_load(settings: LabSettings, state: LabState, result: LoadResult) -> dict:
    return measure(part_url(state, "postgres-0"), result.out_dir, result.summary)


# --- the experiment ---------------------------------------------------------------------------------

def _per_s(x: float | None) -> str:
    return "-" if x is None else f"{x:,.1f}/s"


def _sold_out(e: dict) -> str:
    if e.get("sold_out_s") is not None:
        return f"sold out {e['sold_out_s']:,.1f} s after the load started"
    return f"did not sell out ({e.get('sold')} of {e.get('stock')} sold)"


def _flash_sale(results: dict[str, VariantResult]) -> Outcome:
    checks, facts, parts = [], {}, []
    for name, r in results.items():
        e = r.extra
        c = endpoint(r, CHECKOUT)
        checks += [
            Check(f"{name}: 0 oversold (available >= 0, sold + held <= stock)",
                  e.get("found", False) and e["oversold"] == 0,
                  f"stock {e.get('stock')}, available {e.get('available')}, held {e.get('held')}, sold {e.get('sold')}"),
            Check(f"{name}: it sold out (sold == stock)", bool(e.get("sold_out")),
                  f"sold {e.get('sold')} of {e.get('stock')}, held {e.get('held')}"),
            Check(f"{name}: units sold == units in paid orders", e.get("found", False) and e["sold"] == e["paid_units"],
                  f"sold {e.get('sold')}, in {e.get('paid_orders')} paid orders {e.get('paid_units')}"),
        ]
        facts[name] = (f"{e.get('paid_orders')} paid orders ({e.get('paid_acks')} of them answered 201 to a buyer "
                       f"still waiting); {e.get('arrivals', 0):,} arrivals started, {e.get('dropped', 0):,} dropped by "
                       f"k6 (every VU busy); {_per_s(e.get('orders_per_s'))} paid while selling (first to last paid "
                       f"order, {e.get('selling_s')} s); {_sold_out(e)}; checkout p50 {ms(c['p50_ms'])}, p99 "
                       f"{ms(c['p99_ms'])}; paid 201 p50 {ms(e.get('paid_p50_ms'))}, p99 {ms(e.get('paid_p99_ms'))}; "
                       f"sold-out 409 p50 {ms(e.get('sold_out_p50_ms'))}, p99 {ms(e.get('sold_out_p99_ms'))} "
                       f"({e.get('sold_out_answers', 0):,} of them); reservation tries "
                       f"at the database {e.get('reached_database', 0):,} (taken {e.get('database_taken', 0):,}, "
                       f"refused {e.get('database_refused', 0):,}, failed {e.get('database_errors', 0):,}), turned "
                       f"away by the gate {e.get('gate_refused', 0):,}; {c['failures']:,} of {c['requests']:,} "
                       "checkout requests failed (503 or no answer; retried with the same key)")
        parts.append(f"{LABELS.get(name, name)}: {_per_s(e.get('orders_per_s'))} paid, {_sold_out(e)}, checkout "
                     f"p99 {ms(c['p99_ms'])}, sold-out 409 p99 {ms(e.get('sold_out_p99_ms'))}, "
                     f"{e.get('reached_database', 0):,} reservation tries at the database"
                     + (f" and {e.get('gate_refused', 0):,} turned away by the gate" if name == "redis-gate" else ""))
    if "redis-gate" in results:
        gate = results["redis-gate"].extra
        checks.append(Check("redis-gate: the gate turned sold-out checkouts away before the database",
                            gate.get("gate_refused", 0) > 0, f"{gate.get('gate_refused', 0):,} turned away"))
    first = next(iter(results.values()))
    oversold = sum(r.extra.get("oversold", 0) for r in results.values())
    sold_paid = all(r.extra.get("found") and r.extra.get("sold") == r.extra.get("paid_units") for r in results.values())
    offered = round((first.summary.get("offered_rps") or 0) * first.summary["spec"]["duration_s"])
    claim = (f"{first.extra.get('stock', 0):,} units for {offered:,} buyers ({first.summary['offered']}, "
             f"{first.summary['spec']['duration_s']:.0f} s): " + "; ".join(parts)
             + f". Oversold: {oversold}" + (" in every strategy" if oversold == 0 else " (NOT 0)")
             + "; units sold == units in paid orders: " + ("yes, in each" if sold_paid else "NO") + ".")
    return Outcome(checks, claim, facts)


def _charts(out: Path, results: dict[str, VariantResult]) -> list[Path]:
    plt = report.plt
    fig, ax = plt.subplots(figsize=(10, 5))
    for i, (name, r) in enumerate(results.items()):
        per_second = r.extra.get("paid_per_second") or []
        total, cumulative = 0, []
        for n in per_second:
            total += n
            cumulative.append(total)
        ax.step(range(1, len(cumulative) + 1), cumulative, where="post", color=report.COLORS[i % len(report.COLORS)],
                lw=1.6, label=f"{LABELS.get(name, name)} ({_per_s(r.extra.get('orders_per_s'))} while selling)")
    stock = max((r.extra.get("stock") or 0 for r in results.values()), default=0)
    if stock:
        ax.axhline(stock, color="grey", ls=":", lw=1.2, label=f"stock: {stock:,} units")
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel("paid orders (settled paid, cumulative)")
    ax.set_title("shop.flash-sale: paid orders over time per inventory strategy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    paid_path = report.save(fig, out / "flash-sale-paid.png")

    fig, ax = plt.subplots(figsize=(9, 4.5))
    names = list(results)
    series = [("checkout p50", [endpoint(results[n], CHECKOUT)["p50_ms"] or 0 for n in names]),
              ("checkout p99 (every answer)", [endpoint(results[n], CHECKOUT)["p99_ms"] or 0 for n in names]),
              ("sold-out 409 p99 (the losers)", [results[n].extra.get("sold_out_p99_ms") or 0 for n in names])]
    width = 0.8 / len(series)
    for j, (label, values) in enumerate(series):
        xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(names))]
        bars = ax.bar(xs, values, width, color=report.COLORS[j], label=label)
        for bar, v in zip(bars, values):
            ax.annotate(f"{v:,.0f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                        va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)), [LABELS.get(n, n) for n in names])
    ax.set_ylabel("ms (k6, open loop)")
    ax.set_title("shop.flash-sale: checkout latency per inventory strategy")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    p99_path = report.save(fig, out / "flash-sale-p99.png")
    timeline = report.timeline_chart({n: r.load.timeline for n, r in results.items()}, out / "timeline.png",
                                     "shop.flash-sale: every checkout answer")
    return [paid_path, p99_path, timeline]


FLASH_SALE = Experiment(
    name="shop.flash-sale",
    title="a flash sale: thousands of buyers, one product, a quarter as many units; three inventory strategies",
    question="Thousands of buyers on one product with limited stock: is anything oversold, is every unit sold "
             "paid for, and what do throughput and p99 cost with a conditional UPDATE, SELECT ... FOR UPDATE, "
             "and a Redis reservation in front (the hot-row trade-off)?",
    load=LOAD,
    variants=[Variant(s, app_env={"SHOP_INVENTORY_STRATEGY": s}) for s in STRATEGIES],
    evaluate=_flash_sale,
    after_load=_after_load,
    columns=[("paid/s while selling", lambda r: _per_s(r.extra.get("orders_per_s"))),
             ("sold out after", lambda r: "-" if r.extra.get("sold_out_s") is None else f"{r.extra['sold_out_s']:,.1f} s"),
             ("sold-out 409 p99", lambda r: ms(r.extra.get("sold_out_p99_ms"))),
             ("tries at the row / turned away by the gate",
              lambda r: f"{r.extra.get('reached_database', 0):,} / {r.extra.get('gate_refused', 0):,}"),
             ("sold / paid units / stock",
              lambda r: f"{r.extra.get('sold')} / {r.extra.get('paid_units')} / {r.extra.get('stock')}")],
    charts=_charts,
)
