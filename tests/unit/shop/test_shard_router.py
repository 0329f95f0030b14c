"""The shard router's choice of a shard's pool and read router, and its refusals, without a database (the
pools themselves: tests/integration/shop)."""

from __future__ import annotations

import asyncio

import pytest

from shop.adapters.shards import ShardRouter
from shop.config import ShopSettings
from shop.ports import ShardUnavailable
from shop.sharding import ShardMap

A, B = "postgresql://lab@a/shop", "postgresql://lab@b/shop"


class Reader:
    def __init__(self, token: str) -> None:
        self.token = token

    async def commit_lsn(self) -> str:
        return self.token


def _router(pools: dict[str, str]) -> ShardRouter:
    router = ShardRouter(ShopSettings(), watch=False)
    # Stand-ins for the pools and read routers that start() would open: only which one is picked matters here.
    router._pools = dict(pools)
    router._readers = {url: Reader(f"lsn of {name}") for url, name in pools.items()}
    return router


def test_before_the_map_is_read_no_shard_is_served():
    router = _router({A: "pool a"})
    with pytest.raises(ShardUnavailable, match="shard map could not be read"):
        router.pool(0)
    with pytest.raises(ShardUnavailable, match="shard map could not be read"):
        asyncio.run(router.commit_lsn(0))


def test_a_shard_is_served_by_its_own_server_s_pool_and_reader():
    router = _router({A: "pool a", B: "pool b"})
    router._map = ShardMap(1, (A, B), (0, 1, 1))
    assert router.pool(0) == "pool a" and router.pool(1) == "pool b"
    assert asyncio.run(router.commit_lsn(1)) == "lsn of pool b"
    assert asyncio.run(router.commit_lsn(0)) == "lsn of pool a"


def test_a_server_without_a_pool_yet_is_refused_alike_for_writes_and_reads():
    router = _router({A: "pool a"})
    router._map = ShardMap(2, (A, B), (0, 1))
    with pytest.raises(ShardUnavailable, match="no connection pool for shard 1 yet"):
        router.pool(1)
    with pytest.raises(ShardUnavailable, match="no connection pool for shard 1 yet"):
        asyncio.run(router.commit_lsn(1))
