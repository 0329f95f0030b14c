"""The checkout saga with in-memory fakes: every path a checkout can take (paid, refused,
compensated, left pending and resumed, replayed), the sweeper's recovery, and the redis-gate.

Stock is conserved throughout: for every product, initial = available + held + sold.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from services.errors import InvalidInput, Unavailable
from shop.api import render
from shop.config import ShopSettings
from shop.consumers import SoldMarker, Sweeper
from shop.domain import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    Line,
    NewProduct,
    Order,
    OrderItem,
    OrderStatus,
    OutOfStock,
    PaymentDeclined,
    PaymentNotTaken,
    StoredResponse,
    UnknownProduct,
    request_fingerprint,
)
from shop.ports import CacheUnavailable, Charge, PaymentsUnavailable, ShardUnavailable
from shop.saga import CheckoutSaga, payment_key
from tests.unit.shop.fakes import (
    Clock,
    FakeCarts,
    FakeCatalog,
    FakeGate,
    FakeInventory,
    FakeOrders,
    FakePayments,
)

USER = "alice"
LEASE_S = 10
TTL_S = 60


@dataclass
class Shop:
    clock: Clock
    catalog: FakeCatalog
    inventory: FakeInventory
    orders: FakeOrders
    payments: FakePayments
    gate: FakeGate | None
    saga: CheckoutSaga
    settings: ShopSettings
    lamp: int
    mug: int

    def order_id(self, key: str) -> int:
        return self.orders.keys[(USER, key)].order_id

    def conserved(self) -> None:
        for pid, stock in self.inventory.products.items():
            assert stock.initial == stock.available + self.inventory.held(pid) + self.inventory.sold(pid), pid

    def later(self, seconds: float = TTL_S * 2):
        """A time past every lease and reservation made so far (the sweeper's "now")."""
        return self.clock.now + timedelta(seconds=seconds)


def _shop(payments: FakePayments | None = None, gate: FakeGate | None = None, clock: Clock | None = None,
          **overrides) -> Shop:
    clock = clock or Clock()
    catalog = FakeCatalog(shards=2, clock=clock)
    orders = FakeOrders(clock, catalog.map)
    payments = payments or FakePayments()
    settings = ShopSettings(**{"idempotency_lease_s": LEASE_S, "reservation_ttl_s": TTL_S, **overrides})
    saga = CheckoutSaga(settings, orders, catalog.inventory, payments, gate, clock)
    lamp = catalog.add(3, "Lamp", 1999, stock=5).id
    mug = catalog.add(200, "Mug", 500, stock=2).id
    assert catalog.map.shard_of_id(lamp) != catalog.map.shard_of_id(mug)  # the lines live on two shards
    return Shop(clock, catalog, catalog.inventory, orders, payments, gate, saga, settings, lamp, mug)


def _lines(*lines: Line):
    async def chosen() -> list[Line]:
        return list(lines)

    return chosen


def _never():
    async def chosen() -> list[Line]:
        raise AssertionError("the lines were asked for although the checkout should not need them")

    return chosen


def _body(*lines: Line) -> dict:
    return {"items": [{"product_id": str(line.product_id), "quantity": line.quantity} for line in lines]}


class Rendered:
    """The API's rendering, remembering the outcome it rendered last (what the tests look at)."""

    def __init__(self) -> None:
        self.outcome = None

    def __call__(self, outcome):
        self.outcome = outcome
        return render(outcome)


async def checkout(shop: Shop, key: str, body: dict, lines, user: str = USER):
    """The outcome the saga rendered, or the stored answer it replayed."""
    rendered = Rendered()
    response, replayed = await shop.saga.checkout(user, key, body, lines, rendered)
    if replayed:
        assert rendered.outcome is None
        return response
    return rendered.outcome


async def _buy(shop: Shop, key: str, *lines: Line, body: dict | None = None):
    return await checkout(shop, key, body if body is not None else _body(*lines), _lines(*lines))


async def paid_events_consumed(shop: Shop) -> None:
    """What the worker's inventory consumer does with the order-paid events (off the buyer's path)."""
    events = [e.payload for e in shop.orders.outbox if e.topic == "order-paid"]
    await SoldMarker(SimpleNamespace(), SimpleNamespace(inventory=shop.inventory)).handle_events(events)


# -- the buyer's path ----------------------------------------------------------------------------

async def test_a_checkout_reserves_charges_once_and_pays_the_order():
    shop = _shop()
    outcome = await _buy(shop, "k1", Line(shop.lamp, 2), Line(shop.mug, 1))

    assert isinstance(outcome, Order)
    order_id = shop.order_id("k1")
    assert outcome.id == order_id and outcome.status == OrderStatus.PAID and outcome.failure is None
    assert outcome.items == (OrderItem(shop.lamp, 2, 1999), OrderItem(shop.mug, 1, 500))
    assert outcome.total_cents == 4498
    assert shop.orders.orders[order_id] == outcome
    assert shop.payments.charges == {f"order-{order_id}": Charge(f"order-{order_id}", "captured", 4498)}
    assert shop.payments.called("charge") == [(f"order-{order_id}", 4498, str(order_id))]
    # Sold off the buyer's path: held until the worker consumes order-paid.
    assert shop.inventory.status(order_id, shop.lamp) == shop.inventory.status(order_id, shop.mug) == "held"
    shop.conserved()
    await paid_events_consumed(shop)
    assert shop.inventory.status(order_id, shop.lamp) == shop.inventory.status(order_id, shop.mug) == "sold"
    assert shop.inventory.products[shop.lamp].available == 3 and shop.inventory.sold(shop.lamp) == 2
    assert shop.inventory.products[shop.mug].available == 1 and shop.inventory.sold(shop.mug) == 1
    shop.conserved()
    assert shop.orders.topics(order_id) == ["order-placed", "order-paid"]
    assert shop.saga.outcomes["key_new"] == 1


async def test_the_events_carry_the_order_and_a_stable_id():
    shop = _shop()
    outcome = await _buy(shop, "k1", Line(shop.lamp, 1))
    placed, paid = shop.orders.outbox
    assert placed.order_id == paid.order_id == outcome.id
    assert placed.payload["user"] == USER and placed.payload["event"] == "order-placed"
    assert placed.payload["order_id"] == str(outcome.id) and placed.payload["total_cents"] == 1999
    assert placed.payload["event_id"] == placed.event_id != paid.event_id
    assert uuid.UUID(paid.event_id).version == 5
    assert shop.saga._event("order-paid", outcome).event_id == paid.event_id  # the same however often it is made


async def test_the_paid_event_says_paid():
    shop = _shop()
    await _buy(shop, "k1", Line(shop.lamp, 1))
    paid = shop.orders.outbox[-1]
    assert paid.topic == "order-paid"
    assert paid.payload["status"] == "paid"


async def test_out_of_stock_on_the_second_line_releases_the_first_and_creates_no_order():
    shop = _shop()
    outcome = await _buy(shop, "k1", Line(shop.lamp, 1), Line(shop.mug, 3))

    assert isinstance(outcome, OutOfStock) and outcome.code == "out_of_stock" and outcome.product_id == shop.mug
    order_id = shop.order_id("k1")
    assert shop.inventory.status(order_id, shop.lamp) == "released"
    assert shop.inventory.status(order_id, shop.mug) is None
    assert shop.inventory.products[shop.lamp].available == 5 and shop.inventory.products[shop.mug].available == 2
    assert shop.orders.orders == {} and shop.orders.outbox == []
    assert shop.payments.calls == []
    shop.conserved()


async def test_an_unknown_product_is_refused_as_the_inventory_says():
    shop = _shop()
    ghost = shop.catalog.add(7, "Ghost", 100).id
    del shop.inventory.products[ghost]
    outcome = await _buy(shop, "k1", Line(shop.lamp, 1), Line(ghost, 1))
    assert isinstance(outcome, UnknownProduct) and outcome.code == "not_found"
    assert shop.inventory.products[shop.lamp].available == 5 and shop.orders.orders == {}


async def test_a_declined_payment_fails_the_order_and_returns_the_stock():
    shop = _shop(FakePayments(charges=["declined"]))
    outcome = await _buy(shop, "k1", Line(shop.lamp, 2), Line(shop.mug, 2))

    assert isinstance(outcome, PaymentDeclined) and outcome.code == "payment_declined"
    order = shop.orders.orders[shop.order_id("k1")]
    assert order.status == OrderStatus.FAILED and order.failure == "payment_declined"
    assert shop.inventory.products[shop.lamp].available == 5 and shop.inventory.products[shop.mug].available == 2
    assert shop.inventory.status(order.id, shop.lamp) == shop.inventory.status(order.id, shop.mug) == "released"
    assert shop.payments.captured == []
    assert shop.orders.topics(order.id) == ["order-placed", "order-failed"]
    failed = shop.orders.outbox[-1].payload
    assert failed["status"] == "failed" and failed["failure"] == "payment_declined"
    shop.conserved()


async def test_a_provider_down_then_a_void_that_finds_no_charge_fails_the_order():
    shop = _shop(FakePayments(charges=["unavailable"]))
    outcome = await _buy(shop, "k1", Line(shop.lamp, 1))

    # Returned (a definite answer, stored for retries), not raised.
    assert isinstance(outcome, PaymentNotTaken) and outcome.code == "payment_not_taken"
    order_id = shop.order_id("k1")
    key = payment_key(order_id)
    assert [c[0] for c in shop.payments.calls] == ["charge", "void"]
    assert shop.payments.charges == {key: Charge(key, "voided", 0)}
    order = shop.orders.orders[order_id]
    assert order.status == OrderStatus.FAILED and order.failure == "payment_not_taken"
    assert shop.inventory.products[shop.lamp].available == 5
    assert shop.orders.topics(order_id) == ["order-placed", "order-failed"]
    # The void holds: a charge that arrives late under the key can never be captured.
    assert (await shop.payments.charge(key, 1999, str(order_id))).status == "voided"
    shop.conserved()


async def test_a_lost_response_is_learnt_from_the_void_and_the_order_is_paid_once():
    shop = _shop(FakePayments(charges=["lost"]))
    outcome = await _buy(shop, "k1", Line(shop.lamp, 1), Line(shop.mug, 1))

    assert isinstance(outcome, Order) and outcome.status == OrderStatus.PAID
    assert [c[0] for c in shop.payments.calls] == ["charge", "void"]
    assert shop.payments.captured == [Charge(payment_key(outcome.id), "captured", 2499)]
    await paid_events_consumed(shop)
    assert shop.inventory.status(outcome.id, shop.lamp) == "sold"
    assert shop.orders.topics(outcome.id) == ["order-placed", "order-paid"]
    shop.conserved()


async def test_provider_and_void_down_leaves_the_order_pending_and_a_retry_finishes_it():
    shop = _shop(FakePayments(charges=["unavailable"], voids=["unavailable"]))
    with pytest.raises(PaymentsUnavailable) as err:
        await _buy(shop, "k1", Line(shop.lamp, 2))
    assert isinstance(err.value, Unavailable) and err.value.code == "payments_unavailable"

    order_id = shop.order_id("k1")
    assert shop.orders.orders[order_id].status == OrderStatus.PENDING
    assert shop.inventory.status(order_id, shop.lamp) == "held" and shop.inventory.held(shop.lamp) == 2
    assert shop.payments.charges == {}
    # The key was let go at once: its lease is over, no answer is stored.
    key_row = shop.orders.keys[(USER, "k1")]
    assert key_row.response is None and key_row.lease_until == shop.clock.now
    assert shop.orders.called("let_go") == [(USER, "k1")]
    shop.conserved()

    shop.clock.advance(0.001)
    again = await checkout(shop, "k1", _body(Line(shop.lamp, 2)), _never())
    assert isinstance(again, Order) and again.id == order_id and again.status == OrderStatus.PAID
    assert shop.saga.outcomes["key_resume"] == 1
    assert len(shop.payments.captured) == 1 and shop.payments.captured[0].amount_cents == 2 * 1999
    await paid_events_consumed(shop)
    assert shop.inventory.status(order_id, shop.lamp) == "sold"
    assert shop.orders.topics(order_id) == ["order-placed", "order-paid"]
    shop.conserved()


async def test_a_shard_down_while_reserving_undoes_the_reservations_and_lets_the_key_go():
    shop = _shop()
    shop.inventory.down.add(shop.catalog.map.shard_of_id(shop.mug))
    with pytest.raises(ShardUnavailable):
        await _buy(shop, "k1", Line(shop.lamp, 1), Line(shop.mug, 1))
    order_id = shop.order_id("k1")
    assert shop.inventory.status(order_id, shop.lamp) == "released"
    assert shop.inventory.products[shop.lamp].available == 5
    assert shop.orders.orders == {} and shop.payments.calls == []
    key_row = shop.orders.keys[(USER, "k1")]
    assert key_row.response is None and key_row.lease_until == shop.clock.now
    shop.conserved()


async def test_a_retry_after_a_shard_outage_while_reserving_buys():
    shop = _shop()
    shop.inventory.down.add(shop.catalog.map.shard_of_id(shop.mug))
    with pytest.raises(ShardUnavailable):
        await _buy(shop, "k1", Line(shop.lamp, 1), Line(shop.mug, 1))
    shop.inventory.down.clear()  # the shard is back; the client retries the 503 with its key, as told
    shop.clock.advance(0.001)
    outcome = await _buy(shop, "k1", Line(shop.lamp, 1), Line(shop.mug, 1))
    assert isinstance(outcome, Order) and outcome.status == OrderStatus.PAID


# -- idempotency keys ----------------------------------------------------------------------------

async def test_a_remembered_answer_is_replayed_for_the_same_key_and_body():
    shop = _shop()
    first = await _buy(shop, "k1", Line(shop.lamp, 1))
    stored = StoredResponse(201, first.public())  # stored by the settling statement itself
    assert shop.orders.keys[(USER, "k1")].response == stored
    assert shop.saga.outcomes["paid"] == 1

    replay = await checkout(shop, "k1", _body(Line(shop.lamp, 1)), _never())
    assert replay == stored
    assert shop.saga.outcomes["key_replay"] == 1
    assert len(shop.inventory.called("reserve")) == 1 and len(shop.payments.called("charge")) == 1
    assert shop.inventory.products[shop.lamp].available == 4


async def test_the_same_key_with_another_body_is_refused_even_while_it_runs():
    shop = _shop()
    await _buy(shop, "k1", Line(shop.lamp, 1))
    with pytest.raises(IdempotencyKeyReused) as err:
        await checkout(shop, "k1", _body(Line(shop.lamp, 2)), _never())
    assert err.value.code == "idempotency_key_reused"

    await shop.orders.begin(USER, "k2", request_fingerprint(_body(Line(shop.mug, 1))), LEASE_S)  # running
    with pytest.raises(IdempotencyKeyReused):
        await checkout(shop, "k2", _body(Line(shop.mug, 2)), _never())
    assert shop.inventory.products[shop.lamp].available == 4


async def test_a_key_held_by_a_running_checkout_is_in_use_until_its_lease_ends():
    shop = _shop()
    body = _body(Line(shop.lamp, 1))
    claimed = await shop.orders.begin(USER, "k1", request_fingerprint(body), LEASE_S)  # another attempt runs
    with pytest.raises(IdempotencyKeyInUse) as err:
        await checkout(shop, "k1", body, _never())
    assert err.value.code == "idempotency_key_in_use"
    # The refusal must not end the running attempt's lease.
    assert shop.orders.called("let_go") == []
    assert shop.orders.keys[(USER, "k1")].lease_until == shop.clock.now + timedelta(seconds=LEASE_S)

    shop.clock.advance(LEASE_S + 1)  # the attempt died: a retry takes over its order id
    outcome = await checkout(shop, "k1", body, _lines(Line(shop.lamp, 1)))
    assert isinstance(outcome, Order) and outcome.id == claimed.order_id and outcome.status == OrderStatus.PAID


async def test_a_cart_retry_replays_after_the_cart_was_emptied():
    shop = _shop()
    carts = FakeCarts()
    await carts.set_quantity(USER, shop.lamp, 2, 50)

    async def cart_lines():
        lines = await carts.lines(USER)
        if not lines:
            raise AssertionError("an empty cart would be an empty order")
        return lines

    first = await checkout(shop, "k1", {}, cart_lines)
    assert isinstance(first, Order) and first.items == (OrderItem(shop.lamp, 2, 1999),)
    stored = StoredResponse(201, first.public())
    await carts.clear(USER)

    assert await checkout(shop, "k1", {}, cart_lines) == stored
    assert carts.called("lines") == [(USER,)]


async def test_a_refusal_from_the_lines_is_an_answer_and_an_outage_lets_the_key_go():
    shop = _shop()

    async def empty():
        raise InvalidInput("nothing to buy", code="empty_order")

    async def redis_down():
        raise CacheUnavailable("redis timed out")

    refused = await checkout(shop, "k1", {}, empty)
    assert isinstance(refused, InvalidInput) and refused.code == "empty_order"
    assert shop.orders.called("let_go") == []
    with pytest.raises(Unavailable):
        await checkout(shop, "k2", {}, redis_down)
    assert shop.orders.called("let_go") == [(USER, "k2")]
    assert shop.orders.orders == {} and shop.inventory.called("reserve") == []


# -- the sweeper ---------------------------------------------------------------------------------

async def _stuck(shop: Shop, key: str, *lines: Line) -> Order:
    """A checkout whose provider and void both failed: the order is left pending."""
    with pytest.raises(PaymentsUnavailable):
        await _buy(shop, key, *lines)
    order = shop.orders.orders[shop.order_id(key)]
    assert order.status == OrderStatus.PENDING
    return order


async def test_recover_pays_a_pending_order_whose_charge_was_captured():
    shop = _shop(FakePayments(charges=["lost"], voids=["unavailable"]))
    order = await _stuck(shop, "k1", Line(shop.lamp, 1), Line(shop.mug, 2))
    assert shop.payments.charges[payment_key(order.id)].status == "captured"
    shop.clock.advance(LEASE_S + 1)
    assert [o.id for o in await shop.orders.stuck(shop.catalog.map.shard_of_id(order.id), shop.clock.now, 10)] \
        == [order.id]

    recovered = await shop.saga.recover(order)
    assert recovered.status == OrderStatus.PAID and shop.orders.orders[order.id].status == OrderStatus.PAID
    assert shop.payments.called("lookup") == [(payment_key(order.id),)]
    assert len(shop.payments.captured) == 1 and len(shop.payments.called("charge")) == 1
    await paid_events_consumed(shop)
    assert shop.inventory.status(order.id, shop.lamp) == shop.inventory.status(order.id, shop.mug) == "sold"
    assert shop.orders.topics(order.id) == ["order-placed", "order-paid"]
    shop.conserved()


async def test_recover_voids_a_pending_order_with_no_charge_and_releases_its_stock():
    shop = _shop(FakePayments(charges=["unavailable"], voids=["unavailable"]))
    order = await _stuck(shop, "k1", Line(shop.lamp, 3))
    assert shop.inventory.products[shop.lamp].available == 2

    recovered = await shop.saga.recover(order)
    assert recovered.status == OrderStatus.FAILED and recovered.failure == "payment_not_taken"
    assert shop.payments.charges[payment_key(order.id)].status == "voided"
    assert shop.inventory.products[shop.lamp].available == 5
    assert shop.inventory.status(order.id, shop.lamp) == "released"
    assert shop.orders.topics(order.id) == ["order-placed", "order-failed"]
    shop.conserved()

    # The buyer comes back with the key: the order stays failed and nothing is charged.
    outcome = await checkout(shop, "k1", _body(Line(shop.lamp, 3)), _never())
    assert isinstance(outcome, PaymentNotTaken) and outcome.code == "payment_not_taken"
    assert shop.payments.captured == []


async def test_recover_is_idempotent():
    shop = _shop(FakePayments(charges=["lost"], voids=["unavailable"]))
    order = await _stuck(shop, "k1", Line(shop.lamp, 1))
    await shop.saga.recover(order)
    again = await shop.saga.recover(order)
    assert again.status == OrderStatus.PAID
    assert shop.orders.topics(order.id) == ["order-placed", "order-paid"]
    await paid_events_consumed(shop)
    assert shop.inventory.sold(shop.lamp) == 1
    shop.conserved()


async def test_an_expired_reservation_without_an_order_is_released_once_the_key_lease_is_over():
    shop = _shop()
    shop.orders.fail("place", ShardUnavailable("the buyer's shard did not answer"))
    with pytest.raises(ShardUnavailable):
        await _buy(shop, "k1", Line(shop.lamp, 2))
    order_id = shop.order_id("k1")
    assert shop.inventory.status(order_id, shop.lamp) == "held" and shop.orders.orders == {}
    shard = shop.catalog.map.shard_of_id(shop.lamp)
    assert await shop.inventory.expired(shard, shop.clock.now, 10) == []  # not expired yet
    assert await shop.inventory.expired(shard, shop.later(), 10) == [(order_id, shop.lamp)]

    assert await shop.saga.settle_reservation(order_id, shop.lamp, shop.later()) == "released"
    assert shop.inventory.status(order_id, shop.lamp) == "released"
    assert shop.inventory.products[shop.lamp].available == 5
    assert await shop.inventory.expired(shard, shop.later(), 10) == []
    shop.conserved()


async def test_an_expired_reservation_whose_checkout_still_holds_its_key_is_left_alone():
    shop = _shop()
    shop.orders.fail("place", ShardUnavailable("the buyer's shard did not answer"))
    shop.orders.fail("let_go", ShardUnavailable("still down"))  # the lease runs on
    with pytest.raises(ShardUnavailable):
        await _buy(shop, "k1", Line(shop.lamp, 2))
    order_id = shop.order_id("k1")

    assert await shop.saga.settle_reservation(order_id, shop.lamp, shop.clock.now) == "running"
    assert shop.inventory.status(order_id, shop.lamp) == "held"
    assert await shop.saga.settle_reservation(order_id, shop.lamp, shop.later(LEASE_S + 1)) == "released"
    assert shop.inventory.products[shop.lamp].available == 5


async def _order_in(shop: Shop, status: OrderStatus, quantity: int = 2) -> int:
    """An order in ``status`` with a reservation of the lamp still held (its saga died after settling)."""
    begun = await shop.orders.begin(USER, f"k-{status.value}", "fp", LEASE_S)
    expires = shop.clock.now + timedelta(seconds=TTL_S)
    reserved = await shop.inventory.reserve(begun.order_id, Line(shop.lamp, quantity), expires)
    item = OrderItem(reserved.product_id, reserved.quantity, reserved.price_cents)
    key = f"k-{status.value}"
    placed = Order(begun.order_id, USER, OrderStatus.PENDING, (item,), shop.clock.now, key)
    assert await shop.orders.place(USER, key, [item], shop.saga._event("order-placed", placed), placed.created_at)
    if status != OrderStatus.PENDING:
        await shop.orders.settle(USER, key, status, None if status == OrderStatus.PAID else "payment_declined",
                                 shop.saga._event(f"order-{status.value}", placed))
    return begun.order_id


async def test_an_expired_reservation_of_a_paid_order_is_sold():
    shop = _shop()
    order_id = await _order_in(shop, OrderStatus.PAID)
    assert await shop.saga.settle_reservation(order_id, shop.lamp, shop.later()) == "sold"
    assert shop.inventory.status(order_id, shop.lamp) == "sold"
    assert shop.inventory.products[shop.lamp].available == 3 and shop.inventory.sold(shop.lamp) == 2
    shop.conserved()


async def test_an_expired_reservation_of_a_failed_order_is_released():
    shop = _shop()
    order_id = await _order_in(shop, OrderStatus.FAILED)
    assert await shop.saga.settle_reservation(order_id, shop.lamp, shop.later()) == "released"
    assert shop.inventory.products[shop.lamp].available == 5
    shop.conserved()


async def test_an_expired_reservation_of_a_pending_order_waits_for_recover():
    shop = _shop()
    order_id = await _order_in(shop, OrderStatus.PENDING)
    assert await shop.saga.settle_reservation(order_id, shop.lamp, shop.later()) == "pending"
    assert shop.inventory.status(order_id, shop.lamp) == "held"
    assert shop.inventory.called("release") == [] and shop.inventory.called("mark_sold") == []


async def test_a_reservation_left_by_an_earlier_attempt_is_released_when_the_paid_order_lacks_it():
    shop = _shop()
    carts = FakeCarts()
    await carts.set_quantity(USER, shop.lamp, 1, 50)
    await carts.set_quantity(USER, shop.mug, 1, 50)

    async def cart_lines():
        return await carts.lines(USER)

    shop.orders.fail("place", ShardUnavailable("the buyer's shard did not answer"))
    with pytest.raises(ShardUnavailable):  # both lines reserved, then the order could not be written
        await checkout(shop, "k1", {}, cart_lines)
    await carts.set_quantity(USER, shop.mug, 0, 50)  # the buyer drops the mug and retries (same key, same body)
    shop.clock.advance(0.001)
    outcome = await checkout(shop, "k1", {}, cart_lines)
    assert isinstance(outcome, Order) and outcome.items == (OrderItem(shop.lamp, 1, 1999),)
    assert shop.payments.captured[0].amount_cents == 1999  # the mug was never paid for

    verdict = await shop.saga.settle_reservation(outcome.id, shop.mug, shop.later())
    assert verdict == "released"
    assert shop.inventory.products[shop.mug].available == 2


# -- the sweeper's loop (shop.consumers.Sweeper) over the same fakes ---------------------------------

class _Outbox:
    async def gauges(self, shard: int) -> tuple[int, int]:
        return 0, 0


def _sweeper(shop: Shop) -> Sweeper:
    wiring = SimpleNamespace(router=shop.catalog, orders=shop.orders, inventory=shop.inventory)
    return Sweeper(shop.settings, wiring, shop.saga, _Outbox())


async def _dead_sagas(shop: Shop) -> tuple[Order, int]:
    """Two checkouts that died two minutes ago: one left its order pending (provider and void
    down), one its reservation of 2 lamps held without an order (the buyer's shard down); both let
    go of their keys. The pending order and the lamp live on the same shard."""
    stuck = await _stuck(shop, "k1", Line(shop.mug, 1))
    shop.orders.fail("place", ShardUnavailable("the buyer's shard did not answer"))
    with pytest.raises(ShardUnavailable):
        await _buy(shop, "k2", Line(shop.lamp, 2))
    orphan = shop.order_id("k2")
    assert shop.catalog.map.shard_of_id(stuck.id) == shop.catalog.map.shard_of_id(shop.lamp)
    for reservation in shop.inventory.reservations.values():  # their reservations ran out long ago
        reservation.expires_at = shop.clock.now + timedelta(seconds=1)
    return stuck, orphan


async def test_the_sweeper_finishes_dead_sagas_and_returns_their_stock():
    shop = _shop(FakePayments(charges=["unavailable"], voids=["unavailable"]),
                 clock=Clock(datetime.now(timezone.utc) - timedelta(minutes=2)), sweep_interval_s=0.001)
    stuck, orphan = await _dead_sagas(shop)
    sweeper = _sweeper(shop)
    await sweeper.step()
    assert shop.orders.orders[stuck.id].status == OrderStatus.FAILED and sweeper.recovered == 1
    assert shop.inventory.status(orphan, shop.lamp) == "released"
    # Shard 0 came first: the mug's reservation still had a pending order then (recover released it later).
    assert sweeper.reservations == {"pending": 1, "released": 1}
    assert shop.inventory.products[shop.lamp].available == 5 and shop.inventory.products[shop.mug].available == 2
    shop.conserved()


async def test_the_sweeper_leaves_a_pending_order_whose_checkout_still_holds_its_key():
    shop = _shop(FakePayments(charges=["unavailable"], voids=["unavailable"]),
                 clock=Clock(datetime.now(timezone.utc) - timedelta(minutes=2)), sweep_interval_s=0.001)
    shop.orders.fail("let_go", ShardUnavailable("the buyer's shard did not answer"))
    order = await _stuck(shop, "k1", Line(shop.lamp, 1))
    shop.orders.keys[(USER, "k1")].lease_until = datetime.now(timezone.utc) + timedelta(seconds=LEASE_S)
    await _sweeper(shop).step()
    assert shop.orders.orders[order.id].status == OrderStatus.PENDING
    assert shop.payments.called("lookup") == []


async def test_a_provider_outage_does_not_keep_orphaned_stock_held():
    shop = _shop(FakePayments(charges=["unavailable"], voids=["unavailable"], lookups=["unavailable"] * 5),
                 clock=Clock(datetime.now(timezone.utc) - timedelta(minutes=2)), sweep_interval_s=0.001)
    stuck, orphan = await _dead_sagas(shop)
    await _sweeper(shop).step()
    assert shop.orders.orders[stuck.id].status == OrderStatus.PENDING  # nothing to be done about it yet
    assert shop.inventory.status(orphan, shop.lamp) == "released"


# -- the redis-gate strategy ------------------------------------------------------------------------

async def test_a_sold_out_gate_refuses_without_reaching_the_inventory():
    gate = FakeGate()
    shop = _shop(gate=gate, inventory_strategy="redis-gate")
    gate.counters[shop.lamp] = 0
    outcome = await _buy(shop, "k1", Line(shop.lamp, 1))
    assert isinstance(outcome, OutOfStock) and outcome.product_id == shop.lamp
    assert shop.inventory.calls == []
    assert gate.counters[shop.lamp] == 0 and shop.orders.orders == {}


async def test_the_gate_is_loaded_from_the_database_then_taken_from():
    gate = FakeGate()
    shop = _shop(gate=gate)
    outcome = await _buy(shop, "k1", Line(shop.lamp, 2))
    assert isinstance(outcome, Order) and outcome.status == OrderStatus.PAID
    assert gate.called("take") == [(USER, "k1", (Line(shop.lamp, 2),))] * 2  # unloaded, then taken
    assert gate.called("load") == [(shop.lamp, 5)]
    assert shop.inventory.called("available") == [(shop.lamp,)]
    assert gate.counters[shop.lamp] == 3 == shop.inventory.products[shop.lamp].available

    orders_before = len(shop.orders.calls)
    assert isinstance(await _buy(shop, "k2", Line(shop.lamp, 4)), OutOfStock)
    # The gate turned the second buyer away before anything reached the database.
    assert len(shop.inventory.called("reserve")) == 1 and len(shop.orders.calls) == orders_before
    assert shop.saga.stock_tries["gate_refused"] == 1


async def test_a_retry_of_a_winner_reaches_its_stored_answer_after_the_sell_out():
    gate = FakeGate()
    shop = _shop(gate=gate)
    first = await _buy(shop, "k1", Line(shop.lamp, 5))
    assert isinstance(first, Order) and gate.counters[shop.lamp] == 0
    replay = await _buy(shop, "k1", Line(shop.lamp, 5))
    assert replay == StoredResponse(201, first.public())
    assert isinstance(await _buy(shop, "k2", Line(shop.lamp, 1)), OutOfStock)


async def test_stock_released_by_a_declined_payment_goes_back_to_the_gate():
    gate = FakeGate()
    shop = _shop(FakePayments(charges=["declined"]), gate=gate)
    outcome = await _buy(shop, "k1", Line(shop.lamp, 2), Line(shop.mug, 1))
    assert isinstance(outcome, PaymentDeclined)
    assert gate.counters == {shop.lamp: 5, shop.mug: 2}
    assert sorted(gate.called("restock")) == sorted([(shop.lamp, 2), (shop.mug, 1)])


async def test_the_first_lines_gate_stock_comes_back_when_a_later_line_is_sold_out():
    gate = FakeGate()
    shop = _shop(gate=gate)
    gate.counters[shop.mug] = 0
    outcome = await _buy(shop, "k1", Line(shop.lamp, 2), Line(shop.mug, 1))
    assert isinstance(outcome, OutOfStock) and outcome.product_id == shop.mug
    assert gate.counters[shop.lamp] == 5 == shop.inventory.products[shop.lamp].available


async def test_the_gate_gets_back_what_the_sweeper_releases():
    gate = FakeGate()
    shop = _shop(FakePayments(charges=["unavailable"], voids=["unavailable"]), gate=gate)
    order = await _stuck(shop, "k1", Line(shop.lamp, 2))
    assert gate.counters[shop.lamp] == 3
    await shop.saga.recover(order)
    assert gate.counters[shop.lamp] == 5 == shop.inventory.products[shop.lamp].available


async def test_a_resumed_checkout_does_not_take_from_the_gate_twice():
    gate = FakeGate()
    shop = _shop(gate=gate)
    shop.orders.fail("place", ShardUnavailable("the buyer's shard did not answer"))
    with pytest.raises(ShardUnavailable):
        await _buy(shop, "k1", Line(shop.mug, 1))
    shop.clock.advance(0.001)
    assert isinstance(await _buy(shop, "k1", Line(shop.mug, 1)), Order)
    assert shop.inventory.products[shop.mug].available == 1
    assert gate.counters[shop.mug] == 1
    assert isinstance(await _buy(shop, "k2", Line(shop.mug, 1)), Order)  # the last mug is still for sale


async def test_gate_stock_comes_back_when_the_reservation_itself_fails():
    gate = FakeGate()
    shop = _shop(gate=gate)
    shop.inventory.fail("reserve", ShardUnavailable("the product's shard did not answer"))
    with pytest.raises(ShardUnavailable):
        await _buy(shop, "k1", Line(shop.mug, 2))
    assert shop.inventory.products[shop.mug].available == 2
    assert gate.counters[shop.mug] == 2


async def test_a_gate_above_the_truth_comes_back_to_it_instead_of_letting_everyone_through():
    # A lost answer (a reservation that timed out after it committed) leaves the gate above the
    # database. A unit the database refuses must stay taken from the gate: given back, the gate
    # would stay above the truth for the rest of the sale and send every buyer to the row.
    gate = FakeGate()
    shop = _shop(gate=gate)
    gate.counters[shop.mug] = shop.inventory.products[shop.mug].available + 2
    outcomes = [await _buy(shop, f"k{i}", Line(shop.mug, 1)) for i in range(6)]
    assert [type(o).__name__ for o in outcomes] == ["Order", "Order"] + ["OutOfStock"] * 4
    assert len(shop.inventory.called("reserve")) == 4  # two sold, two refused by the row
    assert shop.saga.stock_tries["gate_refused"] == 2 and gate.counters[shop.mug] == 0


async def test_the_gate_refuses_an_unknown_product_as_unknown():
    gate = FakeGate()
    shop = _shop(gate=gate)
    ghost = shop.lamp + 1  # the same bucket, no such product
    outcome = await _buy(shop, "k1", Line(ghost, 1))
    assert isinstance(outcome, UnknownProduct)


# -- prices, settings ------------------------------------------------------------------------------

async def test_a_free_order_can_be_bought():
    shop = _shop()
    try:
        NewProduct("Sticker", "misc", 0, 10)
    except Exception:  # a fix may refuse free products instead: then there is nothing to buy
        return
    sticker = shop.catalog.add(9, "Sticker", 0, stock=10).id
    outcome = await _buy(shop, "k1", Line(sticker, 1))
    assert isinstance(outcome, Order) and outcome.status == OrderStatus.PAID


async def test_events_go_to_the_configured_topics():
    shop = _shop(placed_topic="shop-placed", paid_topic="shop-paid", failed_topic="shop-failed")
    outcome = await _buy(shop, "k1", Line(shop.lamp, 1))
    assert shop.orders.topics(outcome.id) == ["shop-placed", "shop-paid"]
