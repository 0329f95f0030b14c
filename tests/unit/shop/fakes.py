"""In-memory fakes of the shop's ports (:mod:`shop.ports`), with the real adapters' semantics.

Each fake keeps its state in plain dicts the tests read directly, records its calls, and can be
told to fail: ``fake.fail("method", SomeError(...))`` makes the next call of ``method`` raise it
(several errors queue up, one per call). Ids are real ones (``shop.sharding.compose_id``), so
their buckets and shards mean what they mean in production.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from services.consistency import FROM_PRIMARY, ReadConsistency
from shop.domain import (
    Event,
    Line,
    NewProduct,
    Order,
    OrderItem,
    OrderStatus,
    OutOfStock,
    Product,
    StoredResponse,
    UnknownProduct,
)
from shop.ports import (
    Begun,
    Charge,
    GateAnswer,
    PaymentsUnavailable,
    ProductQuery,
    Reserved,
    ShardPage,
    ShardUnavailable,
)
from shop.sharding import EPOCH_MS, ShardMap, bucket_of_key, compose_id, initial_map

BUCKETS = 256


class Clock:
    """A clock the tests move by hand; it starts at the real time (the saga stamps expiries with it)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class IdMaker:
    """Instagram-style ids as ``shop_next_id(bucket)`` makes them: now | bucket | sequence."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._seq = itertools.count(1)

    def __call__(self, bucket: int) -> int:
        ms = int(self._clock().timestamp() * 1000) - EPOCH_MS
        return compose_id(ms, bucket, next(self._seq))


def shard_map(shards: int, buckets: int = BUCKETS) -> ShardMap:
    return initial_map(tuple(f"postgresql://shard-{i}" for i in range(shards)), buckets)


class Scripted:
    """Calls recorded as (method, *args); failures queued per method."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self._failures: dict[str, list[BaseException]] = {}

    def fail(self, method: str, *errors: BaseException) -> None:
        self._failures.setdefault(method, []).extend(errors)

    def called(self, method: str) -> list[tuple]:
        return [c[1:] for c in self.calls if c[0] == method]

    def _step(self, method: str, *args: object) -> None:
        self.calls.append((method, *args))
        queued = self._failures.get(method)
        if queued:
            raise queued.pop(0)


# --- inventory and catalog ---------------------------------------------------------------------

@dataclass
class Stock:
    name: str
    category: str
    price_cents: int
    available: int
    initial: int


@dataclass
class Reservation:
    quantity: int
    price_cents: int
    status: str  # held, sold, released
    expires_at: datetime


class FakeInventory(Scripted):
    """Stock and reservations, as ``SqlInventory`` keeps them (every call idempotent per (order, product))."""

    def __init__(self, shards: ShardMap | None = None) -> None:
        super().__init__()
        self.map = shards or shard_map(1)
        self.products: dict[int, Stock] = {}
        self.reservations: dict[tuple[int, int], Reservation] = {}
        self.down: set[int] = set()  # shards that do not answer (every call on them raises ShardUnavailable)

    def _reach(self, product_id: int) -> None:
        shard = self.map.shard_of_id(product_id)
        if shard in self.down:
            raise ShardUnavailable(f"shard {shard} did not answer")

    def add(self, product_id: int, price_cents: int, stock: int, name: str = "thing", category: str = "misc") -> int:
        self.products[product_id] = Stock(name, category, price_cents, stock, stock)
        return product_id

    def held(self, product_id: int) -> int:
        return sum(r.quantity for (_, p), r in self.reservations.items() if p == product_id and r.status == "held")

    def sold(self, product_id: int) -> int:
        return sum(r.quantity for (_, p), r in self.reservations.items() if p == product_id and r.status == "sold")

    def status(self, order_id: int, product_id: int) -> str | None:
        found = self.reservations.get((order_id, product_id))
        return found.status if found else None

    async def reserve(self, order_id: int, line: Line, expires_at: datetime) -> Reserved:
        self._step("reserve", order_id, line)
        self._reach(line.product_id)
        prior = self.reservations.get((order_id, line.product_id))
        if prior is not None and prior.status in ("held", "sold"):
            return Reserved(line.product_id, prior.quantity, prior.price_cents, new=False)
        stock = self.products.get(line.product_id)
        if stock is None:
            raise UnknownProduct(line.product_id)
        # A released reservation of this order is taken again (a retry after a compensation).
        if stock.available < line.quantity:
            raise OutOfStock(line.product_id, line.quantity)
        stock.available -= line.quantity
        self.reservations[(order_id, line.product_id)] = Reservation(line.quantity, stock.price_cents, "held",
                                                                     expires_at)
        return Reserved(line.product_id, line.quantity, stock.price_cents)

    async def release(self, order_id: int, product_id: int) -> int:
        self._step("release", order_id, product_id)
        self._reach(product_id)
        found = self.reservations.get((order_id, product_id))
        if found is None or found.status != "held":
            return 0
        found.status = "released"
        self.products[product_id].available += found.quantity
        return found.quantity

    async def available(self, product_id: int) -> int | None:
        self._step("available", product_id)
        self._reach(product_id)
        stock = self.products.get(product_id)
        return stock.available if stock else None

    async def mark_sold(self, order_id: int, product_id: int) -> None:
        self._step("mark_sold", order_id, product_id)
        self._reach(product_id)
        found = self.reservations.get((order_id, product_id))
        if found is not None and found.status == "held":
            found.status = "sold"

    async def mark_sold_many(self, items: Sequence[tuple[int, int]]) -> int:
        self._step("mark_sold_many", tuple(items))
        marked = 0
        for order_id, product_id in items:
            self._reach(product_id)
            found = self.reservations.get((order_id, product_id))
            if found is not None and found.status == "held":
                found.status = "sold"
                marked += 1
        return marked

    async def expired(self, shard: int, now: datetime, limit: int) -> list[tuple[int, int]]:
        self._step("expired", shard, now, limit)
        due = sorted(((r.expires_at, key) for key, r in self.reservations.items()
                      if r.status == "held" and r.expires_at < now and self.map.shard_of_id(key[1]) == shard))
        return [key for _, key in due[:limit]]


class FakeCatalog(Scripted):
    """Products over ``shards`` shards (by the id's bucket, as the shard map says), their stock in
    a :class:`FakeInventory` (the real catalog and inventory share the product rows)."""

    def __init__(self, shards: int = 1, inventory: FakeInventory | None = None, clock: Clock | None = None) -> None:
        super().__init__()
        self.map = shard_map(shards)
        self.inventory = inventory if inventory is not None else FakeInventory(self.map)
        self.inventory.map = self.map
        self._ids = IdMaker(clock or Clock())
        self.down: set[int] = set()  # shards whose searches raise ShardUnavailable
        self.consistencies: list[tuple[str, ReadConsistency]] = []  # what each get and search asked for
        self.lsn: str | None = None  # what commit_lsn answers (None: no replicas)

    def shard_count(self) -> int:
        return len(self.map.shards)

    def add(self, bucket: int, name: str, price_cents: int, stock: int = 10, category: str = "misc") -> Product:
        """Synchronous seeding (what ``create`` does, without a call recorded)."""
        product_id = self._ids(bucket)
        self.inventory.add(product_id, price_cents, stock, name, category)
        return self._product(product_id)

    def _product(self, product_id: int) -> Product:
        s = self.inventory.products[product_id]
        return Product(product_id, s.name, s.category, s.price_cents, s.available)

    async def create(self, bucket: int, product: NewProduct) -> Product:
        self._step("create", bucket, product)
        return self.add(bucket, product.name, product.price_cents, product.stock, product.category)

    async def get(self, product_id: int, consistency: ReadConsistency = FROM_PRIMARY) -> Product | None:
        self._step("get", product_id)
        self.consistencies.append(("get", consistency))
        return self._product(product_id) if product_id in self.inventory.products else None

    async def commit_lsn(self, product_id: int) -> str | None:
        self._step("commit_lsn", product_id)
        return self.lsn

    async def search(self, shard: int, query: ProductQuery, deadline_s: float | None = None,
                     consistency: ReadConsistency = FROM_PRIMARY) -> ShardPage:
        self._step("search", shard, query, deadline_s)
        self.consistencies.append(("search", consistency))
        if shard in self.down:
            raise ShardUnavailable(f"shard {shard} did not answer within {deadline_s}s")
        found = []
        for product_id in self.inventory.products:
            if self.map.shard_of_id(product_id) != shard:
                continue
            p = self._product(product_id)
            if query.category is not None and p.category != query.category:
                continue
            if query.text and query.text.lower() not in p.name.lower():
                continue
            if query.min_price is not None and p.price_cents < query.min_price:
                continue
            if query.max_price is not None and p.price_cents > query.max_price:
                continue
            if query.after is not None and (p.price_cents, p.id) <= query.after:
                continue
            found.append(p)
        found.sort(key=lambda p: (p.price_cents, p.id))
        return ShardPage(shard, found[:query.limit])


# --- orders and idempotency keys ----------------------------------------------------------------

@dataclass
class KeyRow:
    user: str
    key: str
    fingerprint: str
    order_id: int
    lease_until: datetime
    response: StoredResponse | None = None


class FakeOrders(Scripted):
    """Orders, items, keys and the outbox on the buyer's shard, as ``SqlOrders`` keeps them."""

    def __init__(self, clock: Clock | None = None, shards: ShardMap | None = None) -> None:
        super().__init__()
        self.clock = clock or Clock()
        self.map = shards or shard_map(1)
        self._ids = IdMaker(self.clock)
        self.keys: dict[tuple[str, str], KeyRow] = {}
        self.orders: dict[int, Order] = {}
        self.outbox: list[Event] = []

    def topics(self, order_id: int) -> list[str]:
        return [e.topic for e in self.outbox if e.order_id == order_id]

    async def begin(self, user: str, key: str, fingerprint: str, lease_s: float) -> Begun:
        self._step("begin", user, key, fingerprint, lease_s)
        now = self.clock()
        row = self.keys.get((user, key))
        if row is None:
            order_id = self._ids(bucket_of_key(user, self.map.buckets))
            self.keys[(user, key)] = KeyRow(user, key, fingerprint, order_id, now + timedelta(seconds=lease_s))
            return Begun("new", order_id)
        if row.fingerprint != fingerprint:
            return Begun("reused", row.order_id)
        if row.response is not None:
            return Begun("replay", row.order_id, row.response)
        if row.lease_until > now:
            return Begun("in_use", row.order_id)
        row.lease_until = now + timedelta(seconds=lease_s)
        return Begun("resume", row.order_id)

    def _answer(self, user: str, key: str, answer: StoredResponse | None) -> None:
        row = self.keys.get((user, key))
        if answer is not None and row is not None:
            row.response = answer
            row.lease_until = self.clock()

    async def place(self, user: str, key: str, items: Sequence[OrderItem], event: Event, created_at: datetime,
                    answer: StoredResponse | None = None) -> bool:
        order_id = event.order_id
        self._step("place", user, key, order_id, tuple(items), event)
        if order_id in self.orders:
            return False
        self.orders[order_id] = Order(order_id, user, OrderStatus.PENDING,
                                      tuple(sorted(items, key=lambda i: i.product_id)), created_at, key)
        self.outbox.append(event)
        self._answer(user, key, answer)
        return True

    async def settle(self, user: str, key: str, status: OrderStatus, failure: str | None, event: Event,
                     answer: StoredResponse | None = None) -> bool:
        order_id = event.order_id
        self._step("settle", order_id, status, failure, event)
        found = self.orders.get(order_id)
        if found is None or found.status != OrderStatus.PENDING:
            return False
        self.orders[order_id] = replace(found, status=status, failure=failure)
        self.outbox.append(event)
        self._answer(user, key, answer)
        return True

    async def finish(self, user: str, key: str, response: StoredResponse) -> None:
        self._step("finish", user, key, response)
        row = self.keys.get((user, key))
        if row is not None:
            row.response = response
            row.lease_until = self.clock()

    async def let_go(self, user: str, key: str) -> None:
        self._step("let_go", user, key)
        row = self.keys.get((user, key))
        if row is not None and row.response is None:
            row.lease_until = self.clock()

    async def get(self, order_id: int) -> Order | None:
        self._step("get", order_id)
        return self.orders.get(order_id)

    async def list_for(self, user: str, before: int | None, limit: int) -> list[Order]:
        self._step("list_for", user, before, limit)
        mine = sorted((o for o in self.orders.values() if o.user == user and (before is None or o.id < before)),
                      key=lambda o: o.id, reverse=True)
        return mine[:limit]

    async def stuck(self, shard: int, older_than: datetime, limit: int) -> list[Order]:
        self._step("stuck", shard, older_than, limit)
        found = sorted((o for o in self.orders.values() if o.status == OrderStatus.PENDING
                        and o.created_at < older_than and self.map.shard_of_id(o.id) == shard),
                       key=lambda o: o.created_at)
        return found[:limit]

    async def key_expired(self, order_id: int, now: datetime) -> bool | None:
        self._step("key_expired", order_id, now)
        for row in self.keys.values():
            if row.order_id == order_id:
                return row.lease_until < now or row.response is not None
        return None


# --- payments ------------------------------------------------------------------------------------

class FakePayments(Scripted):
    """The payment stand-in in a dict, scripted per call.

    ``charges`` outcomes, one per ``charge`` call (then "captured"): "captured" or "declined" (a new
    charge's decision), "unavailable" (503 before anything is recorded), "lost" (records the
    charge as captured, then raises: the response lost on the way back). ``voids`` and ``lookups``:
    "ok" or "unavailable". A key's first charge is its answer for ever; a voided key answers
    ``voided``; another amount under a key is refused (the client's PaymentsUnavailable); an amount
    under 1 cent is refused as the stand-in refuses it.
    """

    def __init__(self, charges: Sequence[str] = (), voids: Sequence[str] = (), lookups: Sequence[str] = ()) -> None:
        super().__init__()
        self.charges: dict[str, Charge] = {}
        self.charge_script = list(charges)
        self.void_script = list(voids)
        self.lookup_script = list(lookups)

    @property
    def captured(self) -> list[Charge]:
        return [c for c in self.charges.values() if c.status == "captured"]

    async def charge(self, key: str, amount_cents: int, reference: str) -> Charge:
        self._step("charge", key, amount_cents, reference)
        outcome = self.charge_script.pop(0) if self.charge_script else "captured"
        if amount_cents < 1:
            raise PaymentsUnavailable(f"the payment provider refused the charge (422): amount_cents must be "
                                      f"1-1000000000, not {amount_cents}")
        if outcome == "unavailable":
            raise PaymentsUnavailable("the payment provider answered 503: provider_error")
        existing = self.charges.get(key)
        if existing is not None:
            if existing.status != "voided" and existing.amount_cents != amount_cents:
                raise PaymentsUnavailable("the payment provider refused the charge (422): idempotency_key_reused")
            return existing
        charge = self.charges[key] = Charge(key, "declined" if outcome == "declined" else "captured", amount_cents)
        if outcome == "lost":
            raise PaymentsUnavailable("the payment provider answered 503: provider_error")
        return charge

    async def lookup(self, key: str) -> Charge | None:
        self._step("lookup", key)
        if self.lookup_script and self.lookup_script.pop(0) == "unavailable":
            raise PaymentsUnavailable("the payment provider did not answer within 2.0s")
        return self.charges.get(key)

    async def void(self, key: str) -> Charge:
        self._step("void", key)
        if self.void_script and self.void_script.pop(0) == "unavailable":
            raise PaymentsUnavailable("the payment provider did not answer within 2.0s")
        if key not in self.charges:
            self.charges[key] = Charge(key, "voided", 0)
        return self.charges[key]


# --- Redis: carts, the product cache, the stock gate ---------------------------------------------

class FakeCarts(Scripted):
    def __init__(self) -> None:
        super().__init__()
        self.carts: dict[str, dict[int, int]] = {}

    async def set_quantity(self, user: str, product_id: int, quantity: int, max_lines: int) -> bool:
        self._step("set_quantity", user, product_id, quantity, max_lines)
        cart = self.carts.setdefault(user, {})
        if quantity == 0:
            cart.pop(product_id, None)
            return True
        if product_id not in cart and len(cart) >= max_lines:
            return False
        cart[product_id] = quantity
        return True

    async def lines(self, user: str) -> list[Line]:
        self._step("lines", user)
        return [Line(p, q) for p, q in sorted(self.carts.get(user, {}).items())]  # in product order

    async def clear(self, user: str) -> None:
        self._step("clear", user)
        self.carts.pop(user, None)


class FakeCache(Scripted):
    def __init__(self) -> None:
        super().__init__()
        self.pages: dict[int, dict] = {}

    async def get(self, product_id: int) -> dict | None:
        self._step("get", product_id)
        return self.pages.get(product_id)

    async def put(self, product: Product) -> None:
        self._step("put", product.id)
        self.pages[product.id] = {"name": product.name, "category": product.category,
                                  "price_cents": product.price_cents}


class FakeGate(Scripted):
    """The redis-gate counters: absent until loaded, loaded once (SET NX); the keys let through are
    remembered, their units given back once."""

    def __init__(self) -> None:
        super().__init__()
        self.counters: dict[int, int] = {}
        self.passed: set[tuple[str, str]] = set()

    async def take(self, user: str, key: str, lines: Sequence[Line]) -> GateAnswer:
        self._step("take", user, key, tuple(lines))
        if (user, key) in self.passed:
            return GateAnswer("known")
        missing = tuple(line.product_id for line in lines if line.product_id not in self.counters)
        if missing:
            return GateAnswer("unloaded", missing)
        short = [line.product_id for line in lines if self.counters[line.product_id] < line.quantity]
        if short:
            return GateAnswer("sold_out", (short[0],))
        for line in lines:
            self.counters[line.product_id] -= line.quantity
        self.passed.add((user, key))
        return GateAnswer("pass")

    async def load(self, product_id: int, available: int) -> None:
        self._step("load", product_id, available)
        self.counters.setdefault(product_id, available)

    async def give_back(self, user: str, key: str, lines: Sequence[Line]) -> None:
        self._step("give_back", user, key, tuple(lines))
        if (user, key) not in self.passed:
            return
        self.passed.discard((user, key))
        for line in lines:
            if line.product_id in self.counters:
                self.counters[line.product_id] += line.quantity

    async def restock(self, product_id: int, quantity: int) -> None:
        self._step("restock", product_id, quantity)
        if product_id in self.counters:
            self.counters[product_id] += quantity
