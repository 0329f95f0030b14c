"""The shop's experiments: each an interview trade-off, measured. Run: ``sdlab experiment NAME``.

Every run ends with the shop's invariants (:mod:`loadtests.shop.checks`), whatever the experiment.
"""

from __future__ import annotations

from services.lab.capacity import capacity_experiment
from services.lab.experiment import Check, Experiment, Outcome, Variant, VariantResult
from services.lab.load import LoadSpec

LISTING, PRODUCT, CHECKOUT = "/api/v1/products", "/api/v1/products/{id}", "/api/v1/checkout"


def endpoint(r: VariantResult, name: str) -> dict:
    return r.summary["endpoints"].get(name, {"requests": 0, "failures": 0, "p99_ms": 0.0, "p50_ms": 0.0, "rps": 0.0})


def figures(r: VariantResult) -> dict:
    return r.summary.get("loss") or {}


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f} ms"


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

CAPACITY = capacity_experiment(
    design="shop",
    load=LoadSpec(design="shop", generator="k6", seed_count=500, read_weight=9, write_weight=1),
    question="Where is the knee of the shop's open-loop curve (browsing with 1 in 10 requests a checkout)?",
    slo_p99_ms=100.0,
    rates=(50, 100, 200, 300, 400, 600, 800),
)

EXPERIMENTS = [SAGA_FAILURE, CAPACITY]
