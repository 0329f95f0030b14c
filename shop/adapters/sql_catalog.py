"""Products and their stock on the product's shard (PostgreSQL), behind the shard router.

Three inventory strategies for the same reservation, compared by the flash-sale experiment:
- ``conditional-update``: one statement takes the stock only if there is enough
  (``UPDATE ... WHERE available >= q``) and records the reservation; the row is locked for the
  length of that statement's transaction only.
- ``select-for-update``: read the row locked, decide in the application, then update: the lock
  is held across three round trips, so the hot row serialises three times longer.
- ``redis-gate``: a Redis counter in front (see :mod:`shop.adapters.redis`), then the conditional
  update for those it let through; losers never reach the row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.logging import get_logger
from shop.adapters.shards import ShardRouter
from shop.config import InventoryStrategy
from shop.domain import Line, NewProduct, OutOfStock, Product, UnknownProduct
from shop.ports import ProductQuery, Reserved, ShardPage
from shop.sharding import bucket_of_id

log = get_logger(__name__)

_COLUMNS = "id, name, category, price_cents, available"
_INSERT = text(
    "INSERT INTO products (id, bucket, name, category, price_cents, available, initial_stock) "
    "VALUES (shop_next_id(CAST(:b AS integer)), CAST(:b AS integer), :name, :category, :price, :stock, :stock) "
    "RETURNING id")
_GET = text(f"SELECT {_COLUMNS} FROM products WHERE id = :id")
# The reservation and the decrement in one statement. A reservation this order already holds is
# not taken twice (the NOT EXISTS); one it released (an attempt that compensated, then a retry with
# the same key) is taken again. When the statement takes nothing the transaction is rolled back,
# so a lost race on the primary key can never leave a decrement behind.
_RESERVE = text(
    "WITH taken AS (UPDATE products SET available = available - CAST(:q AS integer) "
    "WHERE id = :p AND available >= CAST(:q AS integer) AND NOT EXISTS (SELECT 1 FROM reservations "
    "WHERE order_id = :o AND product_id = :p AND status <> 'released') RETURNING price_cents) "
    "INSERT INTO reservations (order_id, product_id, bucket, quantity, price_cents, status, expires_at) "
    "SELECT :o, :p, :b, :q, price_cents, 'held', :exp FROM taken "
    "ON CONFLICT (order_id, product_id) DO UPDATE SET status = 'held', quantity = EXCLUDED.quantity, "
    "price_cents = EXCLUDED.price_cents, expires_at = EXCLUDED.expires_at WHERE reservations.status = 'released' "
    "RETURNING price_cents")
_LOCK_ROW = text("SELECT available, price_cents FROM products WHERE id = :p FOR UPDATE")
_TAKE = text("UPDATE products SET available = available - :q WHERE id = :p")
_RECORD = text(
    "INSERT INTO reservations (order_id, product_id, bucket, quantity, price_cents, status, expires_at) "
    "VALUES (:o, :p, :b, :q, :price, 'held', :exp) "
    "ON CONFLICT (order_id, product_id) DO UPDATE SET status = 'held', quantity = EXCLUDED.quantity, "
    "price_cents = EXCLUDED.price_cents, expires_at = EXCLUDED.expires_at WHERE reservations.status = 'released' "
    "RETURNING price_cents")
_PRIOR = text("SELECT quantity, price_cents, status FROM reservations WHERE order_id = :o AND product_id = :p")
_PRIOR_LOCKED = text("SELECT status FROM reservations WHERE order_id = :o AND product_id = :p FOR UPDATE")
_EXISTS = text("SELECT available FROM products WHERE id = :p")
_RELEASE = text(
    "WITH r AS (UPDATE reservations SET status = 'released' WHERE order_id = :o AND product_id = :p "
    "AND status = 'held' RETURNING quantity) "
    "UPDATE products SET available = available + r.quantity FROM r WHERE products.id = :p RETURNING r.quantity")
_SOLD = text("UPDATE reservations SET status = 'sold' WHERE order_id = :o AND product_id = :p AND status = 'held' "
             "RETURNING quantity")
_EXPIRED = text("SELECT order_id, product_id FROM reservations WHERE status = 'held' AND expires_at < :now "
                "AND bucket IN (SELECT bucket FROM owned_buckets) ORDER BY expires_at LIMIT :n")


class _NotTaken(Exception):
    """Raised inside a reservation's transaction to roll it back when it took nothing."""


def product_from(row) -> Product:
    return Product(row.id, row.name, row.category, row.price_cents, row.available)


class SqlCatalog:
    def __init__(self, router: ShardRouter) -> None:
        self._router = router

    def shard_count(self) -> int:
        return self._router.shard_count()

    async def create(self, bucket: int, product: NewProduct) -> Product:
        async def q(conn: AsyncConnection) -> int:
            return (await conn.execute(_INSERT, {"b": bucket, "name": product.name, "category": product.category,
                                                 "price": product.price_cents, "stock": product.stock})).scalar_one()

        new_id = await self._router.write(bucket, q)
        return Product(new_id, product.name, product.category, product.price_cents, product.stock)

    async def get(self, product_id: int) -> Product | None:
        async def q(conn: AsyncConnection) -> Product | None:
            row = (await conn.execute(_GET, {"id": product_id})).first()
            return product_from(row) if row else None

        return await self._router.read(self._router.map.shard_of_id(product_id), q)

    async def search(self, shard: int, query: ProductQuery, deadline_s: float | None = None) -> ShardPage:
        # Only the buckets this server owns: during a move the target has a copy before it owns it,
        # and the source keeps one until the clean-up.
        where, params = ["bucket IN (SELECT bucket FROM owned_buckets)"], {"n": query.limit}
        if query.category is not None:
            where.append("category = :category")
            params["category"] = query.category
        if query.text:
            where.append("name ILIKE :text ESCAPE '\\'")
            escaped = query.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params["text"] = f"%{escaped}%"
        if query.min_price is not None:
            where.append("price_cents >= :min_price")
            params["min_price"] = query.min_price
        if query.max_price is not None:
            where.append("price_cents <= :max_price")
            params["max_price"] = query.max_price
        if query.after is not None:
            where.append("(price_cents, id) > (:after_price, :after_id)")
            params["after_price"], params["after_id"] = query.after
        sql = text(f"SELECT {_COLUMNS} FROM products WHERE {' AND '.join(where)} ORDER BY price_cents, id LIMIT :n")

        async def q(conn: AsyncConnection) -> ShardPage:
            return ShardPage(shard, [product_from(r) for r in (await conn.execute(sql, params)).all()])

        return await self._router.read(shard, q, deadline_s)


class SqlInventory:
    def __init__(self, router: ShardRouter, strategy: InventoryStrategy = "conditional-update") -> None:
        self._router = router
        self._strategy = strategy

    async def reserve(self, order_id: int, line: Line, expires_at: datetime) -> Reserved:
        p, q_ = line.product_id, line.quantity
        params = {"o": order_id, "p": p, "q": q_, "b": bucket_of_id(p), "exp": expires_at}

        async def conditional(conn: AsyncConnection) -> int:
            price = (await conn.execute(_RESERVE, params)).scalar()
            if price is None:
                raise _NotTaken
            return price

        async def locked(conn: AsyncConnection) -> int:
            prior = (await conn.execute(_PRIOR_LOCKED, params)).first()
            if prior is not None and prior.status != "released":
                raise _NotTaken  # held or sold by this order already
            row = (await conn.execute(_LOCK_ROW, params)).first()
            if row is None or row.available < q_:
                raise _NotTaken
            await conn.execute(_TAKE, params)
            await conn.execute(_RECORD, {**params, "price": row.price_cents})
            return row.price_cents

        try:
            price = await self._router.write(params["b"], locked if self._strategy == "select-for-update" else conditional)
        except (_NotTaken, IntegrityError):  # rolled back: nothing was taken
            return await self._explain_refusal(order_id, line)
        return Reserved(p, q_, price)

    async def _explain_refusal(self, order_id: int, line: Line) -> Reserved:
        """Why nothing was taken: a reservation this order holds already (a resumed checkout), no
        stock, or no product. (A reservation it released is taken again by the statement itself.)"""
        async def q(conn: AsyncConnection):
            prior = (await conn.execute(_PRIOR, {"o": order_id, "p": line.product_id})).first()
            exists = (await conn.execute(_EXISTS, {"p": line.product_id})).first()
            return prior, exists

        prior, exists = await self._router.read(self._router.map.shard_of_id(line.product_id), q)
        if prior is not None and prior.status in ("held", "sold"):
            return Reserved(line.product_id, prior.quantity, prior.price_cents, new=False)
        if exists is None:
            raise UnknownProduct(line.product_id)
        raise OutOfStock(line.product_id, line.quantity)

    async def release(self, order_id: int, product_id: int) -> int:
        async def q(conn: AsyncConnection) -> int:
            return (await conn.execute(_RELEASE, {"o": order_id, "p": product_id})).scalar() or 0

        return await self._router.write(bucket_of_id(product_id), q)

    async def available(self, product_id: int) -> int | None:
        async def q(conn: AsyncConnection) -> int | None:
            return (await conn.execute(_EXISTS, {"p": product_id})).scalar()

        return await self._router.read(self._router.map.shard_of_id(product_id), q)

    async def mark_sold(self, order_id: int, product_id: int) -> None:
        async def q(conn: AsyncConnection) -> None:
            if (await conn.execute(_SOLD, {"o": order_id, "p": product_id})).first() is None:
                prior = (await conn.execute(_PRIOR, {"o": order_id, "p": product_id})).first()
                if prior is not None and prior.status == "released":
                    # Paid for stock that went back on the shelf: must never happen (the sweeper
                    # releases only for failed or absent orders); shout rather than hide it.
                    log.error("sold_after_release", order_id=order_id, product_id=product_id)

        await self._router.write(bucket_of_id(product_id), q)

    async def expired(self, shard: int, now: datetime, limit: int) -> list[tuple[int, int]]:
        async def q(conn: AsyncConnection) -> list[tuple[int, int]]:
            return [(r.order_id, r.product_id) for r in (await conn.execute(_EXPIRED, {"now": now, "n": limit})).all()]

        return await self._router.read(shard, q)
