"""Carts, the product-page cache and the flash-sale stock gate, on Redis.

Keys: ``cart:<user>`` (hash: product id -> quantity, expires ``cart_ttl_s`` after the last
change), ``product:<id>`` (the page's static part as JSON; stock is never cached: it is read
live, so a page never promises what is sold), ``gate:<id>`` (the redis-gate strategy's counter) and
``gate-pass:<user>:<key>`` (a checkout the gate let through).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shop.domain import Line, Product
from shop.ports import CacheUnavailable, GateAnswer

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
# The gate, one call per checkout. KEYS[1] marks a key let through (so that its retries reach
# their stored answer after the sell-out); KEYS[2..] are the products' counters, ARGV[2..] the
# quantities. Returns 2 (this key passed before: nothing taken), 1 (taken), 1 - i (not enough of
# the product at KEYS[i], i >= 2: 0 for the first line, -1 for the second, ...), or the positions of
# the products whose counters are not loaded.
_TAKE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 2 end
local missing = {}
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then missing[#missing + 1] = i - 1 end
end
if #missing > 0 then return missing end
for i = 2, #KEYS do
  if tonumber(redis.call('GET', KEYS[i])) < tonumber(ARGV[i]) then return 1 - i end
end
for i = 2, #KEYS do redis.call('DECRBY', KEYS[i], ARGV[i]) end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return 1
"""
# Units back, once per key let through (only to loaded counters: INCRBY on a missing key would
# create one that says too little).
_GIVE_BACK = """
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('INCRBY', KEYS[i], ARGV[i]) end
end
return 1
"""
_RESTOCK = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end return 0"
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
    """Counters per product in front of the database (see :class:`shop.ports.StockGate`), each call
    one registered script (EVALSHA)."""

    # How long a key let through is remembered: a retry of a winning checkout after the sell-out
    # reaches its stored answer within this; later, the gate answers it as sold out.
    PASS_TTL_S = 24 * 3600

    def __init__(self, redis: Callable[[], Redis]) -> None:
        super().__init__(redis)
        self._scripts: dict[str, object] = {}

    def _script(self, name: str, source: str):
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self._redis().register_script(source)
        return script

    @staticmethod
    def _keys(user: str, key: str, lines) -> list[str]:
        return [f"gate-pass:{user}:{key}", *(f"gate:{line.product_id}" for line in lines)]

    async def take(self, user: str, key: str, lines) -> GateAnswer:
        script = self._script("take", _TAKE)
        verdict = await self._call(lambda r: script(keys=self._keys(user, key, lines),
                                                    args=[self.PASS_TTL_S, *(line.quantity for line in lines)],
                                                    client=r))
        if isinstance(verdict, list):
            return GateAnswer("unloaded", tuple(lines[int(i) - 1].product_id for i in verdict))
        verdict = int(verdict)
        if verdict <= 0:
            return GateAnswer("sold_out", (lines[-verdict - 1].product_id,))
        return GateAnswer("known" if verdict == 2 else "pass")

    async def load(self, product_id: int, available: int) -> None:
        await self._call(lambda r: r.set(f"gate:{product_id}", available, nx=True, ex=_GATE_TTL_S))

    async def give_back(self, user: str, key: str, lines) -> None:
        script = self._script("give_back", _GIVE_BACK)
        await self._call(lambda r: script(keys=self._keys(user, key, lines),
                                          args=[0, *(line.quantity for line in lines)], client=r))

    async def restock(self, product_id: int, quantity: int) -> None:
        script = self._script("restock", _RESTOCK)
        await self._call(lambda r: script(keys=[f"gate:{product_id}"], args=[quantity], client=r))
