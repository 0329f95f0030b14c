"""``shop.saga-failure``: payments declines 20% and is killed for a while.

When the remote step of a saga fails or vanishes, every order must end paid and charged, or
failed with its stock back: no double charge, nothing left pending.
"""

from __future__ import annotations

from loadtests.shop.analysis import CHECKOUT_ROUTE, figures
from services.lab.analysis import endpoint, ms
from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.load import LoadSpec


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
    return Outcome(checks, claim, {"checkout p99": ms(endpoint(r, CHECKOUT_ROUTE)["p99_ms"])})


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
