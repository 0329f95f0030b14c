"""The shop's ports: what the use cases need from the shards, Redis and the payment provider.

Adapters raise :class:`ShardUnavailable` when a shard does not answer, and
:class:`PaymentsUnavailable` when the provider does not; Redis failures raise
:class:`CacheUnavailable`, which the service treats as a miss wherever it can.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from services.consistency import FROM_PRIMARY, ReadConsistency
from services.errors import DependencyUnavailable
from shop.domain import Event, Line, NewProduct, Order, OrderItem, OrderStatus, Product, StoredResponse


class ShardUnavailable(DependencyUnavailable):
    """The PostgreSQL server holding a bucket did not answer (or is moving it for a moment)."""

    code = "shard_unavailable"
    dependency = "postgresql"


class PaymentsUnavailable(DependencyUnavailable):
    code = "payments_unavailable"
    dependency = "the payment provider"


class CacheUnavailable(DependencyUnavailable):
    """Redis could not be reached: a 503 where Redis is the store (carts), a miss where it is a cache."""

    code = "redis_unavailable"
    dependency = "redis"


@dataclass(frozen=True)
class ProductQuery:
    category: str | None = None
    text: str | None = None
    min_price: int | None = None
    max_price: int | None = None
    # Keyset position: products sorted by (price_cents, id); the page starts after this one.
    after: tuple[int, int] | None = None
    limit: int = 20


@dataclass(frozen=True)
class ShardPage:
    shard: int
    products: list[Product]


class Catalog(Protocol):
    async def create(self, bucket: int, product: NewProduct) -> Product: ...

    async def get(self, product_id: int, consistency: ReadConsistency = FROM_PRIMARY) -> Product | None:
        """From the product's shard: its primary, or a replica when ``consistency`` allows (a product
        page may be as stale as the replica; a cart's check that the product exists may not)."""
        ...

    async def commit_lsn(self, product_id: int) -> str | None:
        """The read-your-writes token of the product's shard (None without replicas)."""
        ...

    async def search(self, shard: int, query: ProductQuery, deadline_s: float | None = None,
                     consistency: ReadConsistency = FROM_PRIMARY) -> ShardPage:
        """One shard's share of a listing: at most ``query.limit`` products in (price, id) order."""
        ...

    def shard_count(self) -> int: ...


@dataclass(frozen=True)
class Reserved:
    product_id: int
    quantity: int
    price_cents: int
    new: bool = True  # False: this order held the reservation already (a resumed checkout)


class Inventory(Protocol):
    """Stock on each product's shard. Every call is idempotent per (order, product)."""

    async def reserve(self, order_id: int, line: Line, expires_at: datetime) -> Reserved:
        """Take ``line.quantity`` out of the available stock, held for the order until it expires;
        raises :class:`shop.domain.OutOfStock` when there is not enough."""
        ...

    async def release(self, order_id: int, product_id: int) -> int:
        """A held reservation's stock back to available: the quantity returned (0: none was held)."""
        ...

    async def available(self, product_id: int) -> int | None:
        """Stock that can be bought now; None for an unknown product."""
        ...

    async def mark_sold(self, order_id: int, product_id: int) -> None: ...

    async def mark_sold_many(self, items: Sequence[tuple[int, int]]) -> int:
        """Held (order, product) reservations of paid orders marked sold, in as few statements as the
        servers they are on; returns how many were held."""
        ...

    async def expired(self, shard: int, now: datetime, limit: int) -> list[tuple[int, int]]:
        """(order id, product id) of held reservations past their expiry on one shard."""
        ...


BeginOutcome = Literal["new", "replay", "in_use", "reused", "resume"]


@dataclass(frozen=True)
class Begun:
    outcome: BeginOutcome
    order_id: int
    response: StoredResponse | None = None  # for "replay"


class Orders(Protocol):
    """Orders, their items, idempotency keys and the outbox, all on the buyer's shard. Each call
    that writes is one statement: a checkout's steps cost one round trip each."""

    async def begin(self, user: str, key: str, fingerprint: str, lease_s: float) -> Begun:
        """Claim the key for a checkout: a new order id, the stored answer of a finished one, or
        "in_use"/"reused"; "resume" when an earlier attempt's lease ran out unfinished."""
        ...

    async def place(self, user: str, key: str, items: Sequence[OrderItem], event: Event, created_at: datetime,
                    answer: StoredResponse | None = None) -> bool:
        """Create the order ``event.order_id`` ``pending`` with its items, its ``order-placed`` event
        and, when given, the key's answer, together; False when the order existed already (a
        resumed checkout), and nothing was written."""
        ...

    async def settle(self, user: str, key: str, status: OrderStatus, failure: str | None, event: Event,
                     answer: StoredResponse | None = None) -> bool:
        """``pending`` -> ``paid``/``failed`` with its event and, when given, the key's answer, together;
        False when the order was not pending (a sweeper and a retry may race), and nothing was written."""
        ...

    async def finish(self, user: str, key: str, response: StoredResponse) -> None:
        """Store the answer the key replays from now on."""
        ...

    async def let_go(self, user: str, key: str) -> None:
        """End the key's lease without an answer: a checkout that could not finish, so that a
        retry resumes it at once instead of getting ``in_use``."""
        ...

    async def get(self, order_id: int) -> Order | None: ...

    async def list_for(self, user: str, before: int | None, limit: int) -> list[Order]: ...

    async def stuck(self, shard: int, older_than: datetime, limit: int) -> list[Order]:
        """Orders still ``pending`` that were created before ``older_than``."""
        ...

    async def key_expired(self, order_id: int, now: datetime) -> bool | None:
        """Whether the checkout that took ``order_id`` has let go of its key (lease over, or done);
        None when no key names the order."""
        ...


ChargeStatus = Literal["captured", "declined", "voided"]


@dataclass(frozen=True)
class Charge:
    key: str
    status: ChargeStatus
    amount_cents: int


class Payments(Protocol):
    async def charge(self, key: str, amount_cents: int, reference: str) -> Charge:
        """Charge once per key (a retry returns the first outcome); ``voided`` when the key was voided."""
        ...

    async def lookup(self, key: str) -> Charge | None: ...

    async def void(self, key: str) -> Charge:
        """Make sure no charge under ``key`` will ever be captured; returns the charge if one was."""
        ...


class Carts(Protocol):
    async def set_quantity(self, user: str, product_id: int, quantity: int, max_lines: int) -> bool:
        """False when the cart is full (a new line past ``max_lines``)."""
        ...

    async def lines(self, user: str) -> list[Line]: ...

    async def clear(self, user: str) -> None: ...


class ProductCache(Protocol):
    async def get(self, product_id: int) -> dict | None: ...

    async def put(self, product: Product) -> None: ...


@dataclass(frozen=True)
class GateAnswer:
    """``pass``: the units were taken for this checkout; ``known``: this key passed before (a retry:
    let it through to its stored answer, nothing taken); ``sold_out``: refused, nothing taken
    (``products`` names the one short); ``unloaded``: the counters of ``products`` are missing
    (:meth:`StockGate.load` them, then ask again)."""

    verdict: Literal["pass", "known", "sold_out", "unloaded"]
    products: tuple[int, ...] = ()


class StockGate(Protocol):
    """The redis-gate strategy: counters in front of the hot rows turn losers away before any of
    them reaches PostgreSQL (one Redis call each). The database stays the truth: the gate may let
    through someone the database then refuses, never the reverse once loaded."""

    async def take(self, user: str, key: str, lines: Sequence[Line]) -> GateAnswer: ...

    async def load(self, product_id: int, available: int) -> None: ...

    async def give_back(self, user: str, key: str, lines: Sequence[Line]) -> None:
        """A checkout let through did not take its units in the database: return them, forget the key."""
        ...

    async def restock(self, product_id: int, quantity: int) -> None:
        """Stock returned to the shelf (a compensation, an expired reservation)."""
        ...
