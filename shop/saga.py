"""The checkout saga, written by hand: it is what this design teaches.

No transaction spans the shards and the payment provider, so a checkout is a sequence of local
steps, each recorded, each safe to repeat, each with an undo:

1. claim the idempotency key on the buyer's shard (it hands out the order id);
2. reserve stock on each product's shard (a conditional decrement and a reservation that expires);
3. create the order ``pending`` on the buyer's shard, with ``order-placed`` in its outbox;
4. charge the provider under the order's own key (a retry never charges twice);
5. confirm (reservations sold, order ``paid``, ``order-paid``) or compensate (reservations
   released, order ``failed``, ``order-failed``).

A crash anywhere leaves records that say how far it got. A retry with the same idempotency key
resumes from them once the key's lease is over; so does the sweeper (:meth:`recover`,
:meth:`settle_reservation`) for buyers who never come back. A reservation whose saga died
returns its stock when the sweeper finds it expired and its order failed or never created.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta, timezone

from services.errors import LabError, Unavailable
from services.logging import get_logger
from shop.config import ShopSettings
from shop.domain import (Event, IdempotencyKeyInUse, IdempotencyKeyReused, Line, Order, OrderItem, OrderStatus,
                         OutOfStock, PaymentDeclined, PaymentNotTaken, PaymentsUnavailable, StoredResponse,
                         UnknownProduct, request_fingerprint)
from shop.ports import Charge, Inventory, Orders, Payments, Reserved, StockGate

log = get_logger(__name__)
_EVENTS = uuid.UUID("3b0c6a52-1d8e-4c43-8f0e-7a1f8f2f6c11")

Outcome = Order | LabError


def payment_key(order_id: int) -> str:
    return f"order-{order_id}"


def _now() -> datetime:
    return datetime.now(timezone.utc)


class CheckoutSaga:
    def __init__(self, settings: ShopSettings, orders: Orders, inventory: Inventory, payments: Payments,
                 gate: StockGate | None = None) -> None:
        self._settings = settings
        self._orders = orders
        self._inventory = inventory
        self._payments = payments
        self._gate = gate
        self.outcomes: Tally = Tally()  # checkouts by how they ended (paid, out_of_stock, replayed, ...)
        # Reservation tries by where they were answered: turned away by the gate (never reached the
        # database), or taken / refused / failed at the product's row in the database.
        self.stock_tries: Tally = Tally()

    def _event(self, topic: str, order: Order) -> Event:
        payload = {**order.public(), "user": order.user, "event": topic}
        event_id = str(uuid.uuid5(_EVENTS, f"{topic}:{order.id}"))  # the same event however often it is made
        return Event(event_id, topic, order.id, {**payload, "event_id": event_id})

    # --- the buyer's path -------------------------------------------------------------------
    async def checkout(self, user: str, key: str, body: dict,
                       lines: Callable[[], Awaitable[Sequence[Line]]]) -> StoredResponse | Outcome:
        """A stored answer to replay, or the outcome of running (or resuming) the saga.

        ``lines`` says what to buy; it is asked only once the key is claimed, since a retry of a
        cart checkout finds the cart already emptied by the first attempt.

        The caller renders an outcome and stores it with :meth:`remember`; an outcome that is an
        ``Unavailable`` error raised means the saga could not finish, and the key was let go.
        """
        begun = await self._orders.begin(user, key, request_fingerprint(body), self._settings.idempotency_lease_s)
        self.outcomes[f"key_{begun.outcome}"] += 1
        if begun.outcome == "replay":
            return begun.response
        if begun.outcome == "in_use":
            raise IdempotencyKeyInUse("a checkout with this Idempotency-Key is still running; retry when it ends")
        if begun.outcome == "reused":
            raise IdempotencyKeyReused("this Idempotency-Key was used with a different request body; "
                                       "use a new key for a new checkout")
        try:
            if begun.outcome == "resume":
                existing = await self._orders.get(begun.order_id)
                if existing is not None:
                    return await self._drive(existing)
            try:
                chosen = await lines()
            except LabError as refused:
                if isinstance(refused, Unavailable):
                    raise
                return refused  # an empty cart, an unknown product: answered, and kept for retries
            return await self._start(user, key, begun.order_id, chosen)
        except Unavailable:
            # Not finished (a shard or the provider did not answer): no answer is stored, and the
            # key is let go so that a retry resumes now rather than getting "in use" for a lease.
            with contextlib.suppress(Unavailable):
                await self._orders.let_go(user, key)
            raise

    async def remember(self, user: str, key: str, response: StoredResponse) -> None:
        code = response.body.get("status") if response.status == 201 else response.body.get("error", {}).get("code")
        self.outcomes[str(code)] += 1
        await self._orders.finish(user, key, response)

    async def let_go(self, user: str, key: str) -> None:
        await self._orders.let_go(user, key)

    async def _start(self, user: str, key: str, order_id: int, lines: Sequence[Line]) -> Outcome:
        expires = _now() + timedelta(seconds=self._settings.reservation_ttl_s)
        reserved: list[Reserved] = []
        try:
            for line in lines:
                reserved.append(await self._reserve(order_id, line, expires))
        except LabError as refused:  # out of stock, unknown product, a shard down: undo what was taken
            for r in reserved:
                with contextlib.suppress(Unavailable):  # else it expires, and the sweeper returns it
                    await self._release(order_id, r.product_id)
            if isinstance(refused, Unavailable):
                raise
            return refused
        items = tuple(OrderItem(r.product_id, r.quantity, r.price_cents) for r in reserved)
        placing = Order(order_id, user, OrderStatus.PENDING, items, _now(), key)
        order = await self._orders.place(user, key, order_id, items, self._event(self._settings.placed_topic, placing))
        return await self._drive(order)

    async def _reserve_in_database(self, order_id: int, line: Line, expires: datetime) -> Reserved:
        try:
            reserved = await self._inventory.reserve(order_id, line, expires)
        except OutOfStock:
            self.stock_tries["database_refused"] += 1
            raise
        except Exception:
            self.stock_tries["database_error"] += 1
            raise
        self.stock_tries["database_taken"] += 1
        return reserved

    async def _reserve(self, order_id: int, line: Line, expires: datetime) -> Reserved:
        if self._gate is None:
            return await self._reserve_in_database(order_id, line, expires)
        passed = await self._gate.take(line.product_id, line.quantity, None)
        if passed is None:  # counter not loaded yet: load it from the database, then ask again
            available = await self._inventory.available(line.product_id)
            if available is None:
                raise UnknownProduct(line.product_id)
            passed = await self._gate.take(line.product_id, line.quantity, available)
        if not passed:
            self.stock_tries["gate_refused"] += 1
            raise OutOfStock(line.product_id, line.quantity)
        try:
            reserved = await self._reserve_in_database(order_id, line, expires)
        except LabError:
            # The gate must never say less than the database has: what it let through and the
            # database did not take goes back (a gate above the truth only costs a refused try).
            await self._gate.give_back(line.product_id, line.quantity)
            raise
        if not reserved.new:  # a resumed checkout's reservation: taken from the gate the first time
            await self._gate.give_back(line.product_id, line.quantity)
        return reserved

    async def _release(self, order_id: int, product_id: int) -> None:
        quantity = await self._inventory.release(order_id, product_id)
        if quantity and self._gate is not None:
            await self._gate.give_back(product_id, quantity)

    # --- charge, then confirm or compensate ---------------------------------------------------
    async def _drive(self, order: Order) -> Outcome:
        """Take a placed order to its end: charge (idempotent), then confirm or compensate."""
        if order.status != OrderStatus.PENDING:
            return self._outcome(order)
        # Nothing to pay (free products): the provider is not asked, and would refuse a zero charge.
        charge = Charge(payment_key(order.id), "captured", 0) if order.total_cents == 0 else await self._charge(order)
        return self._outcome(await self._conclude(order, charge))

    async def _charge(self, order: Order) -> Charge:
        key = payment_key(order.id)
        try:
            return await self._payments.charge(key, order.total_cents, str(order.id))
        except PaymentsUnavailable:
            # The charge may or may not have happened. Voiding settles it: afterwards no charge
            # under this key can be captured, and we learn whether one was. If the provider is
            # down for that too, the order stays pending for a retry or the sweeper.
            return await self._payments.void(key)

    async def _conclude(self, order: Order, charge: Charge) -> Order:
        if charge.status == "captured":
            for item in order.items:
                await self._inventory.mark_sold(order.id, item.product_id)
            paid = Order(order.id, order.user, OrderStatus.PAID, order.items, order.created_at, order.idempotency_key)
            settled = await self._orders.settle(order.id, OrderStatus.PAID, None,
                                                self._event(self._settings.paid_topic, paid))
        else:
            for item in order.items:
                await self._release(order.id, item.product_id)
            failure = "payment_declined" if charge.status == "declined" else "payment_not_taken"
            failed = Order(order.id, order.user, OrderStatus.FAILED, order.items, order.created_at,
                           order.idempotency_key, failure)
            settled = await self._orders.settle(order.id, OrderStatus.FAILED, failure,
                                                self._event(self._settings.failed_topic, failed))
        return settled or order

    def _outcome(self, order: Order) -> Outcome:
        if order.status == OrderStatus.FAILED:
            if order.failure == "payment_declined":
                return PaymentDeclined(f"the payment for order {order.id} was declined; its stock was released")
            return PaymentNotTaken(f"the payment for order {order.id} could not be taken (the provider did not "
                                   "answer, and the charge was voided); the order failed and its stock was released")
        return order

    # --- the sweeper's path -----------------------------------------------------------------
    async def recover(self, order: Order) -> Order:
        """Finish or undo an order left ``pending`` by a saga that died (its key's lease is over)."""
        key = payment_key(order.id)
        charge = await self._payments.lookup(key) or await self._payments.void(key)
        log.info("saga_recovered", order_id=order.id, charge=charge.status)
        return await self._conclude(order, charge)

    async def settle_reservation(self, order_id: int, product_id: int, now: datetime) -> str:
        """An expired held reservation: sold, released, or left alone while its saga may still run."""
        order = await self._orders.get(order_id)
        if order is None:
            if await self._orders.key_expired(order_id, now) is False:
                return "running"
            # The saga died between reserving and placing the order: nothing was charged.
            await self._release(order_id, product_id)
            return "released"
        if order.status == OrderStatus.PAID:
            if any(item.product_id == product_id for item in order.items):
                await self._inventory.mark_sold(order_id, product_id)
                return "sold"
            # Reserved by an attempt whose retry bought less (the cart changed in between).
            await self._release(order_id, product_id)
            return "released"
        if order.status == OrderStatus.FAILED:
            await self._release(order_id, product_id)
            return "released"
        return "pending"  # recover() settles the order first
