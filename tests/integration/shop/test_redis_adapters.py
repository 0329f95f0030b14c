"""Carts, the product-page cache and the flash-sale stock gate against the lab's Redis."""

from __future__ import annotations

import asyncio
import random

import pytest

from services.clients.redis import RedisClient
from shop.adapters.redis import RedisCarts, RedisProductCache, RedisStockGate
from shop.domain import Line, Product
from shop.ports import CacheUnavailable
from shop.sharding import compose_id
from tests.integration.shop.helpers import tag
from tests.support.lab import free_port_block


def _product_id() -> int:
    return compose_id(random.randrange(1, 1 << 40), random.randrange(256), random.randrange(4096))


async def test_a_cart_keeps_one_line_per_product_up_to_its_size(redis):
    carts = RedisCarts(redis, ttl_s=120)
    user = f"it-u-{tag()}"
    a, b, c = sorted(_product_id() for _ in range(3))
    try:
        assert await carts.lines(user) == []
        assert await carts.set_quantity(user, b, 2, max_lines=2)
        assert await carts.set_quantity(user, a, 1, max_lines=2)
        assert await carts.lines(user) == [Line(a, 1), Line(b, 2)]
        assert not await carts.set_quantity(user, c, 1, max_lines=2)  # a new line in a full cart
        assert await carts.set_quantity(user, b, 5, max_lines=2)  # changing a line is fine
        assert await carts.set_quantity(user, a, 0, max_lines=2)  # 0 removes
        assert await carts.set_quantity(user, a, 0, max_lines=2)  # removing twice is fine
        assert await carts.set_quantity(user, c, 3, max_lines=2)  # room again
        assert await carts.lines(user) == [Line(b, 5), Line(c, 3)]
        assert 0 < await redis().ttl(f"cart:{user}") <= 120
        await carts.clear(user)
        assert await carts.lines(user) == []
    finally:
        await redis().delete(f"cart:{user}")


async def test_the_product_cache_keeps_the_page_but_never_the_stock(redis):
    cache = RedisProductCache(redis, ttl_s=60)
    product = Product(_product_id(), f"it-{tag()}", "it-cat", 1999, available=7)
    try:
        assert await cache.get(product.id) is None
        await cache.put(product)
        assert await cache.get(product.id) == {"name": product.name, "category": "it-cat", "price_cents": 1999}
        assert 0 < await redis().ttl(f"product:{product.id}") <= 60
    finally:
        await redis().delete(f"product:{product.id}")


async def test_the_stock_gate_lets_through_no_more_than_it_was_loaded_with(redis):
    gate = RedisStockGate(redis)
    product_id, other = _product_id(), _product_id()
    try:
        assert await gate.take(product_id, 1, None) is None  # not loaded yet
        await gate.give_back(product_id, 3)  # giving back to an unloaded gate does not load it
        assert await gate.take(product_id, 1, None) is None
        assert await gate.take(product_id, 3, 5) is True  # loaded with 5, 3 taken
        assert await gate.take(product_id, 3, 100) is False  # already loaded: 2 left, not 100
        assert await gate.take(product_id, 2, None) is True
        assert await gate.take(product_id, 1, None) is False
        await gate.give_back(product_id, 1)
        assert await gate.take(product_id, 1, None) is True
        assert await gate.take(product_id, 1, None) is False

        verdicts = await asyncio.gather(*(gate.take(other, 1, 10) for _ in range(50)))
        assert verdicts.count(True) == 10 and verdicts.count(False) == 40
        assert int(await redis().get(f"gate:{other}")) == 0
    finally:
        await redis().delete(f"gate:{product_id}", f"gate:{other}")


async def test_a_redis_that_does_not_answer_is_cache_unavailable():
    port = free_port_block(1, start=23500)  # nothing listens there
    client = RedisClient(f"redis://127.0.0.1:{port}/0", timeout_s=0.25)
    await client.start()

    def down():
        return client.redis

    try:
        with pytest.raises(CacheUnavailable):
            await RedisCarts(down, ttl_s=60).lines("anyone")
        with pytest.raises(CacheUnavailable):
            await RedisProductCache(down, ttl_s=60).get(1)
        with pytest.raises(CacheUnavailable):
            await RedisStockGate(down).take(1, 1, 5)
    finally:
        await client.stop()
