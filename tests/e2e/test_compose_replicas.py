"""Compose mode with streaming replicas for real: ``sdlab up --compose --standin shortener shop --replicas 1
--replication sync``; a link and a product created through the API, then read on a replica (a server in
recovery), and reads through the API served by the replicas.

A deployment of its own (the other compose test's holds the same ports), of two designs to keep it short:
the shortener (one server) and the shop (sharded over both).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid

import asyncpg
import httpx
import pytest

from tests.e2e.test_compose_docker import _shop_smoke, engine  # noqa: F401  (engine: the Docker engine fixture)
from tests.support.compose_deployment import compose_deployment

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def replicated(engine, tmp_path_factory):  # noqa: F811
    with compose_deployment(tmp_path_factory.mktemp("compose-replicas"), f"sdlab-e2e-replicas-{os.getpid()}",
                            "shortener", "shop", "--replicas", "1", "--replication", "sync") as lab:
        yield lab


async def _on_replica(address: str, code: str, deadline_s: float = 10.0) -> tuple[bool, str | None]:
    """A replica's (pg_is_in_recovery(), the link's URL there, None if absent), polled until it has the link;
    the URL is None also on a server without the shortener's tables (it uses the first server only)."""
    end = time.monotonic() + deadline_s
    conn = await asyncpg.connect(f"postgresql://postgres@{address}/postgres", timeout=5)
    try:
        while True:
            in_recovery = await conn.fetchval("SELECT pg_is_in_recovery()")
            url = None
            if await conn.fetchval("SELECT to_regclass('public.links') IS NOT NULL"):
                url = await conn.fetchval("SELECT url FROM links WHERE code = $1", code)
            if url is not None or time.monotonic() > end:
                return in_recovery, url
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def _replica_reads(rows: dict, instances: list[str]) -> float:
    """Reads the instances' read routing sent to a replica, from their own /metrics."""
    total = 0.0
    for name in instances:
        metrics = httpx.get(f"http://{rows[name]['address']}/metrics", timeout=10).text
        total += sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                     if line.startswith("db_routed_reads_total{") and 'served_by="replica"' in line)
    return total


async def _product_on(address: str, product_id: str, deadline_s: float = 10.0) -> str | None:
    end = time.monotonic() + deadline_s
    conn = await asyncpg.connect(f"postgresql://postgres@{address}/postgres", timeout=5)
    try:
        while (name := await conn.fetchval("SELECT name FROM products WHERE id::text = $1", product_id)) is None:
            if time.monotonic() > end:
                return None
            await asyncio.sleep(0.2)
        return name
    finally:
        await conn.close()


def test_a_write_through_the_api_is_read_on_a_replica_and_status_shows_the_roles(replicated):
    rows = {r["name"]: r for r in replicated.status()["components"]}
    assert {n: r["state"] for n, r in rows.items() if r["state"] != "ready"} == {}
    assert rows["postgres-0"]["role"] == "primary" and rows["postgres-1"]["role"] == "primary"
    assert rows["postgres-0-1"]["role"] == "replica (sync)" and rows["postgres-1-1"]["role"] == "replica (sync)"
    assert isinstance(rows["postgres-0-1"]["lag_bytes"], int) and isinstance(rows["postgres-0-1"]["lag_s"], float)

    target = f"https://example.com/{uuid.uuid4().hex}"
    with httpx.Client(base_url="http://127.0.0.1:8080", timeout=10) as client:
        created = client.post("/api/v1/links", json={"url": target})
        assert created.status_code == 201, created.text
        code = created.json()["code"]
        redirect = client.get(f"/{code}")
        assert redirect.status_code == 302 and redirect.headers["location"] == target

    # The shortener writes to its first server: the link is on that server's replica, a server in recovery.
    assert asyncio.run(_on_replica(rows["postgres-0-1"]["address"], code)) == (True, target)
    assert asyncio.run(_on_replica(rows["postgres-1-1"]["address"], code, deadline_s=0))[0] is True

    # Reads that tolerate staleness are served by the replica: the read routing found it in the URL.
    with httpx.Client(base_url="http://127.0.0.1:8080", timeout=10) as client:
        for _ in range(12):  # over every instance behind the balancer
            assert client.get(f"/api/v1/links/{code}").status_code == 200
    assert _replica_reads(rows, ["shortener-1", "shortener-2", "shortener-3"]) > 0, "no read served by the replica"

    project = replicated.env["COMPOSE_PROJECT_NAME"]
    env = json.loads(subprocess.run(["docker", "inspect", "--format", "{{json .Config.Env}}", f"{project}-shortener-1-1"],
                                    capture_output=True, text=True).stdout)
    urls = next(e for e in env if e.startswith("SHORTENER_DATABASE_URLS=")).split("=", 1)[1]
    assert "postgres-0:5432,postgres-0-1:5432/" in urls and "postgres-1:5432,postgres-1-1:5432/" in urls
    assert urls.count("target_session_attrs=read-write") == 2

    switchover = replicated.run("chaos", "switchover", "postgres-0", check=False)
    assert switchover.returncode == 2 and "needs local mode" in switchover.stderr


def test_the_sharded_shop_writes_to_its_primaries_and_reads_its_replicas(replicated):
    """Checkout (sync commits on both shards, the saga through the broker) works, and a product page is
    served by the replica of the product's shard."""
    rows = {r["name"]: r for r in replicated.status()["components"]}
    _shop_smoke()
    with httpx.Client(base_url="http://127.0.0.1:8082", timeout=10) as client:
        admin = client.post("/api/v1/sessions", json={"user": "admin"}).json()["token"]
        product = client.post("/api/v1/products", json={"name": f"replica mug {uuid.uuid4().hex[:6]}",
                                                        "category": "mugs", "price_cents": 900, "stock": 3},
                              headers={"Authorization": f"Bearer {admin}"})
        assert product.status_code == 201, product.text
        product_id = str(product.json()["id"])
        found = [asyncio.run(_product_on(rows[r]["address"], product_id, deadline_s=d))
                 for r, d in (("postgres-0-1", 5.0), ("postgres-1-1", 5.0))]
        assert found.count(product.json()["name"]) == 1, found  # on its shard's replica, and only there
        for _ in range(8):
            assert client.get(f"/api/v1/products/{product_id}").status_code == 200
    assert _replica_reads(rows, ["shop-1", "shop-2"]) > 0, "no product page served by a replica"
