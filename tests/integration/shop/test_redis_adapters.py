"""Carts, the product-page cache and the flash-sale stock gate against the lab's Redis."""

from __future__ import annotations

import asyncio
import random

import pytest

from services.clients.redis import RedisClient
from shop.adapters.redis import RedisCarts, RedisProductCache, RedisStockGate
from shop.domain import Line, Product
from shop.ports import CacheUnavailable, GateAnswer
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


async def test_the_stock_gate_loads_once_takes_once_per_key_and_gives_back_once(redis):
    """The gate's bookkeeping, without a refusal (see the next test for those)."""
    gate = RedisStockGate(redis)
    product_id, other = _product_id(), _product_id()
    user = f"it-u-{tag()}"
    a, b, c = (f"k-{tag()}" for _ in range(3))

    async def left(pid: int) -> int | None:
        value = await redis().get(f"gate:{pid}")
        return None if value is None else int(value)

    try:
        assert await gate.take(user, a, [Line(product_id, 1)]) == GateAnswer("unloaded", (product_id,))
        await gate.restock(product_id, 3)  # stock back to an unloaded gate does not load it
        assert await left(product_id) is None
        await gate.load(product_id, 5)
        await gate.load(product_id, 100)  # already loaded: loading again changes nothing
        assert await gate.take(user, a, [Line(other, 1), Line(product_id, 1)]) == GateAnswer("unloaded", (other,))
        assert await left(product_id) == 5  # nothing taken while a counter was missing
        assert await gate.take(user, a, [Line(product_id, 3)]) == GateAnswer("pass")
        assert await gate.take(user, a, [Line(product_id, 3)]) == GateAnswer("known")  # its retry takes nothing
        assert await left(product_id) == 2
        await gate.load(other, 4)
        assert await gate.take(user, b, [Line(other, 1), Line(product_id, 2)]) == GateAnswer("pass")
        assert (await left(other), await left(product_id)) == (3, 0)
        await gate.give_back(user, b, [Line(other, 1), Line(product_id, 2)])  # b took nothing in the database
        await gate.give_back(user, b, [Line(other, 1), Line(product_id, 2)])  # once per key
        assert (await left(other), await left(product_id)) == (4, 2)
        await gate.restock(product_id, 1)  # a reservation released
        assert await left(product_id) == 3
        verdicts = await asyncio.gather(*(gate.take(user, f"{c}-{i}", [Line(other, 1)]) for i in range(4)))
        assert verdicts == [GateAnswer("pass")] * 4 and await left(other) == 0
    finally:
        passes = [k async for k in redis().scan_iter(match=f"gate-pass:{user}:*")]
        await redis().delete(f"gate:{product_id}", f"gate:{other}", *passes)


async def test_the_stock_gate_lets_through_no_more_than_it_was_loaded_with(redis):
    gate = RedisStockGate(redis)
    product_id, other = _product_id(), _product_id()
    user = f"it-u-{tag()}"
    keys = [f"k-{tag()}" for _ in range(6)]
    one, three, two = [Line(product_id, 1)], [Line(product_id, 3)], [Line(product_id, 2)]
    try:
        assert await gate.take(user, keys[0], one) == GateAnswer("unloaded", (product_id,))  # not loaded yet
        await gate.restock(product_id, 3)  # stock back to an unloaded gate does not load it
        assert await gate.take(user, keys[0], one) == GateAnswer("unloaded", (product_id,))
        await gate.load(product_id, 5)
        assert await gate.take(user, keys[0], three) == GateAnswer("pass")  # loaded with 5, 3 taken
        assert await gate.take(user, keys[0], three) == GateAnswer("known")  # its retry: nothing taken again
        await gate.load(product_id, 100)  # already loaded: 2 left, not 100
        assert await gate.take(user, keys[1], three) == GateAnswer("sold_out", (product_id,))
        assert await gate.take(user, keys[2], two) == GateAnswer("pass")
        assert await gate.take(user, keys[3], one) == GateAnswer("sold_out", (product_id,))
        await gate.give_back(user, keys[2], two)  # that checkout took nothing in the database after all
        await gate.give_back(user, keys[2], two)  # once per key: 2 left, not 4
        assert await gate.take(user, keys[3], two) == GateAnswer("pass")
        assert await gate.take(user, keys[4], one) == GateAnswer("sold_out", (product_id,))
        await gate.restock(product_id, 1)  # a reservation released
        assert await gate.take(user, keys[4], one) == GateAnswer("pass")
        assert int(await redis().get(f"gate:{product_id}")) == 0

        # Several products: all taken or none.
        await gate.load(other, 10)
        assert await gate.take(user, keys[5], [Line(other, 1), Line(product_id, 1)]) == GateAnswer(
            "sold_out", (product_id,))
        assert int(await redis().get(f"gate:{other}")) == 10
        verdicts = await asyncio.gather(*(gate.take(user, f"k-{tag()}", [Line(other, 1)]) for _ in range(50)))
        assert verdicts.count(GateAnswer("pass")) == 10
        assert verdicts.count(GateAnswer("sold_out", (other,))) == 40
        assert int(await redis().get(f"gate:{other}")) == 0
    finally:
        passes = [k async for k in redis().scan_iter(match=f"gate-pass:{user}:*")]
        await redis().delete(f"gate:{product_id}", f"gate:{other}", *passes)


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
            await RedisStockGate(down).take("anyone", "k", [Line(1, 1)])
    finally:
        await client.stop()
