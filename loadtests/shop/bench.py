"""``sdlab bench shop``: the flash sale against the hot row's own ceiling, and checkouts/s per shard count.

In one sitting, each stack started fresh in the experiment home:

- ``flash_sale_orders_per_s`` and ``oversold``: a flash sale through the whole stack (Caddy, two
  shop instances, the saga, payments) as real flash sales run it: the redis gate in front and the
  asynchronous checkout (``SHOP_CHECKOUT_MODE=async``: the buyer is answered 202 once the unit is
  reserved and the order placed; the worker charges and settles). The figure counts acknowledged
  reservations (the first 201 or 202 of each buyer) per second from the first to the last, and
  says so; the paid orders/s (settled by the worker) are reported beside it, and the flash
  product's stock is read back;
- ``hot_row_ceiling_per_s``: on the same PostgreSQL server of the same stack, a bare asyncpg loop of
  ``UPDATE products SET available = available - 1 WHERE id = $1 AND available >= 1`` (autocommit, one
  statement a transaction) on one row, from ``HOT_ROW_CONNECTIONS`` connections, counting the
  successful decrements/s until the row is sold out (stock for about ``duration`` seconds, from a
  short probe first). The row is a product of its own, deleted afterwards;
- ``ratio`` = flash_sale_orders_per_s / hot_row_ceiling_per_s. Goal: >= 0.5 with 0 oversold;
- ``checkout_per_s`` for 1 and 2 shards: checkouts of random products (no hot row), open loop at
  ``CHECKOUT_RATE``/s, more than the stack carries, with at most ``CHECKOUT_VUS`` in flight: the
  201s/s achieved from the first to the last.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg

from loadtests.shop.checks import part_url
from loadtests.shop.flash_sale import (
    accepted_times_ms,
    load_start_ms,
    measure,
    paid_order_times,
    selling,
)
from services.lab.analysis import read_jsonl
from services.lab.backends.local.supervisor import (
    down,
    down_if_running,
    experiment_home,
    up,
)
from services.lab.config import LabSettings
from services.lab.contract import BenchOptions
from services.lab.machine import invoked_command, machine_spec
from services.lab.measure.load import LoadSpec, results_dir, run_load, verify
from services.lab.state import LabState

STRATEGY = "conditional-update"
FLASH_ENV = {"SHOP_INVENTORY_STRATEGY": "redis-gate", "SHOP_CHECKOUT_MODE": "async"}
FLASH_RATE = 1000  # buyers/s offered: more than two cores carry, so the figure is the stack's
FLASH_SHARE = 0.5  # units for half of the arrivals: it sells out well inside the run
FLASH_VUS = 100  # buyers in flight at most (past it k6 drops arrivals and counts them)
# The bare loop's connections: about as many as the buyers in flight that reach the row.
HOT_ROW_CONNECTIONS = 32
PROBE_S = 2.0
CHECKOUT_RATE = 800  # arrivals/s offered to the checkout-only runs: more than two cores carry
CHECKOUT_VUS = 64  # in flight at most (a checkout waits ~25 ms on the payment stand-in)
CHECKOUT_SEED = 200  # products (1,000 units each): no row is hot
READ_RATE = 300  # catalog reads/s for what one read costs: well below what two cores carry


# --- the bare hot-row loop ----------------------------------------------------------------------------

_DECREMENT = "UPDATE products SET available = available - 1 WHERE id = $1 AND available >= 1"


async def _decrement_loop(url: str, product_id: int, connections: int, stop_after_s: float | None) -> dict:
    """Decrement one row from ``connections`` connections until it is sold out (or ``stop_after_s``)."""
    conns = await asyncio.gather(*(asyncpg.connect(url) for _ in range(connections)))
    taken, last = 0, 0.0
    start = time.monotonic()
    deadline = start + stop_after_s if stop_after_s else None

    async def worker(conn) -> None:
        nonlocal taken, last
        while deadline is None or time.monotonic() < deadline:
            status = await conn.execute(_DECREMENT, product_id)  # autocommit: one statement, one transaction
            if status != "UPDATE 1":
                return  # sold out
            taken += 1
            last = time.monotonic()

    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    seconds = (last - start) if taken else 0.0
    return {"taken": taken, "seconds": round(seconds, 3), "per_s": round(taken / seconds, 1) if seconds else 0.0}


async def _hot_row(first_db_url: str, near_product: int, connections: int, seconds: float,
                   say: Callable[[str], None]) -> dict:
    """The ceiling on the server (and in the bucket) that holds ``near_product``."""
    admin = await asyncpg.connect(first_db_url)
    try:
        row = await admin.fetchrow("SELECT shards FROM shard_map ORDER BY version DESC LIMIT 1")
    finally:
        await admin.close()
    urls = json.loads(row["shards"]) if isinstance(row["shards"], str) else list(row["shards"])
    for url in urls:
        conn = await asyncpg.connect(url)
        try:
            bucket = await conn.fetchval("SELECT bucket FROM products WHERE id = $1 "
                                         "AND bucket IN (SELECT bucket FROM owned_buckets)", near_product)
            if bucket is None:
                continue
            product_id = await conn.fetchval(
                "INSERT INTO products (id, bucket, name, category, price_cents, available, initial_stock) "
                "VALUES (shop_next_id($1), $1, 'bench hot row', 'bench', 100, $2, $2) RETURNING id", bucket, 10**9)
            try:
                say(f"hot row: probing for {PROBE_S:.0f} s with {connections} connections ...")
                probe = await _decrement_loop(url, product_id, connections, PROBE_S)
                stock = max(1000, round(probe["per_s"] * seconds))
                await conn.execute("UPDATE products SET available = $2 WHERE id = $1", product_id, stock)
                say(f"hot row: {stock:,} units (probe {probe['per_s']:,.0f}/s), decremented until sold out ...")
                run = await _decrement_loop(url, product_id, connections, None)
                left = await conn.fetchval("SELECT available FROM products WHERE id = $1", product_id)
            finally:
                await conn.execute("DELETE FROM products WHERE id = $1", product_id)
            return {"hot_row_stock": stock, "hot_row_taken": run["taken"], "hot_row_seconds": run["seconds"],
                    "hot_row_ceiling_per_s": run["per_s"], "hot_row_left": left, "hot_row_probe_per_s": probe["per_s"],
                    "hot_row_server": url.rsplit("@", 1)[-1]}
        finally:
            await conn.close()
    raise RuntimeError(f"product {near_product} is on no server of the shard map")


# --- the stacks ---------------------------------------------------------------------------------------

def _round(x: float | None, digits: int = 1) -> float | None:
    return None if x is None else round(x, digits)


def _fresh_stack(settings: LabSettings, shards: int, say: Callable[[str], None],
                 app_env: dict[str, str] | None = None) -> tuple[LabSettings, LabState]:
    stack = settings.model_copy(update={"postgres_shards": shards, "home": experiment_home(settings)})
    shutil.rmtree(stack.state_dir, ignore_errors=True)
    app_env = app_env or {"SHOP_INVENTORY_STRATEGY": STRATEGY}
    say(f"starting a fresh stack: shop, {shards} PostgreSQL server(s), "
        f"{', '.join(f'{k}={v}' for k, v in app_env.items())} ...")
    return stack, up(stack, ["shop"], app_env=app_env)


def _flash_sale(settings: LabSettings, out: Path, seconds: float, say: Callable[[str], None]) -> dict:
    stack, state = _fresh_stack(settings, 2, say, FLASH_ENV)
    try:
        spec = LoadSpec(design="shop", name="bench-flash-sale", generator="k6", rate=FLASH_RATE, duration_s=seconds,
                        seed_count=50, read_weight=0, write_weight=1, max_vus=FLASH_VUS,
                        options={"scenario": "flash-sale", "flash_share": str(FLASH_SHARE), "users": "2000"})
        say(f"flash sale: {spec.rate:.0f} buyers/s for {spec.duration_s:.0f} s, one product, "
            f"{FLASH_SHARE:.0%} as many units ...")
        result = run_load(stack, spec, say=say, out=out / "flash-sale")
        verification = verify(stack, result, say=say)
        figures = measure(part_url(state, "postgres-0"), result.out_dir, result.summary)
        records = read_jsonl(result.out_dir / "acks.jsonl")
        start = load_start_ms(result.summary, records) or 0.0
        accepted = selling(accepted_times_ms(records), start)
        figures["accepted"], figures["accepted_per_s"] = accepted["paid"], accepted["orders_per_s"]
        say(f"hot row: a bare UPDATE loop on the same PostgreSQL server, {HOT_ROW_CONNECTIONS} connections ...")
        ceiling = asyncio.run(_hot_row(part_url(state, "postgres-0"), int(figures["flash_product"]),
                                       HOT_ROW_CONNECTIONS, seconds, say))
    finally:
        down(stack)
    checkout = result.summary["endpoints"].get("/api/v1/checkout", {})
    return {"figures": figures, "ceiling": ceiling, "checks_passed": all(c.passed for c in verification.checks),
            "checkout_p50_ms": _round(checkout.get("p50_ms")), "checkout_p99_ms": _round(checkout.get("p99_ms")),
            "dropped": result.summary.get("dropped_iterations", 0), "cost": result.summary.get("cost_per_op")}


def _checkouts(settings: LabSettings, shards: int, out: Path, seconds: float, say: Callable[[str], None]) -> dict:
    stack, state = _fresh_stack(settings, shards, say)
    try:
        spec = LoadSpec(design="shop", name=f"bench-checkout-{shards}-shards", generator="k6", rate=CHECKOUT_RATE,
                        duration_s=seconds, seed_count=CHECKOUT_SEED, read_weight=0, write_weight=1,
                        max_vus=CHECKOUT_VUS, options={"users": "500"})
        say(f"checkouts, {shards} shard(s): {CHECKOUT_RATE}/s offered for {seconds:.0f} s, "
            f"at most {CHECKOUT_VUS} in flight ...")
        result = run_load(stack, spec, say=say, out=out / f"checkout-{shards}-shards")
        # Every order paid on this fresh stack is the run's, whether or not its buyer still waited.
        paid_at = asyncio.run(paid_order_times(part_url(state, "postgres-0")))
    finally:
        down(stack)
    start = load_start_ms(result.summary, read_jsonl(result.out_dir / "acks.jsonl")) or (paid_at[0] if paid_at else 0)
    sold = selling(paid_at, start)
    e = result.summary["endpoints"].get("/api/v1/checkout", {})
    return {"per_s": sold["orders_per_s"], "paid": sold["paid"], "p50_ms": _round(e.get("p50_ms")),
            "cost": result.summary.get("cost_per_op"),
            "p99_ms": _round(e.get("p99_ms")), "failures": e.get("failures"), "requests": e.get("requests"),
            "dropped": result.summary.get("dropped_iterations", 0), "paid_per_second": sold["paid_per_second"],
            "tables": result.summary.get("tables")}


def _reads(settings: LabSettings, out: Path, seconds: float, say: Callable[[str], None]) -> dict:
    """What one catalog read costs (for ``sdlab estimate shop``), on a fresh two-shard stack."""
    stack, _ = _fresh_stack(settings, 2, say)
    try:
        spec = LoadSpec(design="shop", name="bench-reads", generator="k6", rate=READ_RATE, duration_s=seconds,
                        seed_count=CHECKOUT_SEED, read_weight=1, write_weight=0)
        say(f"reads: {READ_RATE}/s for {seconds:.0f} s, for what one read costs ...")
        result = run_load(stack, spec, say=say, out=out / "reads")
    finally:
        down(stack)
    return {"read_cost": result.summary.get("cost_per_op"), "read_p99_ms": _round(result.summary.get("p99_ms"))}


def bench(settings: LabSettings, options: BenchOptions, say: Callable[[str], None]) -> tuple[Path, dict]:
    out = results_dir("bench-shop", settings.results)
    seconds = float(options.duration_s)
    started = time.monotonic()
    say(f"results: {out}")
    down_if_running(settings, say, "the benchmark starts its own")
    flash = _flash_sale(settings, out, seconds, say)
    f, c = flash["figures"], flash["ceiling"]
    say(f"flash sale: {f['accepted_per_s'] or 0:,.1f} reservations acknowledged/s ({f['orders_per_s'] or 0:,.1f} "
        f"paid orders/s), oversold {f['oversold']}; hot row ceiling {c['hot_row_ceiling_per_s']:,.0f}/s "
        f"({time.monotonic() - started:.0f} s so far)")
    per_shards = {}
    for shards in (1, 2):
        per_shards[shards] = _checkouts(settings, shards, out, seconds, say)
        say(f"checkouts, {shards} shard(s): {per_shards[shards]['per_s'] or 0:,.1f}/s "
            f"({time.monotonic() - started:.0f} s so far)")
    reads = _reads(settings, out, seconds, say)
    orders_per_s = f["accepted_per_s"] or 0.0
    summary = {
        "machine": machine_spec(), "command": invoked_command(), "duration_s": seconds,
        "strategy": STRATEGY,
        "flash_sale_mode": ", ".join(f"{k}={v}" for k, v in FLASH_ENV.items()),
        # Acknowledged reservations (first 201 or 202 of each buyer) per second while selling.
        "flash_sale_orders_per_s": orders_per_s,
        "flash_sale_counts": "reservations acknowledged (202: reserved and placed, payment pending), first to last",
        "flash_sale_paid_per_s": f["orders_per_s"],
        "flash_sale_cost_per_op": flash["cost"],
        "oversold": f["oversold"],
        "flash_sale_stock": f.get("stock"), "flash_sale_sold": f.get("sold"),
        "flash_sale_paid_units": f.get("paid_units"), "flash_sale_arrivals": f["arrivals"],
        "flash_sale_offered": f"{FLASH_RATE:.0f}/s for {seconds:.0f} s, at most {FLASH_VUS} in flight",
        "flash_sale_dropped": flash["dropped"], "flash_sale_sold_out_s": f["sold_out_s"],
        "flash_sale_checkout_p50_ms": flash["checkout_p50_ms"], "flash_sale_checkout_p99_ms": flash["checkout_p99_ms"],
        "flash_sale_sold_out_p99_ms": _round(f["sold_out_p99_ms"]),
        # The shop's invariants after the sale (:mod:`loadtests.shop.checks`), all of them.
        "flash_sale_invariants": "pass" if flash["checks_passed"] else "FAIL",
        **c,
        "hot_row_connections": HOT_ROW_CONNECTIONS,
        "ratio": round(orders_per_s / c["hot_row_ceiling_per_s"], 3) if c["hot_row_ceiling_per_s"] else None,
        "checkout_rate_offered": CHECKOUT_RATE, "checkout_max_in_flight": CHECKOUT_VUS,
        # Flat copies for the printed table (it shows plain values only).
        **{f"checkout_per_s_{n}_shard{'s' if n > 1 else ''}": r["per_s"] for n, r in per_shards.items()},
        **{f"checkout_p99_ms_{n}_shard{'s' if n > 1 else ''}": r["p99_ms"] for n, r in per_shards.items()},
        "checkout_per_s": {str(n): r["per_s"] for n, r in per_shards.items()},
        "checkout_runs": {str(n): r for n, r in per_shards.items()},
        # What one checkout costs (the 2-shard run): statements on every server, core-ms per component.
        "checkout_pg_statements": (per_shards[2].get("cost") or {}).get("pg_statements"),
        "checkout_core_ms": (per_shards[2].get("cost") or {}).get("core_ms_total"),
        **reads,
        # Every PostgreSQL table after the 2-shard checkout run (bytes per row, for storage a year).
        "tables": per_shards[2].get("tables"),
        "bench_seconds": round(time.monotonic() - started),
        "goals": {"ratio": ">= 0.5 with 0 oversold", "oversold": "0"},
    }
    met = summary["ratio"] is not None and summary["ratio"] >= 0.5 and f["oversold"] == 0
    summary["goal"] = "met" if met else "missed"
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return out, summary
