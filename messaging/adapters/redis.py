"""Presence and routing on Redis, the per-user send limit (the kit's token bucket) and the inbox bell.

A send asks Redis once, right after its commit: where the conversation's members are connected
(one script over their routes and the gateways' liveness).

Keys: ``routes:<user>`` (hash: gateway -> open connections there), ``gw:users:<gateway>`` (set:
users with a connection there), ``gw:alive:<gateway>`` (refreshed each heartbeat, expires
``presence_ttl_s`` after the last one) and ``gw:all``. A route through a gateway whose alive key
has expired does not count, so a SIGKILLed gateway's users go offline within the TTL; the
reaper then removes its routes and tells peers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import orjson

from redis.asyncio import Redis
from redis.exceptions import RedisError

from messaging.ports import RegistryUnavailable
from services.tasks import BackgroundLoop

_DOWN = (RedisError, OSError, asyncio.TimeoutError)
ALL = "gw:all"
BELL = "inbox-bell:"  # + gateway: a pub/sub channel

# The routes of the users (ARGV) over live gateways, as JSON {gateway: [users]}, in one round trip.
_ROUTES = """
local routes, alive = {}, {}
for i = 1, #ARGV do
  local table = redis.call('HGETALL', 'routes:' .. ARGV[i])
  for j = 1, #table, 2 do
    local gateway = table[j]
    if tonumber(table[j + 1]) > 0 then
      if alive[gateway] == nil then alive[gateway] = redis.call('EXISTS', 'gw:alive:' .. gateway) == 1 end
      if alive[gateway] then
        if routes[gateway] == nil then routes[gateway] = {} end
        local users = routes[gateway]
        users[#users + 1] = ARGV[i]
      end
    end
  end
end
if next(routes) == nil then return '{}' end
return cjson.encode(routes)
"""

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
        self._routes = None

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

    async def routes(self, users: Sequence[str]) -> dict[str, list[str]]:
        if self._routes is None:
            self._routes = self._redis().register_script(_ROUTES)
        try:
            return orjson.loads(await self._routes(args=list(users), client=self._redis()))
        except _DOWN as exc:
            raise RegistryUnavailable(str(exc)[:200]) from exc

    async def online(self, users: Sequence[str]) -> dict[str, bool]:
        table = await self.routes(users)
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


class RedisInboxBell:
    """:class:`messaging.ports.InboxBell` over Redis pub/sub. A gateway's reader stays awake for
    ``awake_s`` after its last record, so a publisher rings only a gateway it has not rung (or sent
    to) for ``quiet_s`` (< ``awake_s``): under load nobody rings at all."""

    def __init__(self, redis: Callable[[], Redis], quiet_s: float) -> None:
        self._redis = redis
        self._quiet_s = quiet_s
        self._rung: dict[str, float] = {}  # gateway -> when this process last sent it something

    async def ring(self, gateway: str) -> None:
        now = asyncio.get_running_loop().time()
        last = self._rung.get(gateway)
        self._rung[gateway] = now
        if last is not None and now - last < self._quiet_s:
            return
        try:
            await self._redis().publish(BELL + gateway, b"1")
        except _DOWN as exc:
            self._rung.pop(gateway, None)
            raise RegistryUnavailable(str(exc)[:200]) from exc


class BellListener(BackgroundLoop):
    """A gateway's subscription to its bell; survives Redis restarts (it subscribes again, and
    rings once, since a ring may have been missed meanwhile)."""

    transient = _DOWN

    def __init__(self, redis: Callable[[], Redis], gateway: str, on_ring: Callable[[], None]) -> None:
        super().__init__("inbox-bell")
        self._redis = redis
        self._channel = BELL + gateway
        self._on_ring = on_ring

    async def step(self) -> None:
        async with self._redis().pubsub() as pubsub:
            await pubsub.subscribe(self._channel)
            self._on_ring()
            while True:
                # A timeout, not a blocking listen(): the pool's short socket timeout would cut it.
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message.get("type") == "message":
                    self._on_ring()
