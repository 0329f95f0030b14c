"""Redis through redis.asyncio, with short timeouts so a hung Redis cannot hang a request."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

from services.resources import HealthCheck


class RedisClient:
    def __init__(self, url: str, *, timeout_s: float, max_connections: int = 64, critical: bool = False) -> None:
        self.name = "redis"
        self.critical = critical
        self._url = url
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        self._redis: Redis | None = None

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            raise RuntimeError("RedisClient used before start()")
        return self._redis

    async def start(self) -> None:
        # No connection is made here: the service must start even while Redis is down.
        pool = BlockingConnectionPool.from_url(
            self._url,
            max_connections=self._max_connections,
            timeout=self._timeout_s,
            socket_timeout=self._timeout_s,
            socket_connect_timeout=self._timeout_s,
        )
        self._redis = Redis(connection_pool=pool)

    async def stop(self) -> None:
        if self._redis is not None:
            await self._redis.aclose(close_connection_pool=True)
            self._redis = None

    async def _ping(self) -> None:
        await self.redis.ping()

    def health_checks(self) -> dict[str, HealthCheck]:
        return {"redis": self._ping}
