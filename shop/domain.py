"""The shop's pure logic: products, carts, orders, the checkout request and its errors. No I/O."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

import orjson

from services.errors import Conflict, InvalidInput, NotFound, PaymentRequired

MAX_NAME = 200
MAX_CATEGORY = 64
MAX_PRICE_CENTS = 10_000_000_00  # ten million in currency units: anything above is a typo
MAX_STOCK = 1_000_000_000
BLANK = " \t\n\r"  # what makes a name blank (the API's schema states the same)
MAX_QUANTITY = 100  # of one product in one order or cart line
MAX_PAGE = 100  # products in one listing page


class OutOfStock(Conflict):
    code = "out_of_stock"

    def __init__(self, product_id: int, wanted: int) -> None:
        super().__init__(f"product {product_id} has fewer than {wanted} in stock")
        self.product_id = product_id


class PaymentDeclined(PaymentRequired):
    code = "payment_declined"


class PaymentNotTaken(PaymentRequired):
    """The provider did not answer and the charge was voided: the order failed, nothing was charged."""

    code = "payment_not_taken"


class IdempotencyKeyReused(Conflict):
    """A 409, not a 422: the request is well formed, and whether its key is already bound to another
    body is the server's state, which no request schema can state (the IETF idempotency-key draft
    suggests 422; a fuzzer, rightly, reads a 422 as a schema-valid request refused for its shape)."""

    code = "idempotency_key_reused"


class IdempotencyKeyInUse(Conflict):
    code = "idempotency_key_in_use"


class UnknownProduct(NotFound):
    def __init__(self, product_id: int | str) -> None:
        super().__init__(f"no product {product_id}")


class OrderStatus(str, Enum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"


@dataclass(frozen=True)
class NewProduct:
    name: str
    category: str
    price_cents: int
    stock: int

    def __post_init__(self) -> None:
        if not self.name.strip(BLANK) or len(self.name) > MAX_NAME:
            raise InvalidInput(f"name must be 1-{MAX_NAME} characters, not blank", code="invalid_name")
        if not self.category.strip(BLANK) or len(self.category) > MAX_CATEGORY:
            raise InvalidInput(f"category must be 1-{MAX_CATEGORY} characters, not blank", code="invalid_category")
        if not 0 <= self.price_cents <= MAX_PRICE_CENTS:
            raise InvalidInput(f"price_cents must be 0-{MAX_PRICE_CENTS}", code="invalid_price")
        if not 0 <= self.stock <= MAX_STOCK:
            raise InvalidInput(f"stock must be 0-{MAX_STOCK}", code="invalid_stock")
        if "\x00" in self.name or "\x00" in self.category:
            raise InvalidInput("name and category may not contain NUL", code="invalid_name")


@dataclass(frozen=True)
class Product:
    id: int
    name: str
    category: str
    price_cents: int
    available: int  # stock that can be bought now
    reserved: int = 0  # held by checkouts in flight
    sold: int = 0

    def public(self) -> dict:
        return {"id": str(self.id), "name": self.name, "category": self.category,
                "price_cents": self.price_cents, "stock": self.available}


@dataclass(frozen=True)
class Line:
    """A product and a quantity: a cart line or an item of a checkout."""

    product_id: int
    quantity: int


def merge_lines(lines: Iterable[Line], max_quantity: int) -> tuple[Line, ...]:
    """One line per product (quantities added), in product order: reservations are then always
    taken in the same order, whoever checks out. The bound is per line given, as the API's schema
    states it (a sum over repeated lines is a rule no schema can express)."""
    total: dict[int, int] = {}
    for line in lines:
        if not 1 <= line.quantity <= max_quantity:
            raise InvalidInput(f"every item needs a quantity of 1-{max_quantity}", code="invalid_quantity")
        total[line.product_id] = total.get(line.product_id, 0) + line.quantity
    return tuple(Line(p, q) for p, q in sorted(total.items()))


@dataclass(frozen=True)
class OrderItem:
    product_id: int
    quantity: int
    price_cents: int

    def public(self) -> dict:
        return {"product_id": str(self.product_id), "quantity": self.quantity, "price_cents": self.price_cents}


@dataclass(frozen=True)
class Order:
    id: int
    user: str
    status: OrderStatus
    items: tuple[OrderItem, ...]
    created_at: datetime
    idempotency_key: str
    failure: str | None = None

    @property
    def total_cents(self) -> int:
        return sum(i.price_cents * i.quantity for i in self.items)

    def public(self) -> dict:
        body = {"order_id": str(self.id), "status": self.status.value, "total_cents": self.total_cents,
                "items": [i.public() for i in self.items], "created_at": self.created_at.isoformat()}
        if self.failure:
            body["failure"] = self.failure
        return body


def request_fingerprint(body: object) -> str:
    """What "the same request" means for an idempotency key: the body's canonical JSON, hashed."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True)
class StoredResponse:
    """A checkout's answer as the idempotency key keeps it, replayed to every retry."""

    status: int
    body: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """An order event as it goes through the outbox: its id deduplicates it downstream."""

    event_id: str
    topic: str
    order_id: int
    payload: dict
