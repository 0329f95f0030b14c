"""The shop's pure logic: product validation, merging checkout lines, request fingerprints, and
how an order looks on the wire."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from services.errors import InvalidInput
from shop.domain import (
    MAX_CATEGORY,
    MAX_NAME,
    MAX_PRICE_CENTS,
    MAX_STOCK,
    Line,
    NewProduct,
    Order,
    OrderItem,
    OrderStatus,
    Product,
    merge_lines,
    request_fingerprint,
)
from shop.sharding import compose_id


def _product(**kw) -> NewProduct:
    return NewProduct(**{"name": "Lamp", "category": "home", "price_cents": 1999, "stock": 5, **kw})


# -- products --------------------------------------------------------------------------------------

def test_a_valid_product_keeps_its_fields():
    p = _product()
    assert (p.name, p.category, p.price_cents, p.stock) == ("Lamp", "home", 1999, 5)
    edge = _product(name="n" * MAX_NAME, category="c" * MAX_CATEGORY, price_cents=MAX_PRICE_CENTS, stock=MAX_STOCK)
    assert edge.stock == MAX_STOCK
    assert _product(price_cents=0, stock=0).price_cents == 0


@pytest.mark.parametrize("fields, code", [
    ({"name": ""}, "invalid_name"),
    ({"name": "   "}, "invalid_name"),
    ({"name": "\t\n"}, "invalid_name"),
    ({"name": "n" * (MAX_NAME + 1)}, "invalid_name"),
    ({"name": "La\x00mp"}, "invalid_name"),
    ({"category": " "}, "invalid_category"),
    ({"category": "c" * (MAX_CATEGORY + 1)}, "invalid_category"),
    ({"category": "ho\x00me"}, "invalid_name"),  # the NUL check names both fields in one code
    ({"price_cents": -1}, "invalid_price"),
    ({"price_cents": MAX_PRICE_CENTS + 1}, "invalid_price"),
    ({"stock": -1}, "invalid_stock"),
    ({"stock": MAX_STOCK + 1}, "invalid_stock"),
])
def test_an_invalid_product_is_refused_with_its_reason(fields, code):
    with pytest.raises(InvalidInput) as err:
        _product(**fields)
    assert err.value.code == code
    assert err.value.message


def test_a_product_page_shows_its_id_as_a_string_and_its_live_stock():
    pid = compose_id(10, 3, 1)
    assert Product(pid, "Lamp", "home", 1999, 4, reserved=1, sold=2).public() == {
        "id": str(pid), "name": "Lamp", "category": "home", "price_cents": 1999, "stock": 4}


# -- checkout lines --------------------------------------------------------------------------------

def test_merge_lines_adds_duplicates_and_sorts_by_product():
    merged = merge_lines([Line(30, 1), Line(10, 2), Line(30, 4), Line(20, 1)], max_quantity=10)
    assert merged == (Line(10, 2), Line(20, 1), Line(30, 5))


def test_merge_lines_allows_exactly_the_maximum_after_merging():
    assert merge_lines([Line(1, 60), Line(1, 40)], max_quantity=100) == (Line(1, 100),)


@pytest.mark.parametrize("lines", [[Line(1, 0)], [Line(1, -2)], [Line(1, 3), Line(2, 0)]])
def test_merge_lines_refuses_a_quantity_under_one(lines):
    with pytest.raises(InvalidInput) as err:
        merge_lines(lines, max_quantity=100)
    assert err.value.code == "invalid_quantity"


def test_merge_lines_refuses_a_line_over_the_maximum():
    with pytest.raises(InvalidInput, match="1-100") as err:
        merge_lines([Line(1, 101)], max_quantity=100)
    assert err.value.code == "invalid_quantity"


def test_merge_lines_bounds_each_line_not_the_sum():
    """The API's schema bounds each line; a sum over repeated lines is no rule a schema can state."""
    assert merge_lines([Line(7, 60), Line(7, 41)], max_quantity=100) == (Line(7, 101),)


def test_merge_lines_of_nothing_is_nothing():
    assert merge_lines([], max_quantity=5) == ()


# -- request fingerprints (the key itself: tests/unit/test_idempotency.py) -------------------------

def test_the_fingerprint_ignores_key_order_at_every_level():
    a = {"items": [{"product_id": "1", "quantity": 2}], "note": {"x": 1, "y": 2}}
    b = {"note": {"y": 2, "x": 1}, "items": [{"quantity": 2, "product_id": "1"}]}
    assert request_fingerprint(a) == request_fingerprint(b)
    assert len(request_fingerprint(a)) == 64 and int(request_fingerprint(a), 16) >= 0


def test_the_fingerprint_tells_different_requests_apart():
    base = request_fingerprint({"items": [{"product_id": "1", "quantity": 2}]})
    assert request_fingerprint({"items": [{"product_id": "1", "quantity": 3}]}) != base
    assert request_fingerprint({"items": [{"product_id": "2", "quantity": 2}]}) != base
    # List order is part of the request (the items are merged later, not here).
    assert (request_fingerprint({"items": [1, 2]}) != request_fingerprint({"items": [2, 1]}))
    assert request_fingerprint({}) != base


# -- orders -----------------------------------------------------------------------------------------

def test_an_order_shows_ids_as_strings_and_its_total():
    order_id, p1, p2 = compose_id(1000, 9, 1), compose_id(900, 4, 2), compose_id(901, 5, 3)
    created = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    order = Order(order_id, "alice", OrderStatus.PAID, (OrderItem(p1, 2, 1999), OrderItem(p2, 1, 500)), created, "k1")
    assert order.total_cents == 2 * 1999 + 500
    assert order.public() == {
        "order_id": str(order_id), "status": "paid", "total_cents": 4498,
        "items": [{"product_id": str(p1), "quantity": 2, "price_cents": 1999},
                  {"product_id": str(p2), "quantity": 1, "price_cents": 500}],
        "created_at": "2026-03-01T12:00:00+00:00"}


def test_a_failed_order_says_why_and_an_empty_one_costs_nothing():
    created = datetime(2026, 3, 1, tzinfo=timezone.utc)
    failed = Order(5, "bob", OrderStatus.FAILED, (OrderItem(7, 1, 300),), created, "k", "payment_declined")
    assert failed.public()["failure"] == "payment_declined" and failed.public()["status"] == "failed"
    assert "failure" not in Order(6, "bob", OrderStatus.PENDING, (), created, "k").public()
    assert Order(6, "bob", OrderStatus.PENDING, (), created, "k").total_cents == 0
