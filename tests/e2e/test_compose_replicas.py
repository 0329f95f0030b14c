"""Compose mode with streaming replicas for real: ``sdlab up --compose --standin shortener --replicas 1
--replication sync``, a link created through the API, then read on a replica (a server in recovery).

A deployment of its own (the other compose test's holds the same ports), of one design to keep it short.
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

from tests.e2e.test_compose_docker import engine  # noqa: F401  (the module's Docker engine fixture)
from tests.support.lab import Lab

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def replicated(engine, tmp_path_factory):  # noqa: F811
    home = tmp_path_factory.mktemp("compose-replicas")
    lab = Lab(home=home, env={"SDLAB_HOME": str(home), "SDLAB_RESULTS": str(home / "results"),
                              "COMPOSE_PROJECT_NAME": f"sdlab-e2e-replicas-{os.getpid()}"})
    started = time.monotonic()
    up = lab.run("up", "--compose", "--standin", "shortener", "--replicas", "1", "--replication", "sync",
                 timeout=1200, check=False)
    print(f"sdlab up --compose --standin shortener --replicas 1: {time.monotonic() - started:.0f} s")
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield lab
    finally:
        down = lab.run("down", "--volumes", timeout=300, check=False)
        assert down.returncode == 0, down.stdout + down.stderr


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


def test_a_write_through_the_api_is_read_on_a_replica_and_status_shows_the_roles(replicated):
    rows = {r["name"]: r for r in replicated.status()["components"]}
    assert {n: r["state"] for n, r in rows.items() if r["state"] != "ready"} == {}
    assert rows["postgres-0"]["role"] == "primary" and rows["postgres-1"]["role"] == "primary"
    assert rows["postgres-0-1"]["role"] == "replica (sync)" and rows["postgres-1-1"]["role"] == "replica (sync)"
    assert isinstance(rows["postgres-0-1"]["lag_bytes"], int)

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
    replica_reads = 0.0
    for name in ("shortener-1", "shortener-2", "shortener-3"):
        metrics = httpx.get(f"http://{rows[name]['address']}/metrics", timeout=10).text
        replica_reads += sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                             if line.startswith("db_routed_reads_total{") and 'served_by="replica"' in line)
    assert replica_reads > 0, "no read was served by the replica"

    project = replicated.env["COMPOSE_PROJECT_NAME"]
    env = json.loads(subprocess.run(["docker", "inspect", "--format", "{{json .Config.Env}}", f"{project}-shortener-1-1"],
                                    capture_output=True, text=True).stdout)
    urls = next(e for e in env if e.startswith("SHORTENER_DATABASE_URLS=")).split("=", 1)[1]
    assert "postgres-0:5432,postgres-0-1:5432/" in urls and "postgres-1:5432,postgres-1-1:5432/" in urls
    assert urls.count("target_session_attrs=read-write") == 2

    switchover = replicated.run("chaos", "switchover", "postgres-0", check=False)
    assert switchover.returncode == 2 and "needs local mode" in switchover.stderr
