"""The live reshard against real PostgreSQL: what moves, what it leaves behind, and an interrupted
reshard resumed, then rolled back. On databases of the test's own (three of them, on the lab's
servers), so the lab's own shop never sees its map change."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from shop import migrate
from shop.adapters import bucket_copy
from shop.adapters.sql_catalog import SqlCatalog
from shop.domain import NewProduct
from shop.reshard import Resharder
from shop.sharding import bucket_of_id
from tests.integration.shop.conftest import lab_url


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
def three_databases(lab):
    """Two databases holding a shop (a map over them, 256 buckets) and a third, migrated, empty."""
    servers = [lab_url(lab, "postgres-0"), lab_url(lab, "postgres-1"), lab_url(lab, "postgres-0")]
    names = [f"shop_rs_{uuid.uuid4().hex[:8]}" for _ in servers]
    urls = [f"{server.rsplit('/', 1)[0]}/{name}" for server, name in zip(servers, names)]
    for server, name in zip(servers, names):
        asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    try:
        for url in urls:
            migrate.upgrade(url)
        asyncio.run(migrate.create_map(urls[:2], 256))
        yield urls
    finally:
        for server, name in zip(servers, names):
            asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _fill(make_router, urls: list[str]) -> dict[int, int]:
    """One product in every bucket; returns product id -> bucket."""
    router = await make_router(urls[:2])
    catalog = SqlCatalog(router)
    made = {}
    for bucket in range(256):
        product = await catalog.create(bucket, NewProduct(f"p{bucket}", "c", 100 + bucket, 5))
        made[product.id] = bucket
    return made


async def _where(urls: list[str]) -> tuple[dict[int, list[int]], dict[int, set[int]]]:
    """Per server: the product buckets it stores, and the buckets it owns."""
    stored, owned = {}, {}
    for i, url in enumerate(urls):
        conn = await asyncpg.connect(url)
        try:
            stored[i] = [r["bucket"] for r in await conn.fetch("SELECT bucket FROM products")]
            owned[i] = {r["bucket"] for r in await conn.fetch("SELECT bucket FROM owned_buckets")}
        finally:
            await conn.close()
    return stored, owned


async def _reshard(urls: list[str]):
    resharder = Resharder(urls[0], say=lambda _: None, settle_s=0)
    try:
        return await resharder.reshard(urls), await resharder.current()
    finally:
        await resharder.close()


async def _rollback(first: str):
    resharder = Resharder(first, say=lambda _: None, settle_s=0)
    try:
        return await resharder.rollback(), await resharder.current()
    finally:
        await resharder.close()


def _consistent(shard_map, stored, owned, made) -> None:
    """Every bucket owned by exactly the server the map names, and its rows there only."""
    for bucket in range(256):
        holder = shard_map.shard_of_bucket(bucket)
        assert [s for s, buckets in owned.items() if bucket in buckets] == [holder], bucket
    for server, buckets in stored.items():
        assert all(shard_map.shard_of_bucket(b) == server for b in buckets), server
    assert sorted(b for buckets in stored.values() for b in buckets) == sorted(made.values())


async def test_two_to_three_moves_a_third_verified_and_cleaned(make_router, three_databases):
    urls = three_databases
    made = await _fill(make_router, urls)
    report, shard_map = await _reshard(urls)
    assert len(report.moves) == 85 and report.to_shards == 3 and all(m.verified for m in report.moves)
    assert report.rows_moved == 85 and report.cleaned_rows == 85  # one product per moved bucket
    assert all(m.target == 2 for m in report.moves) and len(shard_map.buckets_of(2)) == 85
    stored, owned = await _where(urls)
    _consistent(shard_map, stored, owned, made)
    # Routed by the new map, every product is found where it now lives.
    catalog = SqlCatalog(await make_router(urls[:2]))
    for product_id in list(made)[::16]:
        assert (await catalog.get(product_id)).id == product_id and bucket_of_id(product_id) == made[product_id]


async def test_an_interrupted_reshard_resumes_and_rolls_back(make_router, three_databases, monkeypatch):
    urls = three_databases
    made = await _fill(make_router, urls)
    real_save = bucket_copy.save_map
    saves = 0

    async def dies_on_the_fourth(conn, version, shards, assignment):
        nonlocal saves
        saves += 1
        if saves == 4:  # the servers, then two switches, then a crash right after a source disowned
            raise ConnectionError("the resharder died")
        await real_save(conn, version, shards, assignment)

    monkeypatch.setattr(bucket_copy, "save_map", dies_on_the_fourth)
    with pytest.raises(ConnectionError):
        await _reshard(urls)
    monkeypatch.setattr(bucket_copy, "save_map", real_save)
    report, shard_map = await _reshard(urls)  # resumes: finishes the cut switch, then the rest
    assert len(shard_map.buckets_of(2)) == 85
    assert len(report.moves) == 85 - 3  # two switched before the crash, one finished on resume
    stored, owned = await _where(urls)
    _consistent(shard_map, stored, owned, made)
    rolled, back = await _rollback(urls[0])
    assert len(rolled.moves) == 85 and back.buckets_of(2) == []
    stored, owned = await _where(urls)
    _consistent(back, stored, owned, made)
    assert back.assignment == tuple(b % 2 for b in range(256))  # the first map's dealing again
