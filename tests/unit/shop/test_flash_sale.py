"""The flash-sale experiment's pure figures, its verdict, the seed's flash_share option, and the saga's
count of reservation tries by where they were answered (the gate's effect)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from loadtests.shop.flash_sale import (
    FLASH_SALE,
    STRATEGIES,
    _charts,
    _flash_sale,
    load_start_ms,
    paid_answers,
    paid_times_ms,
    selling,
    sold_out_answers,
    stock_tries,
)
from loadtests.shop.plugin import flash_stock
from services.lab.errors import LabCommandError
from services.lab.measure.load import LoadSpec
from shop.api import render
from shop.config import ShopSettings
from shop.domain import Line
from shop.saga import CheckoutSaga
from tests.unit.shop.fakes import FakeCatalog, FakeGate, FakeOrders, FakePayments


def test_paid_times_take_each_keys_first_201_from_acks_or_answers():
    records = [
        {"event": "attempted", "user": "a", "key": "k1", "t": 1000},
        {"event": "answer", "key": "k1", "status": 503, "t": 1000, "ms": 40},
        {"event": "answer", "key": "k1", "status": 201, "t": 1100, "ms": 25},  # 1125
        {"event": "acknowledged", "user": "a", "key": "k1", "order_id": "1"},  # no t: older format
        {"event": "answer", "key": "k2", "status": 201, "t": 1200, "ms": 10},  # 1210
        {"event": "acknowledged", "user": "b", "key": "k2", "order_id": "2", "t": 1205},  # earlier: kept
        {"event": "answer", "key": "k2", "status": 201, "t": 1300, "ms": 5},  # a replay: not a second order
        {"event": "answer", "key": "k3", "status": 409, "code": "out_of_stock", "t": 1400, "ms": 3},
    ]
    assert paid_times_ms(records) == [1125.0, 1205.0]
    assert paid_times_ms([]) == []


def test_selling_counts_orders_per_second_from_the_first_to_the_last_paid():
    start = 10_000.0
    paid = [start + 500 + 100 * i for i in range(11)]  # 11 orders from 0.5 s to 1.5 s: 10 intervals in 1 s
    s = selling(list(reversed(paid)), start)
    assert s["paid"] == 11 and s["orders_per_s"] == 10.0 and s["selling_s"] == 1.0
    assert s["first_paid_s"] == 0.5 and s["last_paid_s"] == 1.5
    assert s["paid_per_second"] == [5, 6]  # 0.5-0.9 in second 0, 1.0-1.5 in second 1
    assert sum(s["paid_per_second"]) == 11


def test_selling_with_too_few_orders_has_no_rate():
    assert selling([], 0.0) == {"paid": 0, "first_paid_s": None, "last_paid_s": None, "selling_s": 0.0,
                                "orders_per_s": None, "paid_per_second": []}
    one = selling([2500.0], 0.0)
    assert one["paid"] == 1 and one["orders_per_s"] is None and one["paid_per_second"] == [0, 0, 1]


def test_selling_puts_anything_before_the_start_in_the_first_second():
    assert selling([900.0, 1500.0], 1000.0)["paid_per_second"] == [2]


def test_load_start_is_the_runs_own_else_the_first_attempt():
    records = [{"event": "attempted", "t": 5000}, {"event": "attempted", "t": 4000}, {"event": "answer", "t": 1}]
    assert load_start_ms({"started_at": 3.5}, records) == 3500.0
    assert load_start_ms({}, records) == 4000.0
    assert load_start_ms({}, []) is None


def test_sold_out_answers_are_409_out_of_stock_only():
    records = ([{"event": "answer", "status": 409, "code": "out_of_stock", "ms": float(ms)} for ms in range(1, 101)]
               + [{"event": "answer", "status": 409, "code": "idempotency_key_in_use", "ms": 9999.0},
                  {"event": "answer", "status": 201, "ms": 8888.0}, {"event": "attempted", "t": 1}])
    got = sold_out_answers(records)
    assert got == {"sold_out_answers": 100, "sold_out_p50_ms": 50.0, "sold_out_p99_ms": 99.0}
    assert sold_out_answers([]) == {"sold_out_answers": 0, "sold_out_p50_ms": None, "sold_out_p99_ms": None}


def test_stock_tries_from_the_shops_counters():
    server = {"shop_stock_tries_total{path=gate_refused}": 3000.0, "shop_stock_tries_total{path=database_taken}": 1000.0,
              "shop_stock_tries_total{path=database_refused}": 2.0, "shop_stock_tries_total{path=database_error}": 5.0,
              "shop_checkouts_total{outcome=paid}": 1000.0}
    assert stock_tries(server) == {"gate_refused": 3000, "reached_database": 1007, "database_taken": 1000,
                                   "database_refused": 2, "database_errors": 5}
    assert stock_tries({})["reached_database"] == 0


def test_flash_share_sizes_the_stock_from_the_runs_arrivals():
    spec = LoadSpec(design="shop", generator="k6", rate=200, duration_s=20, options={"flash_share": "0.25"})
    assert flash_stock(spec) == 1000
    assert flash_stock(LoadSpec(design="shop", generator="k6", rate=200, duration_s=8,
                                options={"flash_share": "0.25"})) == 400
    assert flash_stock(LoadSpec(design="shop", options={"flash_stock": "7"})) == 7
    assert flash_stock(LoadSpec(design="shop")) == 100
    with pytest.raises(LabCommandError):
        flash_stock(LoadSpec(design="shop", generator="k6", rate=10, options={"flash_share": "lots"}))
    with pytest.raises(LabCommandError):
        flash_stock(LoadSpec(design="shop", generator="k6", rate=10, options={"flash_share": "2"}))
    with pytest.raises(LabCommandError):
        flash_stock(LoadSpec(design="shop", options={"flash_share": "0.5"}))  # closed loop: no arrivals to size by


def test_the_experiment_runs_one_variant_per_strategy_on_the_same_load():
    assert [v.name for v in FLASH_SALE.variants] == list(STRATEGIES)
    assert [v.app_env for v in FLASH_SALE.variants] == [{"SHOP_INVENTORY_STRATEGY": s} for s in STRATEGIES]
    assert all(not v.load and not v.same_stack for v in FLASH_SALE.variants)
    assert FLASH_SALE.load.open_loop and FLASH_SALE.load.options["scenario"] == "flash-sale"
    assert set(ShopSettings.model_fields["inventory_strategy"].annotation.__args__) == set(STRATEGIES)


def _result(name: str, *, stock=1000, sold=1000, held=0, available=0, paid_units=1000, gate=0, rate=50.0):
    extra = {"found": True, "stock": stock, "sold": sold, "held": held, "available": available,
             "paid_units": paid_units, "paid_orders": paid_units, "paid_acks": paid_units - 3,
             "oversold": max(0, -available, sold + held - stock), "sold_out": sold == stock and held == 0,
             "sold_out_s": 12.5 if sold == stock and held == 0 else None, "orders_per_s": rate, "selling_s": 20.0,
             "arrivals": 3900, "dropped": 100, "sold_out_answers": 2900, "sold_out_p50_ms": 4.0,
             "sold_out_p99_ms": 30.0, "reached_database": 1000 if gate else 3900, "gate_refused": gate,
             "database_taken": 1000, "database_refused": 0 if gate else 2900, "database_errors": 0,
             "paid_per_second": [0, 40, 60, 50]}
    summary = {"offered": "200 req/s open loop", "offered_rps": 200, "spec": {"duration_s": 20},
               "endpoints": {"/api/v1/checkout": {"requests": 4000, "failures": 10, "p50_ms": 20.0, "p99_ms": 900.0}},
               "dropped_iterations": 100}
    timeline = [{"t": 0, "requests": 10, "failures": 0, "p50_ms": 5.0, "p99_ms": 9.0}]
    return SimpleNamespace(variant=SimpleNamespace(name=name), summary=summary, extra=extra,
                           load=SimpleNamespace(timeline=timeline))


def test_the_verdict_passes_a_clean_sell_out_in_every_strategy():
    results = {"conditional-update": _result("conditional-update"), "select-for-update": _result("select-for-update", rate=20.0),
               "redis-gate": _result("redis-gate", gate=2900)}
    outcome = _flash_sale(results)
    assert outcome.passed, [c for c in outcome.checks if not c.passed]
    assert "1,000 units for 4,000 buyers" in outcome.claim and "Oversold: 0 in every strategy" in outcome.claim
    assert "2,900 turned away by the gate" in outcome.claim and "50.0/s paid" in outcome.claim


def test_the_verdict_fails_an_oversell_a_stock_left_and_a_gate_that_did_nothing():
    results = {"conditional-update": _result("conditional-update", sold=1001, paid_units=1001),
               "select-for-update": _result("select-for-update", sold=900, available=100, paid_units=899),
               "redis-gate": _result("redis-gate", gate=0)}
    failed = {c.description for c in _flash_sale(results).checks if not c.passed}
    assert failed == {"conditional-update: 0 oversold (available >= 0, sold + held <= stock)",
                      "conditional-update: it sold out (sold == stock)",
                      "select-for-update: it sold out (sold == stock)",
                      "select-for-update: units sold == units in paid orders",
                      "redis-gate: the gate turned sold-out checkouts away before the database"}
    assert "(NOT 0)" in _flash_sale(results).claim


def test_the_charts_are_written(tmp_path: Path):
    results = {s: _result(s, gate=2900 if s == "redis-gate" else 0) for s in STRATEGIES}
    paths = _charts(tmp_path, results)
    assert [p.name for p in paths] == ["flash-sale-paid.png", "flash-sale-p99.png", "timeline.png"]
    assert all(p.stat().st_size > 0 for p in paths)


# -- the saga counts where each reservation try was answered ----------------------------------------------

def _saga(gate: FakeGate | None, stock: int) -> tuple[CheckoutSaga, int]:
    catalog = FakeCatalog(shards=2)
    saga = CheckoutSaga(ShopSettings(), FakeOrders(shards=catalog.map), catalog.inventory, FakePayments(), gate)
    return saga, catalog.add(3, "Console", 29_900, stock=stock).id


async def _buy(saga: CheckoutSaga, product: int, key: str):
    async def lines():
        return [Line(product, 1)]

    response, _ = await saga.checkout(f"buyer-{key}", key, {"items": [{"product_id": str(product), "quantity": 1}]},
                                      lines, render)
    return response


def _sold_out(responses) -> int:
    return sum(r.status == 409 and r.body["error"]["code"] == "out_of_stock" for r in responses)


async def test_without_a_gate_every_try_reaches_the_database():
    saga, console = _saga(None, stock=2)
    outcomes = [await _buy(saga, console, f"k{i}") for i in range(5)]
    assert _sold_out(outcomes) == 3
    assert saga.stock_tries == {"database_taken": 2, "database_refused": 3}


async def test_the_gate_turns_the_losers_away_before_the_database():
    gate = FakeGate()
    saga, console = _saga(gate, stock=2)
    outcomes = [await _buy(saga, console, f"k{i}") for i in range(5)]
    assert _sold_out(outcomes) == 3
    assert saga.stock_tries == {"database_taken": 2, "gate_refused": 3}


def test_paid_answers_are_the_201s():
    records = [{"event": "answer", "status": 201, "ms": float(ms)} for ms in (10, 20, 30, 40)]
    records += [{"event": "answer", "status": 409, "code": "out_of_stock", "ms": 1.0}, {"event": "answer", "status": 503}]
    assert paid_answers(records) == {"paid_p50_ms": 20.0, "paid_p99_ms": 40.0}
    assert paid_answers([]) == {"paid_p50_ms": None, "paid_p99_ms": None}
