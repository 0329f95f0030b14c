"""The checkout saga, written by hand: it is what this design teaches.

No transaction spans the shards and the payment provider, so a checkout is a sequence of local
steps, each recorded, each safe to repeat, each with an undo, and each one statement:

1. claim the idempotency key on the buyer's shard (it hands out the order id);
2. reserve stock on each product's shard (a conditional decrement and a reservation that expires);
3. create the order ``pending`` on the buyer's shard, with ``order-placed`` in its outbox;
4. charge the provider under the order's own key (a retry never charges twice);
5. settle: the order ``paid`` with ``order-paid`` (or ``failed`` with ``order-failed``, after
   releasing its reservations), and the key's answer, in one statement.

A paid order's reservations are marked sold off the buyer's path, by the worker that consumes
``order-paid`` (:mod:`shop.consumers`). With ``checkout_mode=async`` the buyer is answered 202
after step 3 (the answer stored with the order), and the worker that consumes ``order-placed``
charges and settles: the buyer's request then holds nothing while the provider takes its time.

A crash anywhere leaves records that say how far it got. A retry with the same idempotency key
resumes from them once the key's lease is over; so does the sweeper (:meth:`recover`,
:meth:`settle_reservation`) for buyers who never come back. A reservation whose saga died
returns its stock when the sweeper finds it expired and its order failed or never created.

With the redis-gate strategy the gate is asked before anything touches PostgreSQL, so a buyer
turned away costs one Redis call; it remembers the keys it let through, so a retry of a winner
after the sell-out still reaches its stored answer.
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
                         OutOfStock, PaymentDeclined, PaymentNotTaken, StoredResponse, UnknownProduct,
                         request_fingerprint)
from shop.ports import Charge, GateAnswer, Inventory, Orders, Payments, PaymentsUnavailable, Reserved, StockGate

log = get_logger(__name__)
_EVENTS = uuid.UUID("3b0c6a52-1d8e-4c43-8f0e-7a1f8f2f6c11")

Outcome = Order | LabError
# The entrypoint's rendering of an outcome (a status and a body): the saga stores it under the
# key in the statement that decides it, so the answer costs no round trip of its own.
Render = Callable[[Outcome], StoredResponse]


def payment_key(order_id: int) -> str:
    return f"order-{order_id}"


def _now() -> datetime:
    return datetime.now(timezone.utc)


class CheckoutSaga:
    def __init__(self, settings: ShopSettings, orders: Orders, inventory: Inventory, payments: Payments,
                 gate: StockGate | None = None, clock: Callable[[], datetime] = _now) -> None:
        self._settings = settings
        self._clock = clock
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
    async def checkout(self, user: str, key: str, body: dict, lines: Callable[[], Awaitable[Sequence[Line]]],
                       render: Render) -> tuple[StoredResponse, bool]:
        """The answer to the checkout and whether it is a replay of a stored one.

        ``lines`` says what to buy; a cart checkout's retry finds the cart already emptied by the
        first attempt, so a refusal from it counts only once the key is claimed (a replay wins).
        Raises ``Unavailable`` when the saga could not finish (a shard or the provider did not
        answer): no answer is stored, and the key is let go so that a retry resumes now.
        """
        chosen: Sequence[Line] | None = None
        passed = False
        if self._gate is not None:
            try:
                chosen = await lines()
            except LabError as refused:
                if isinstance(refused, Unavailable):
                    raise
                chosen = None  # answered below, once the key is claimed (it may be a replay)
            if chosen:
                try:
                    answer = await self._gate_take(user, key, chosen)
                    refusal = None if answer.verdict != "sold_out" else OutOfStock(answer.products[0], next(
                        line.quantity for line in chosen if line.product_id == answer.products[0]))
                except UnknownProduct as unknown:
                    refusal = unknown
                if refusal is not None:
                    self.stock_tries["gate_refused"] += 1
                    # Not stored under the key: the request was refused before it ran, and a retry
                    # is asked again (the gate remembers the keys it let through, not those it refused).
                    response = render(refusal)
                    self._count(response)
                    return response, False
                passed = answer.verdict == "pass"
        return await self._claimed(user, key, body, lines, chosen, render, passed)

    async def _claimed(self, user: str, key: str, body: dict, lines, chosen, render: Render,
                       passed: bool) -> tuple[StoredResponse, bool]:
        try:
            begun = await self._orders.begin(user, key, request_fingerprint(body), self._settings.idempotency_lease_s)
        except BaseException:
            if passed:  # nothing was reserved: the gate's units go back
                with contextlib.suppress(Unavailable):
                    await self._gate.give_back(user, key, chosen)
            raise
        self.outcomes[f"key_{begun.outcome}"] += 1
        if begun.outcome != "new" and passed:
            # The gate's units belong to a new checkout only: a resumed one reserved the first time.
            await self._gate.give_back(user, key, chosen)
        if begun.outcome == "replay":
            return begun.response, True
        if begun.outcome == "in_use":
            raise IdempotencyKeyInUse("a checkout with this Idempotency-Key is still running; retry when it ends")
        if begun.outcome == "reused":
            raise IdempotencyKeyReused("this Idempotency-Key was used with a different request body; "
                                       "use a new key for a new checkout")
        try:
            if begun.outcome == "resume":
                existing = await self._orders.get(begun.order_id)
                if existing is not None:
                    return await self._answer(user, key, await self._drive(existing), render), False
            if chosen is None:
                try:
                    chosen = await lines()
                except LabError as refused:
                    if isinstance(refused, Unavailable):
                        raise
                    # An empty cart, an unknown product: answered, and kept for retries.
                    return await self._answer(user, key, refused, render), False
            return await self._start(user, key, begun.order_id, chosen, render, passed), False
        except Unavailable:
            with contextlib.suppress(Unavailable):
                await self._orders.let_go(user, key)
            raise

    async def _gate_take(self, user: str, key: str, lines: Sequence[Line]) -> GateAnswer:
        answer = await self._gate.take(user, key, lines)
        if answer.verdict == "unloaded":  # counters not loaded yet: load them from the database, ask again
            for product_id in answer.products:
                available = await self._inventory.available(product_id)
                if available is None:
                    raise UnknownProduct(product_id)
                await self._gate.load(product_id, available)
            answer = await self._gate.take(user, key, lines)
            if answer.verdict == "unloaded":  # evicted meanwhile: refuse rather than loop
                return GateAnswer("sold_out", answer.products[:1])
        return answer

    async def _answer(self, user: str, key: str, outcome: Outcome, render: Render) -> StoredResponse:
        """Store a final answer that no step stored yet (a refusal, a resumed order's outcome)."""
        response = render(outcome)
        self._count(response)
        await self._orders.finish(user, key, response)
        return response

    def _count(self, response: StoredResponse) -> None:
        code = response.body.get("status") if response.status < 300 else response.body.get("error", {}).get("code")
        self.outcomes[str(code)] += 1

    async def _start(self, user: str, key: str, order_id: int, lines: Sequence[Line], render: Render,
                     passed: bool = False) -> StoredResponse:
        expires = self._clock() + timedelta(seconds=self._settings.reservation_ttl_s)
        reserved: list[Reserved] = []
        try:
            for line in lines:
                reserved.append(await self._reserve(order_id, line, expires))
        except LabError as refused:  # out of stock, unknown product, a shard down: undo what was taken
            for r in reserved:
                with contextlib.suppress(Unavailable):  # else it expires, and the sweeper returns it
                    await self._release(order_id, r.product_id, restock=not passed)
            if passed:
                # The gate's units come back for the lines the database did not refuse. A line it
                # refused as out of stock shows the gate above the truth (a reservation whose answer
                # was lost to a timeout, say): keeping that unit taken moves the gate back to the
                # truth, where giving it back would keep it above for the rest of the sale and let
                # every later buyer through to the row.
                sold_out = refused.product_id if isinstance(refused, OutOfStock) else None
                with contextlib.suppress(Unavailable):
                    await self._gate.give_back(user, key, [line for line in lines if line.product_id != sold_out])
            if isinstance(refused, Unavailable):
                raise
            return await self._answer(user, key, refused, render)
        items = tuple(OrderItem(r.product_id, r.quantity, r.price_cents) for r in reserved)
        order = Order(order_id, user, OrderStatus.PENDING, items, self._clock(), key)
        placed = self._event(self._settings.placed_topic, order)
        if self._settings.checkout_mode == "async":
            # Accepted: the worker charges and settles; the buyer reads the order for its outcome.
            response = render(order)
            if await self._orders.place(user, key, items, placed, order.created_at, answer=response):
                self._count(response)
                return response
        elif await self._orders.place(user, key, items, placed, order.created_at):
            return await self._conclude(order, await self._charge_for(order), render)
        # The order existed (a resumed checkout placed it before): carry on from what is stored.
        existing = await self._orders.get(order_id)
        return await self._answer(user, key, await self._drive(existing), render)

    async def _reserve(self, order_id: int, line: Line, expires: datetime) -> Reserved:
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

    async def _release(self, order_id: int, product_id: int, *, restock: bool = True) -> None:
        quantity = await self._inventory.release(order_id, product_id)
        if quantity and restock and self._gate is not None:
            with contextlib.suppress(Unavailable):  # a gate below the truth only refuses too early
                await self._gate.restock(product_id, quantity)

    # --- charge, then settle ------------------------------------------------------------------
    async def _charge_for(self, order: Order) -> Charge:
        # Nothing to pay (free products): the provider is not asked, and would refuse a zero charge.
        return Charge(payment_key(order.id), "captured", 0) if order.total_cents == 0 else await self._charge(order)

    async def _drive(self, order: Order) -> Outcome:
        """Take a placed order to its end (charge, idempotent; then settle) and return its outcome;
        no answer is stored here (the caller does, or the key keeps the one it has)."""
        if order.status == OrderStatus.PENDING:
            order = await self._settle(order, await self._charge_for(order))
        return self._outcome(order)

    async def pay(self, order: Order) -> Order:
        """The asynchronous checkout's second half (the worker, on ``order-placed``): charge, settle.
        The key keeps its 202; the buyer reads the order's outcome."""
        if order.status != OrderStatus.PENDING:
            return order
        return await self._settle(order, await self._charge_for(order))

    async def _charge(self, order: Order) -> Charge:
        key = payment_key(order.id)
        try:
            return await self._payments.charge(key, order.total_cents, str(order.id))
        except PaymentsUnavailable:
            # The charge may or may not have happened. Voiding settles it: afterwards no charge
            # under this key can be captured, and we learn whether one was. If the provider is
            # down for that too, the order stays pending for a retry or the sweeper.
            return await self._payments.void(key)

    async def _conclude(self, order: Order, charge: Charge, render: Render) -> StoredResponse:
        """Settle and store the key's answer in the same statement; when someone settled first (the
        sweeper), answer from what they stored."""
        final = self._final(order, charge)
        response = render(self._outcome(final))
        if not final.failure:
            settled = await self._orders.settle(order.user, order.idempotency_key, final.status, None,
                                                self._event(self._settings.paid_topic, final), answer=response)
        else:
            for item in order.items:
                await self._release(order.id, item.product_id)
            settled = await self._orders.settle(order.user, order.idempotency_key, final.status, final.failure,
                                                self._event(self._settings.failed_topic, final), answer=response)
        if settled:
            self._count(response)
            return response
        stored = await self._orders.get(order.id)
        return await self._answer(order.user, order.idempotency_key, self._outcome(stored or order), render)

    async def _settle(self, order: Order, charge: Charge) -> Order:
        """Settle without an answer for the key (the sweeper, a resumed or asynchronous checkout)."""
        final = self._final(order, charge)
        if final.failure:
            for item in order.items:
                await self._release(order.id, item.product_id)
            topic = self._settings.failed_topic
        else:
            topic = self._settings.paid_topic
        if await self._orders.settle(order.user, order.idempotency_key, final.status, final.failure,
                                     self._event(topic, final)):
            return final
        return await self._orders.get(order.id) or order

    @staticmethod
    def _final(order: Order, charge: Charge) -> Order:
        if charge.status == "captured":
            return Order(order.id, order.user, OrderStatus.PAID, order.items, order.created_at, order.idempotency_key)
        failure = "payment_declined" if charge.status == "declined" else "payment_not_taken"
        return Order(order.id, order.user, OrderStatus.FAILED, order.items, order.created_at, order.idempotency_key,
                     failure)

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
        return await self._settle(order, charge)

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
