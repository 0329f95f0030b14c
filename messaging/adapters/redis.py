"""Presence and routing on Redis, and the per-user send limit (the kit's token bucket).

Keys: ``routes:<user>`` (hash: gateway -> open connections there), ``gw:users:<gateway>`` (set:
users with a connection there), ``gw:alive:<gateway>`` (refreshed each heartbeat, expires
``presence_ttl_s`` after the last one) and ``gw:all``. A route through a gateway whose alive key
has expired does not count, so a SIGKILLed gateway's users go offline within the TTL; the
reaper then removes its routes and tells peers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from messaging.ports import RegistryUnavailable
from services.ratelimit import LimiterUnavailable, TokenBucket

_DOWN = (RedisError, OSError, asyncio.TimeoutError)
ALL = "gw:all"

# True (1) when the user had no connection on any live gateway before this one.
_CONNECT = """
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SADD', 'gw:all', ARGV[1])
if n > 1 then return 0 end
local routes = redis.call('HGETALL', KEYS[1])
for i = 1, #routes, 2 do
  if routes[i] ~= ARGV[1] and tonumber(routes[i + 1]) > 0
     and redis.call('EXISTS', 'gw:alive:' .. routes[i]) == 1 then return 0 end
end
return 1
"""
# True (1) when the user has no connection on any live gateway after this one closed.
_DISCONNECT = """
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n > 0 then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
local routes = redis.call('HGETALL', KEYS[1])
for i = 1, #routes, 2 do
  if tonumber(routes[i + 1]) > 0 and redis.call('EXISTS', 'gw:alive:' .. routes[i]) == 1 then return 0 end
end
return 1
"""


def _routes(user: str) -> str:
    return f"routes:{user}"


def _users(gateway: str) -> str:
    return f"gw:users:{gateway}"


def _alive(gateway: str) -> str:
    return f"gw:alive:{gateway}"


class RedisRegistry:
    def __init__(self, redis: Callable[[], Redis]) -> None:
        self._redis = redis

    async def _call(self, coro):
        try:
            return await coro
        except _DOWN as exc:
            raise RegistryUnavailable(str(exc)[:200]) from exc

    async def connected(self, gateway: str, user: str) -> bool:
        r = self._redis()
        return bool(await self._call(r.eval(_CONNECT, 2, _routes(user), _users(gateway), gateway, user)))

    async def disconnected(self, gateway: str, user: str) -> bool:
        r = self._redis()
        return bool(await self._call(r.eval(_DISCONNECT, 2, _routes(user), _users(gateway), gateway, user)))

    async def heartbeat(self, gateway: str, ttl_s: float) -> bool:
        async def beat() -> bool:
            async with self._redis().pipeline(transaction=True) as pipe:
                pipe.exists(_alive(gateway))
                pipe.set(_alive(gateway), "1", px=int(ttl_s * 1000))
                pipe.sadd(ALL, gateway)
                was_alive, *_ = await pipe.execute()
            return bool(was_alive)

        return await self._call(beat())

    async def _route_table(self, users: Sequence[str]) -> dict[str, list[str]]:
        async with self._redis().pipeline(transaction=False) as pipe:
            for user in users:
                pipe.hgetall(_routes(user))
            tables = await pipe.execute()
        by_gateway: dict[str, list[str]] = {}
        for user, table in zip(users, tables):
            for gateway, count in table.items():
                if int(count) > 0:
                    by_gateway.setdefault(gateway.decode(), []).append(user)
        if not by_gateway:
            return {}
        gateways = list(by_gateway)
        async with self._redis().pipeline(transaction=False) as pipe:
            for gateway in gateways:
                pipe.exists(_alive(gateway))
            flags = await pipe.execute()
        return {g: by_gateway[g] for g, up in zip(gateways, flags) if up}

    async def routes(self, users: Sequence[str]) -> dict[str, list[str]]:
        return await self._call(self._route_table(users))

    async def online(self, users: Sequence[str]) -> dict[str, bool]:
        table = await self._call(self._route_table(users))
        reachable = {u for us in table.values() for u in us}
        return {u: u in reachable for u in users}

    async def dead_gateways(self) -> list[str]:
        async def find() -> list[str]:
            gateways = sorted(g.decode() for g in await self._redis().smembers(ALL))
            if not gateways:
                return []
            async with self._redis().pipeline(transaction=False) as pipe:
                for gateway in gateways:
                    pipe.exists(_alive(gateway))
                flags = await pipe.execute()
            return [g for g, up in zip(gateways, flags) if not up]

        return await self._call(find())

    async def forget_gateway(self, gateway: str) -> list[str]:
        async def forget() -> list[str]:
            r = self._redis()
            users = sorted(u.decode() for u in await r.smembers(_users(gateway)))
            async with r.pipeline(transaction=False) as pipe:
                for user in users:
                    pipe.hdel(_routes(user), gateway)
                pipe.delete(_users(gateway))
                pipe.srem(ALL, gateway)
                await pipe.execute()
            return users

        users = await self._call(forget())
        if not users:
            return []
        status = await self.online(users)
        return [u for u in users if not status[u]]


class RedisSendLimiter:
    def __init__(self, redis: Callable[[], Redis], per_second: float, burst: int) -> None:
        self._bucket = TokenBucket(redis, per_second=per_second, burst=burst, prefix="sendlimit")

    async def acquire(self, user: str) -> float:
        try:
            return await self._bucket.acquire(user)
        except LimiterUnavailable as exc:
            raise RegistryUnavailable(str(exc)) from exc
