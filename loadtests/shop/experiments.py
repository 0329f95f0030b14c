"""The shop's experiments: each an interview trade-off, measured. Run: ``sdlab experiment NAME``.

Every run ends with the shop's invariants (:mod:`loadtests.shop.checks`), whatever the experiment.
"""

from __future__ import annotations

import json

from services.lab.analysis import endpoint, ms
from services.lab.capacity import capacity_experiment
from services.lab.experiment import Check, Experiment, Outcome, Variant, VariantResult
from services.lab.load import LoadSpec

LISTING, PRODUCT, CHECKOUT = "/api/v1/products", "/api/v1/products/{id}", "/api/v1/checkout"


def figures(r: VariantResult) -> dict:
    return r.summary.get("loss") or {}


# --- saga failure: payments declines and dies ------------------------------------------------

def _saga_failure(results: dict[str, VariantResult]) -> Outcome:
    r = results["payments killed"]
    f = figures(r)
    checks = [
        Check("the fault schedule ran", not r.summary.get("fault_errors") and len(r.summary.get("faults", [])) == 2),
        Check("some checkouts were declined (the 20% decline rate)", f.get("failed_orders", 0) > 0,
              f"{f.get('failed_orders', 0)} failed orders"),
        Check("checkouts were paid before and after the outage", f.get("paid_orders", 0) > 0,
              f"{f.get('paid_orders', 0)} paid"),
    ]
    claim = (f"With payments declining 20% and killed for a third of the run, {f.get('orders', 0):,} orders ended "
             f"{f.get('paid_orders', 0):,} paid and {f.get('failed_orders', 0):,} failed; "
             f"{f.get('charges_captured', 0):,} charges captured for {f.get('paid_orders', 0):,} paid orders "
             f"(double {f.get('double_charged', 0)}), {f.get('pending_orders', 0)} left pending, every failed "
             f"order's stock back on the shelf ({len(f.get('unconserved_products', []))} products off).")
    return Outcome(checks, claim, {"checkout p99": ms(endpoint(r, CHECKOUT)["p99_ms"])})


SAGA_FAILURE = Experiment(
    name="shop.saga-failure",
    title="payments declines 20% and is killed for a while",
    question="When the remote step of a saga fails or vanishes, does every order end paid-and-charged or "
             "failed-with-stock-back, with no double charge and nothing left pending?",
    load=LoadSpec(design="shop", generator="k6", rate=30, duration_s=20, seed_count=100, read_weight=1,
                  write_weight=1, faults="at 30% kill shop-payments-1; at 60% restart shop-payments-1"),
    variants=[Variant("payments killed", app_env={"SHOP_PAYMENTS_DECLINE_RATE": "0.2"})],
    evaluate=_saga_failure,
    columns=[("paid", lambda r: str(figures(r).get("paid_orders", "-"))),
             ("failed", lambda r: str(figures(r).get("failed_orders", "-")))],
)

# --- live reshard: 2 -> 3 servers under load ----------------------------------------------------

def reshard_figures(r: VariantResult) -> dict:
    path = r.load.out_dir / "reshard.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _reshard(results: dict[str, VariantResult]) -> Outcome:
    r = results["2 to 3 shards"]
    f, m = figures(r), reshard_figures(r)
    c = endpoint(r, CHECKOUT)
    checks = [
        Check("the reshard ran during the load", bool(m) and not r.summary.get("fault_errors"),
              str(r.summary.get("fault_errors") or "")),
        Check("about a third of the buckets moved (1/(N+1) for one more server)",
              bool(m) and abs(m.get("share_moved", 0) - 1 / 3) < 0.02, f"{m.get('buckets_moved')} of {m.get('buckets')}"),
        Check("every moved bucket verified (row counts and checksums)", bool(m.get("verified"))),
        Check("checkouts kept succeeding through the move", c["requests"] > 0 and c["failures"] <= 0.01 * c["requests"],
              f"{c['failures']} of {c['requests']} failed"),
    ]
    claim = (f"Moving {m.get('buckets_moved', 0)} of {m.get('buckets', 0)} buckets ({m.get('share_moved', 0):.0%}) and "
             f"{m.get('rows_moved', 0):,} rows onto a third PostgreSQL server under {r.summary['offered']} took "
             f"{m.get('seconds', 0):.1f} s; each bucket's writes were blocked p50 {m.get('block_ms_p50', 0):.0f} ms, "
             f"max {m.get('block_ms_max', 0):.0f} ms; {c['failures']} of {c['requests']:,} checkouts failed; "
             f"{f.get('orders', 0):,} orders after it, {f.get('unreadable_acked_count', 0)} acknowledged ones lost, "
             f"{f.get('duplicate_key_orders', 0)} duplicated.")
    return Outcome(checks, claim, {"buckets moved": f"{m.get('buckets_moved')} of {m.get('buckets')}",
                                   "write block p50 / max": f"{m.get('block_ms_p50', 0):.0f} / "
                                                            f"{m.get('block_ms_max', 0):.0f} ms",
                                   "checkout p99": ms(c["p99_ms"])})


RESHARD = Experiment(
    name="shop.reshard",
    title="live reshard from 2 to 3 PostgreSQL servers under load",
    question="Can the shop add a database server while it sells, and what does each moved bucket cost its writers?",
    load=LoadSpec(design="shop", generator="k6", rate=60, duration_s=40, seed_count=1000, read_weight=1,
                  write_weight=1, faults="at 25% reshard 3"),
    variants=[Variant("2 to 3 shards")],
    evaluate=_reshard,
    columns=[("buckets moved", lambda r: str(reshard_figures(r).get("buckets_moved", "-"))),
             ("block max", lambda r: ms(reshard_figures(r).get("block_ms_max")))],
)

CAPACITY = capacity_experiment(
    design="shop",
    load=LoadSpec(design="shop", generator="k6", seed_count=500, read_weight=9, write_weight=1),
    question="Where is the knee of the shop's open-loop curve (browsing with 1 in 10 requests a checkout)?",
    slo_p99_ms=100.0,
    rates=(50, 100, 200, 300, 400, 600, 800, 1000, 1200, 1600, 2000),
)

from loadtests.shop.flash_sale import FLASH_SALE  # noqa: E402  (the flash sale lives in its own module)
from loadtests.shop.idempotency import IDEMPOTENCY  # noqa: E402  (each in its own module, as the flash sale)
from loadtests.shop.outage import SHARD_OUTAGE  # noqa: E402
from loadtests.shop.scaling import SHARD_SCALING  # noqa: E402
from loadtests.shop.scatter_gather import SCATTER_GATHER  # noqa: E402

EXPERIMENTS = [SAGA_FAILURE, RESHARD, CAPACITY, FLASH_SALE, SHARD_OUTAGE, IDEMPOTENCY, SCATTER_GATHER, SHARD_SCALING]
