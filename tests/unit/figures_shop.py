"""docs/shop.md's figures and where in their evidence each one is read (see tests/unit/doc_figures.py)."""

from tests.unit.doc_figures import Figure

DOC = "shop.md"
COND, SFU, GATE = 'variants["conditional-update"]', 'variants["select-for-update"]', 'variants["redis-gate"]'
PAUSED = 'variants["postgres-1 paused"]'
RETRIES = 'variants["hostile retries"]'
SAGA = 'variants["payments killed"]'
OUTAGE_FACTS = 'facts["final answers of checkouts needing the paused shard"]'
ONE, TWO = "checkout_runs[\"1\"]", "checkout_runs[\"2\"]"
COST = "shop/cost/{}"


def each(path: str) -> tuple[str, str, str]:
    """One path for each of the three inventory strategies, in the doc's order."""
    return tuple(f"{variant}.{path}" for variant in (COND, SFU, GATE))  # type: ignore[return-value]


def step(rate: int, again: bool = False) -> str:
    return f'variants["{rate} req-s{" again" if again else ""}"]'


def slow(name: str, nth: int) -> str:
    return f'facts["{name}"]#{nth}'


FIGURES = [
    # S1: flash sale by inventory strategy
    Figure(DOC, "S1", "conditional `UPDATE` **100.3**, `SELECT … FOR UPDATE` **100.4**, Redis gate then `UPDATE` **100.5**",
           each("extra.orders_per_s")),
    Figure(DOC, "S1", "sold out after 10.2 / 10.1 / 10.2 s", each("extra.sold_out_s")),
    Figure(DOC, "S1", "checkout p99 50 / 45 / 44 ms", each("p99_ms")),
    Figure(DOC, "S1", "p99 7 / 10 / 4 ms", each("extra.sold_out_p99_ms")),
    Figure(DOC, "S1", "**3.6 / 8.1 / 1.3 statements** and 3.5 / 4.4 / 3.3 core-ms per checkout", (
        *each("cost_per_op.pg_statements"), *each("cost_per_op.core_ms_total"))),
    Figure(DOC, "S1", "reservation tries reaching the database 4,001 / 4,001 / **1,000** (the gate turned 2,998 away)", (
        *each("extra.reached_database"), f"{GATE}.extra.gate_refused")),
    Figure(DOC, "S1", "**0 oversold** in every strategy", (f"{COND}.extra.oversold",)),
    Figure(DOC, "S1", "takes 8.1 statements per checkout against 3.6 for the\n  conditional `UPDATE` and 1.3 behind", (
        f"{SFU}.cost_per_op.pg_statements", f"{COND}.cost_per_op.pg_statements", f"{GATE}.cost_per_op.pg_statements"),
        "shop/flash-sale"),
    Figure(DOC, "S1", "(1,000 tries reached it instead of ~4,000)", (f"{GATE}.extra.reached_database",
                                                                     f"{SFU}.extra.reached_database"), "shop/flash-sale"),
    # S2: shards on a 0.05-core budget each
    Figure(DOC, "S2", "**18 / 42 / 81** checkouts/s", (
        "scaling.points[0].throughput", "scaling.points[1].throughput", "scaling.points[2].throughput")),
    Figure(DOC, "S2", "efficiency **1.16 at N=2, 1.13 at N=4**", (
        'scaling.efficiency["2"]', "scaling.points[1].n", 'scaling.efficiency["4"]', "scaling.points[2].n")),
    Figure(DOC, "S2", "throttled in 100% of periods", ("scaling.points[2].bottleneck_throttled_pct",)),
    Figure(DOC, "S2", "the machine 19 / 26 / 55% busy", (
        "scaling.points[0].machine_cpu_pct", "scaling.points[1].machine_cpu_pct", "scaling.points[2].machine_cpu_pct")),
    Figure(DOC, "S2", "p99 ~4 s", ('variants["2 shards"].p99_ms',), scale=1e-3),
    Figure(DOC, "S2", "0 errors", ('variants["4 shards"].failures',)),
    Figure(DOC, "S2", "Lifting each shard to 0.3 core: **149/s**", (
        'variants["4 shards, budget lifted"].budgets["postgres-1"]', 'variants["4 shards, budget lifted"].achieved_rps')),
    Figure(DOC, "S2", "the wall moves to the machine (100% busy)", ('facts["budget lifted"]#1',)),
    Figure(DOC, "S2", "carry\n  18, 42 and 81 checkouts/s", (
        "scaling.points[0].throughput", "scaling.points[1].throughput", "scaling.points[2].throughput"),
        "shop/shard-scaling"),
    # S3: live reshard
    Figure(DOC, "S3", "**85 of 256 buckets** (33%) and 701 rows moved in **2.9 s**", (
        "claim#0", "claim#1", "claim#2", "claim#3", "claim#5")),
    Figure(DOC, "S3", "**p50 4 ms, max 13 ms**", ('facts["write block p50 / max"]#0', 'facts["write block p50 / max"]#1')),
    Figure(DOC, "S3", "**0 of 1,190 checkouts failed**", (
        'variants["2 to 3 shards"].endpoints["/api/v1/checkout"].failures',
        'variants["2 to 3 shards"].endpoints["/api/v1/checkout"].requests')),
    Figure(DOC, "S3", "1,190 orders after it, 0 acknowledged lost, 0 duplicated", (
        'variants["2 to 3 shards"].loss.orders', 'variants["2 to 3 shards"].loss.unreadable_acked_count',
        'variants["2 to 3 shards"].loss.duplicate_key_orders')),
    # S4: a shard stopped
    Figure(DOC, "S4", "**60 of 60** succeeded", ("checks[1].detail#0", "checks[1].detail#1")),
    Figure(DOC, "S4", "the 147 that needed the stopped shard", (
        'facts["checkouts before / during (other shard only) / during (paused shard) / after"]#5',)),
    Figure(DOC, "S4", "`shard_unavailable` (78)", (f'{OUTAGE_FACTS}["503 shard_unavailable"]',)),
    Figure(DOC, "S4", "after the resume (69)", (f'{OUTAGE_FACTS}["201"]',)),
    Figure(DOC, "S4", "**113 of 113** listings partial, p99 289 ms", (
        'facts["listings during the pause"]#1', 'facts["listings during the pause"]#0',
        'facts["listings during the pause"]#3')),
    Figure(DOC, "S4", "back to normal within 1 s of the resume", ('facts["recovery after the resume"]#0',)),
    # S5: hostile retries
    Figure(DOC, "S5", "each of 600 checkouts", (f"{RETRIES}.loss.acknowledged",)),
    Figure(DOC, "S5", "2,721 requests: 912 concurrent copies, 601 answers dropped, 1,520 answered", (
        f"{RETRIES}.requests", "checks[0].detail#0", "checks[0].detail#1", "checks[0].detail#2")),
    Figure(DOC, "S5", "600 replayed: **600 orders, 600 charges, 0 double orders, 0 double charges**", (
        "checks[0].detail#3", f"{RETRIES}.loss.orders", f"{RETRIES}.loss.charges_captured",
        f"{RETRIES}.loss.duplicate_key_orders", f"{RETRIES}.loss.double_charged")),
    # S6: the payment provider declining and killed
    Figure(DOC, "S6", "308 orders: **180 paid with 180 charges** (0 double, 0 paid without a charge), 128 failed", (
        f"{SAGA}.loss.orders", f"{SAGA}.loss.paid_orders", f"{SAGA}.loss.charges_captured", f"{SAGA}.loss.double_charged",
        f"{SAGA}.loss.paid_without_charge", f"{SAGA}.loss.failed_orders")),
    Figure(DOC, "S6", "**0 pending**", (f"{SAGA}.loss.pending_orders",)),
    # S7: scatter-gather
    Figure(DOC, "S7", "healthy p99 **9 / 6 / 6 ms** (p50 3 / 3 / 3)", (
        slow("1 shard", 2), slow("2 shards", 2), slow("4 shards", 2),
        slow("1 shard", 1), slow("2 shards", 1), slow("4 shards", 1))),
    Figure(DOC, "S7", "no deadline: p99 **405 ms**, 0 partial", (
        slow("one slow shard without deadline", 2), slow("one slow shard without deadline", 4))),
    Figure(DOC, "S7", "p99 **256 ms**, 189 of 616 pages (30.7%) partial", (
        slow("one slow shard with deadline", 2), slow("one slow shard with deadline", 4),
        slow("one slow shard with deadline", 0), slow("one slow shard with deadline", 5))),
    # S8: the bench
    Figure(DOC, "S8", "**441.3** acknowledged reservations/s (199 paid/s", ("flash_sale_orders_per_s", "flash_sale_paid_per_s")),
    Figure(DOC, "S8", "**0 oversold**; a bare asyncpg", ("oversold",)),
    Figure(DOC, "S8", "32 connections: **2,937/s**: ratio **0.15, goal ≥ 0.5", (
        "hot_row_connections", "hot_row_ceiling_per_s", "ratio", "goals.ratio#0")),
    Figure(DOC, "S8", "A reservation costs 4.3 core-ms and 3.8 statements", (
        "flash_sale_cost_per_op.core_ms_total", "flash_sale_cost_per_op.pg_statements")),
    Figure(DOC, "S8", "Checkouts of random products, 800/s offered: **260/s", ("checkout_rate_offered", "checkout_per_s_1_shard")),
    Figure(DOC, "S8", "shard, 249/s on", ("checkout_per_s_2_shards",)),
    Figure(DOC, "S8", "(p99 599 / 575 ms)", ("checkout_p99_ms_1_shard", "checkout_p99_ms_2_shards")),
    Figure(DOC, "S8", "**5.2 statements and 6.7-7.0 core-ms** each", (
        "checkout_pg_statements", f"{ONE}.cost.core_ms_total", f"{TWO}.cost.core_ms_total")),
    Figure(DOC, "S8", "(PostgreSQL 1.3, the shop's instances 4.3-4.5, the stand-in 0.6)", (
        f'{ONE}.cost.core_ms["postgres-0"]',
        f'{ONE}.cost.core_ms["shop-1"] + {ONE}.cost.core_ms["shop-2"]',
        f'{TWO}.cost.core_ms["shop-1"] + {TWO}.cost.core_ms["shop-2"]',
        f'{ONE}.cost.core_ms["shop-payments-1"]')),
    Figure(DOC, "S8", "~2,900 bare one-row decrements/s", ("hot_row_ceiling_per_s",), "shop/bench"),
    Figure(DOC, "S8", "~7 [core-ms](glossary.md#core-ms) here (1.4 of them in PostgreSQL)", (
        f"{ONE}.cost.core_ms_total", f'{TWO}.cost.core_ms["postgres-0"] + {TWO}.cost.core_ms["postgres-1"]'),
        "shop/bench"),
    Figure(DOC, "S8", "~2,900 bare decrements/s", ("hot_row_ceiling_per_s",), "shop/bench"),
    Figure(DOC, "S8", "costs ~4.3 core-ms of Python and SQL", ("flash_sale_cost_per_op.core_ms_total",), "shop/bench"),
    Figure(DOC, "S8", "near 440 reservations/s", ("flash_sale_orders_per_s",), "shop/bench"),
    Figure(DOC, "S8", "15% of the row's ceiling", ("ratio",), "shop/bench", scale=100),
    Figure(DOC, "S8", "PostgreSQL ~1.3 core-ms and the rest of the stack ~6", (
        f'{ONE}.cost.core_ms["postgres-0"]', f'{TWO}.cost.core_ms_total - {TWO}.cost.core_ms["postgres-0"]'
        f' - {TWO}.cost.core_ms["postgres-1"]'), "shop/bench"),
    Figure(DOC, "S8", "5.2 in the bench at its ceiling", ("checkout_pg_statements",), "shop/bench"),
    Figure(DOC, "S8", "cost 4.5 of their 7.04 core-ms", (
        f'{TWO}.cost.core_ms["shop-1"] + {TWO}.cost.core_ms["shop-2"]', "checkout_core_ms"), "shop/bench"),
    Figure(DOC, "S8", "at 1.353 core-ms each", (f'{TWO}.cost.core_ms["postgres-0"] + {TWO}.cost.core_ms["postgres-1"]',),
           "shop/bench"),
    # S9: capacity
    Figure(DOC, "S9", "**400 req/s** (p50 2.8 ms, p99 58 ms, 0 errors of 3,990", (
        'facts["knee (req/s)"]', f"{step(400)}.p50_ms", f"{step(400)}.p99_ms",
        f"{step(400)}.failures", f"{step(400)}.requests")),
    Figure(DOC, "S9", "300 req/s: p99 48 ms", (f"{step(300)}.offered_rps", f"{step(300)}.p99_ms")),
    Figure(DOC, "S9", "600 req/s: p99 1,046 and 1,611 ms with 503 and 466 achieved", (
        f"{step(600)}.offered_rps", f"{step(600)}.p99_ms", f"{step(600, True)}.p99_ms",
        f"{step(600)}.achieved_rps", f"{step(600, True)}.achieved_rps")),
    Figure(DOC, "S9", "800 req/s:", (f"{step(800)}.offered_rps",)),
    Figure(DOC, "S9", "p99 3.7 and 3.5 s", (f"{step(800)}.p99_ms", f"{step(800, True)}.p99_ms"), scale=1e-3),
    Figure(DOC, "S9", "the generator 25%", (f"{step(600)}.generator_cpu_avg",)),
    Figure(DOC, "S9", "a request cost 2.9 core-ms and 1.8 statements", (
        f"{step(400)}.cost_per_op.core_ms_total", f"{step(400)}.cost_per_op.pg_statements")),
    # S10: failover
    Figure(DOC, "S10", "**RPO: 0 of 1,346** acknowledged orders lost with async and **0 of 1,379** with sync", (
        "facts.async#0", "facts.async#1", "facts.sync#0", "facts.sync#1")),
    Figure(DOC, "S10", "20.4 s** (async) and **19.2 s** (sync)", ("variants.async.extra.rto_s", "variants.sync.extra.rto_s")),
    Figure(DOC, "S10", "**139 of 139** and **133 of 133**", (
        "variants.async.extra.other_shard_during.ok", "variants.async.extra.other_shard_during.checkouts",
        "variants.sync.extra.other_shard_during.ok", "variants.sync.extra.other_shard_during.checkouts")),
    Figure(DOC, "S10", "p50 **30 → 31 ms**, p99 **41 → 45 ms**", (
        "variants.async.extra.steady_p50_ms", "variants.sync.extra.steady_p50_ms",
        "variants.async.extra.steady_p99_ms", "variants.sync.extra.steady_p99_ms")),
    Figure(DOC, "S10", "kill at 18 s", ("variants.async.extra.killed_at_s",)),
    Figure(DOC, "S10", "(+0.9 ms p50 per checkout here)", (
        "variants.sync.extra.steady_p50_ms - variants.async.extra.steady_p50_ms",), "shop/failover"),
    # C1-C4: one checkout before and after the lean path
    Figure(DOC, "C1", "| **58.5**;", ("cost_per_op.pg_statements",), COST.format("before-50"),
           where="| PostgreSQL statements, every server"),
    Figure(DOC, "C2", "; 58.8 |", ("cost_per_op.pg_statements",), COST.format("before-200"),
           where="| PostgreSQL statements, every server"),
    Figure(DOC, "C3", "| **6.0**;", ("cost_per_op.pg_statements",), COST.format("after-50"),
           where="| PostgreSQL statements, every server"),
    Figure(DOC, "C4", "**5.2** |", ("cost_per_op.pg_statements",), COST.format("after-200"),
           where="| PostgreSQL statements, every server"),
    Figure(DOC, "C1", "| 10.1;", ("cost_per_op.core_ms_total",), COST.format("before-50"),
           where="| core-ms, every process"),
    Figure(DOC, "C2", "**12.7** |", ("cost_per_op.core_ms_total",), COST.format("before-200"), where="| core-ms, every process"),
    Figure(DOC, "C3", "| 7.0;", ("cost_per_op.core_ms_total",), COST.format("after-50"), where="| core-ms, every process"),
    Figure(DOC, "C4", "**6.5** |", ("cost_per_op.core_ms_total",), COST.format("after-200"), where="| core-ms, every process"),
    Figure(DOC, "C2", "| 7.0 |", ('cost_per_op.core_ms["shop-1"] + cost_per_op.core_ms["shop-2"]',),
           COST.format("before-200"), where="| of which the two API instances"),
    Figure(DOC, "C4", "| 3.3 |", ('cost_per_op.core_ms["shop-1"] + cost_per_op.core_ms["shop-2"]',),
           COST.format("after-200"), where="| of which the two API instances"),
    Figure(DOC, "C2", "| 2.9 |", ('cost_per_op.core_ms["postgres-0"] + cost_per_op.core_ms["postgres-1"]',),
           COST.format("before-200"), where="| of which PostgreSQL (200/s)"),
    Figure(DOC, "C4", "| 1.6 |", ('cost_per_op.core_ms["postgres-0"] + cost_per_op.core_ms["postgres-1"]',),
           COST.format("after-200"), where="| of which PostgreSQL (200/s)"),
    Figure(DOC, "C2", "| 1,206 / 2,518 ms (saturated: 4,400 of", ("p50_ms", "p99_ms", "requests - failures"),
           COST.format("before-200"),
        where="| checkout [p50 / p99]"),
    Figure(DOC, "C4", "**35 / 109 ms** (5,981 of", ("p50_ms", "p99_ms", "requests"),
           COST.format("after-200"), where="| checkout [p50 / p99]"),
    Figure(DOC, "C2", "| 139, 0.04 |", ("cost_per_op.idle.pg_statements_per_s", "cost_per_op.idle.cores"),
           COST.format("before-200"), where="| the stack at rest: statements/s, cores"),
    Figure(DOC, "C4", "| **0**, 0.02 |", ("cost_per_op.idle.pg_statements_per_s", "cost_per_op.idle.cores"),
           COST.format("after-200"), where="| the stack at rest: statements/s, cores"),
    Figure(DOC, "C3", "(6.0 at 50/s", ("cost_per_op.pg_statements", "offered_rps"), COST.format("after-50"),
           where="(6.0 at 50/s, 5.2 at 200/s"),
    Figure(DOC, "C4", "5.2 at 200/s", ("cost_per_op.pg_statements", "offered_rps"), COST.format("after-200"),
           where="(6.0 at 50/s, 5.2 at 200/s"),
]
