"""The shop's use cases: catalog, cart, orders; checkout itself is the saga (:mod:`shop.saga`)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from services.consistency import FROM_PRIMARY, STALE_OK, ReadConsistency
from services.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from services.logging import get_logger
from shop.config import ShopSettings
from shop.domain import MAX_PAGE, MAX_QUANTITY, Line, NewProduct, Order, Product, UnknownProduct, merge_lines
from shop.ports import CacheUnavailable, Carts, Catalog, Orders, ProductCache, ProductQuery
from shop.scatter import Listing, decode_cursor, scatter_gather
from shop.sharding import bucket_of_id

log = get_logger(__name__)


class ShopService:
    def __init__(self, settings: ShopSettings, catalog: Catalog, carts: Carts, cache: ProductCache,
                 orders: Orders) -> None:
        self._settings = settings
        self._catalog = catalog
        self._carts = carts
        self._cache = cache
        self._orders = orders
        self.cache_hits = 0
        self.cache_misses = 0

    # --- catalog ---------------------------------------------------------------------------
    async def create_product(self, user: str, product: NewProduct) -> Product:
        if user not in self._settings.admin_users:
            raise Forbidden(f"only admins may create products ({user!r} is not one)", code="not_admin")
        # Products spread evenly over the buckets; the id then carries its bucket.
        created = await self._catalog.create(random.randrange(self._settings.buckets), product)
        await self._cache_put(created)
        return created

    async def read_token(self, product_id: int) -> str | None:
        """What the creator may send back to read the product from a replica of its shard (read-your-
        writes); None without replicas, or when the primary cannot say (the create itself succeeded)."""
        try:
            return await self._catalog.commit_lsn(product_id)
        except Unavailable:
            return None

    async def product(self, product_id: int, consistency: ReadConsistency = STALE_OK) -> Product:
        """The page: name, category and price from the cache (cache-aside); stock always live, from a
        replica of the product's shard unless the reader asks for more (a page may lag its stock)."""
        page = None
        try:
            page = await self._cache.get(product_id)
        except CacheUnavailable:
            pass
        if page is not None:
            self.cache_hits += 1
            live = await self._catalog.get(product_id, consistency)  # one primary-key read on its shard
            if live is None:
                raise UnknownProduct(product_id)
            return Product(product_id, page["name"], page["category"], page["price_cents"], live.available)
        self.cache_misses += 1
        found = await self._catalog.get(product_id, consistency)
        if found is None:
            raise UnknownProduct(product_id)
        await self._cache_put(found)
        return found

    async def _cache_put(self, product: Product) -> None:
        try:
            await self._cache.put(product)
        except CacheUnavailable:
            pass  # the page is served from the database until Redis is back

    async def list_products(self, query: ProductQuery, cursor: str | None,
                            consistency: ReadConsistency = STALE_OK) -> Listing:
        if not 1 <= query.limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be 1-{MAX_PAGE}", code="invalid_limit")
        if cursor:
            query = ProductQuery(query.category, query.text, query.min_price, query.max_price,
                                 decode_cursor(cursor), query.limit)
        # A read-your-writes token names a position in one server's WAL; a listing reads every shard,
        # where that position means nothing: such a listing reads the primaries.
        if consistency.after_lsn:
            consistency = FROM_PRIMARY
        return await scatter_gather(self._catalog, query, self._settings.scatter_deadline_s, consistency)

    # --- cart ------------------------------------------------------------------------------
    async def set_cart_line(self, user: str, product_id: int, quantity: int) -> list[dict]:
        if not 0 <= quantity <= MAX_QUANTITY:
            raise InvalidInput(f"quantity must be 0-{MAX_QUANTITY} (0 removes the line)",
                               code="invalid_quantity")
        if quantity and await self._catalog.get(product_id) is None:
            raise UnknownProduct(product_id)
        if not await self._carts.set_quantity(user, product_id, quantity, self._settings.cart_max_lines):
            raise InvalidInput(f"a cart holds at most {self._settings.cart_max_lines} products", code="cart_full")
        return await self.cart(user)

    async def cart(self, user: str) -> list[dict]:
        """Lines with today's prices (from the product cache; checkout reads them again)."""
        lines = []
        for line in await self._carts.lines(user):
            try:
                price = (await self.product(line.product_id)).price_cents
            except UnknownProduct:
                continue
            lines.append({"product_id": str(line.product_id), "quantity": line.quantity, "price_cents": price})
        return lines

    async def checkout_lines(self, user: str, items: Sequence[Line] | None) -> tuple[Line, ...]:
        """What a checkout buys: the items given, or the cart; merged per product, never empty."""
        lines = items if items is not None else await self._carts.lines(user)
        if not lines:
            # A valid request the cart's state refuses (as a 409 says), not a malformed one.
            raise Conflict("nothing to buy: the cart is empty and no items were given", code="cart_empty")
        for line in lines:
            if bucket_of_id(line.product_id) >= self._settings.buckets:
                raise UnknownProduct(line.product_id)
        return merge_lines(lines, MAX_QUANTITY)

    async def clear_cart(self, user: str) -> None:
        try:
            await self._carts.clear(user)
        except CacheUnavailable:
            log.warning("cart_not_cleared", user=user)

    # --- orders ----------------------------------------------------------------------------
    async def order(self, user: str, order_id: int) -> Order:
        found = await self._orders.get(order_id)
        # Another user's order is "not found", not "forbidden": ids must not reveal what exists.
        if found is None or found.user != user:
            raise NotFound(f"no order {order_id}")
        return found

    async def orders(self, user: str, before: int | None, limit: int) -> list[Order]:
        return await self._orders.list_for(user, before, limit)
