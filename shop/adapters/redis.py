"""Carts, the product-page cache and the flash-sale stock gate, on Redis.

Keys: ``cart:<user>`` (hash: product id -> quantity, expires ``cart_ttl_s`` after the last
change), ``product:<id>`` (the page's static part as JSON; stock is never cached: it is read
live, so a page never promises what is sold), ``gate:<id>`` (the redis-gate strategy's counter).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shop.domain import Line, Product
from shop.ports import CacheUnavailable

_DOWN = (RedisError, OSError, asyncio.TimeoutError)

# Sets a line, refusing a new line past the cart's size; 0 removes. Returns 1, or 0 when full.
_SET_LINE = """
if tonumber(ARGV[2]) == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
# The gate: -1 when the counter is not loaded, else 1 (taken) or 0 (not enough left).
_TAKE = """
local left = redis.call('GET', KEYS[1])
if not left then return -1 end
if tonumber(left) < tonumber(ARGV[1]) then return 0 end
redis.call('DECRBY', KEYS[1], ARGV[1])
return 1
"""
_GATE_TTL_S = 3600


class _RedisAdapter:
    def __init__(self, redis: Callable[[], Redis]) -> None:
        self._redis = redis

    async def _call(self, fn):
        try:
            return await fn(self._redis())
        except _DOWN as exc:
            raise CacheUnavailable(str(exc)[:200]) from exc


class RedisCarts(_RedisAdapter):
    def __init__(self, redis: Callable[[], Redis], ttl_s: int) -> None:
        super().__init__(redis)
        self._ttl_s = ttl_s

    async def set_quantity(self, user: str, product_id: int, quantity: int, max_lines: int) -> bool:
        return bool(await self._call(lambda r: r.eval(_SET_LINE, 1, f"cart:{user}", product_id, quantity,
                                                        self._ttl_s, max_lines)))

    async def lines(self, user: str) -> list[Line]:
        raw = await self._call(lambda r: r.hgetall(f"cart:{user}"))
        return sorted((Line(int(p), int(q)) for p, q in raw.items()), key=lambda line: line.product_id)

    async def clear(self, user: str) -> None:
        await self._call(lambda r: r.delete(f"cart:{user}"))


class RedisProductCache(_RedisAdapter):
    def __init__(self, redis: Callable[[], Redis], ttl_s: int) -> None:
        super().__init__(redis)
        self._ttl_s = ttl_s

    async def get(self, product_id: int) -> dict | None:
        raw = await self._call(lambda r: r.get(f"product:{product_id}"))
        return orjson.loads(raw) if raw else None

    async def put(self, product: Product) -> None:
        page = {"name": product.name, "category": product.category, "price_cents": product.price_cents}
        await self._call(lambda r: r.set(f"product:{product.id}", orjson.dumps(page), ex=self._ttl_s))


class RedisStockGate(_RedisAdapter):
    """A counter per product in front of the database. It may say "yes" to someone the database
    then refuses (the database stays the truth), never the reverse once loaded: stock returned
    to the shelf is given back here too."""

    async def take(self, product_id: int, quantity: int, available: int | None) -> bool | None:
        key = f"gate:{product_id}"
        if available is not None:
            await self._call(lambda r: r.set(key, available, nx=True, ex=_GATE_TTL_S))
        verdict = await self._call(lambda r: r.eval(_TAKE, 1, key, quantity))
        return None if verdict == -1 else bool(verdict)

    async def give_back(self, product_id: int, quantity: int) -> None:
        key = f"gate:{product_id}"
        # Only a loaded counter: INCRBY on a missing key would create one that says too little.
        await self._call(lambda r: r.eval("if redis.call('EXISTS', KEYS[1]) == 1 then "
                                          "return redis.call('INCRBY', KEYS[1], ARGV[1]) end return 0",
                                          1, key, quantity))
