"""Streaming replicas under Patroni (``sdlab up --replicas 1``): a write reaches the replica, status shows
roles and lag, a killed primary is replaced by its replica within the settings' bound, and ``down``
leaves no Patroni, etcd or PostgreSQL behind."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from services.lab.procs import find_marked
from services.lab.replication import layout as replication
from tests.support.lab import Lab, free_port_block

# Kill -> promotion is bounded by the leader key's lease (ttl) and one HA loop; then the app's
# next connection finds the new primary and the balancer's health check (every 2 s) takes the
# instances back. The slack covers the promotion itself and a loaded 2-core machine.
WRITE_BOUND_S = replication.TTL_S + 2 * replication.LOOP_WAIT_S + 10


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    used: set[int] = set()
    ports = {
        "SDLAB_POSTGRES_PORT": str(free_port_block(20, 27000, used)),
        "SDLAB_PATRONI_PORT": str(free_port_block(20, 27000, used)),
        "SDLAB_ETCD_PORT": str(free_port_block(2, 27000, used)),
    }
    lab = Lab.create(tmp_path_factory.mktemp("replicas"), port_start=27100, **ports)
    lab.run("up", "shortener", "--shards", "1", "--replicas", "1", timeout=240)
    try:
        yield lab
    finally:
        lab.run("down", check=False)


def _fetch(url: str, sql: str, *args: object) -> object:
    async def go() -> object:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(go())


def _eventually(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            found = check()
            if found:
                return found
        except (OSError, asyncpg.PostgresError):
            found = None
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout_s} s (last: {found!r})")
        time.sleep(0.2)


def _members(lab: Lab) -> dict[str, dict]:
    return {c["name"]: c for c in lab.status()["components"] if c["kind"] == "postgres"}


def test_a_write_on_the_primary_is_read_on_the_replica_and_status_shows_roles_and_lag(replicated):
    state = replicated.state["components"]
    primary, replica = state["postgres-0"]["url"], state["postgres-0-1"]["url"]
    token = uuid.uuid4().hex
    _fetch(primary, "CREATE TABLE IF NOT EXISTS replication_probe (token text)")
    _fetch(primary, "INSERT INTO replication_probe VALUES ($1) RETURNING token", token)
    assert _eventually(lambda: _fetch(replica, "SELECT count(*) FROM replication_probe WHERE token = $1", token),
                       15, "the write on the replica") == 1
    assert _fetch(replica, "SELECT pg_is_in_recovery()") is True
    members = _eventually(lambda: (m := _members(replicated))["postgres-0-1"]["lag_bytes"] is not None and m,
                          30, "the replica's lag in status")
    assert members["postgres-0"]["role"] == "primary" and members["postgres-0"]["lag_bytes"] is None
    assert members["postgres-0-1"]["role"] == "replica" and members["postgres-0-1"]["lag_bytes"] >= 0
    assert "role" in replicated.run("status").stdout  # the table has the columns too


def _replica_reads(lab: Lab) -> float:
    """Reads the shortener instances served from a replica, from their /metrics."""
    total = 0.0
    for c in lab.status()["components"]:
        if re.fullmatch(r"shortener-\d+", c["name"]):  # the API instances (the analytics worker reads none)
            text = httpx.get(f"http://{c['address']}/metrics", timeout=5).text
            total += sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                         if line.startswith("db_routed_reads_total{") and 'served_by="replica"' in line)
    return total


def test_reads_go_to_the_replica_and_a_read_after_its_writes_lsn_always_sees_the_write(replicated):
    api = httpx.Client(base_url=replicated.url(), timeout=5)
    before = _replica_reads(replicated)
    for _ in range(10):
        created = api.post("/api/v1/links", json={"url": f"https://example.com/{uuid.uuid4().hex}"})
        assert created.status_code == 201, created.text
        lsn = created.headers["X-Commit-LSN"]
        code = created.json()["code"]
        # Read-your-writes: at once, with the token; the replica waits or the primary answers, never a 404.
        seen = api.get(f"/api/v1/links/{code}", headers={"X-Read-After-LSN": lsn})
        assert seen.status_code == 200, seen.text
        assert api.get(f"/api/v1/links/{code}", headers={"X-Read-From": "primary"}).status_code == 200
    assert _replica_reads(replicated) - before >= 5  # the replica served the reads it could
    bad = api.get(f"/api/v1/links/{code}", headers={"X-Read-After-LSN": "soon"})
    assert bad.status_code == 422


def test_top_and_a_runs_timeline_carry_the_replicas_lag_in_bytes_and_seconds(replicated):
    frame = json.loads(replicated.run("top", "--once", "--json").stdout)
    rows = {c["name"]: c for c in frame["components"]}
    assert rows["postgres-0"]["role"] == "primary" and rows["postgres-0"]["lag_bytes"] is None
    replica = rows["postgres-0-1"]
    assert replica["role"] == "replica" and replica["lag_bytes"] >= 0 and replica["lag_s"] >= 0, replica
    assert "lag s" in replicated.run("top", "--once").stdout
    out = replicated.run("load", "shortener", "--open", "--rate", "50", "--duration", "4", "--read-write", "1:1",
                         "--seed", "20", timeout=180).stdout
    folder = Path(re.search(r"results: (\S+)", out).group(1))
    timeline = [json.loads(line) for line in (folder / "timeline.jsonl").read_text().splitlines()]
    sampled = [row["replication"]["postgres-0-1"] for row in timeline if row.get("replication")]
    assert sampled, timeline
    assert all(s["role"] == "replica" and s["lag_s"] is not None and s["lag_s"] >= 0 for s in sampled), sampled
    assert all("postgres-0" not in row.get("replication", {}) for row in timeline)  # the primary has no lag


def test_killing_the_primary_promotes_the_replica_and_writes_resume_through_the_app(replicated):
    api = httpx.Client(base_url=replicated.url(), timeout=5)
    before = api.post("/api/v1/links", json={"url": f"https://example.com/{uuid.uuid4().hex}"})
    assert before.status_code == 201, before.text
    out = replicated.run("chaos", "kill", "postgres-0").stdout
    killed = time.monotonic()
    assert "killed postgres-0" in out

    def write() -> httpx.Response | None:
        resp = api.post("/api/v1/links", json={"url": f"https://example.com/{uuid.uuid4().hex}"})
        return resp if resp.status_code == 201 else None

    _eventually(write, WRITE_BOUND_S, "a write through the app after the primary's kill")
    took = time.monotonic() - killed
    print(f"kill -> first successful write through the app: {took:.1f} s (bound {WRITE_BOUND_S} s)")
    members = _eventually(lambda: (m := _members(replicated))["postgres-0-1"]["role"] == "primary" and m,
                          10, "postgres-0-1 as primary in status")
    assert members["postgres-0"]["state"] == "down"
    # The link written before the failover survived it (async replication had shipped it long before).
    # The instance that answers may not have used its pool since the kill: its first statement can
    # still find a connection to the dead primary (a 503, after which the whole pool is retired),
    # never a 404.
    assert _read_back(api, before.json()["code"]) == 200
    # Started again, the old primary rejoins as a replica of the new one (pg_rewind if it must).
    replicated.run("chaos", "restart", "postgres-0", timeout=180)
    _eventually(lambda: _members(replicated)["postgres-0"]["role"] == "replica", 30, "postgres-0 back as a replica")


def _read_back(api: httpx.Client, code: str) -> int:
    """The status of reading a link back once no instance answers 503 for it (5 s at most)."""
    return _eventually(lambda: (status := api.get(f"/api/v1/links/{code}").status_code) != 503 and status,
                       5, f"a read of {code} that is not a 503")


def test_a_switchover_hands_the_primary_role_back_and_writes_carry_on(replicated):
    # After the failover above, postgres-0-1 leads and postgres-0 follows it: a planned switchover
    # hands the role back, and a write acknowledged before it is still there after it. Should the test
    # above have stopped before restarting postgres-0, this one starts it itself.
    if _members(replicated)["postgres-0"]["state"] == "down":
        replicated.run("chaos", "restart", "postgres-0", timeout=180)
    _eventually(lambda: _members(replicated)["postgres-0"]["role"] == "replica"
                and _members(replicated)["postgres-0"]["lag_bytes"] is not None, 60, "postgres-0 streaming")
    api = httpx.Client(base_url=replicated.url(), timeout=5)
    before = api.post("/api/v1/links", json={"url": f"https://example.com/{uuid.uuid4().hex}"})
    assert before.status_code == 201, before.text
    out = replicated.run("chaos", "switchover", "postgres-0", timeout=120).stdout
    assert "switched postgres-0 over" in out and "postgres-0 is the primary" in out, out
    members = _members(replicated)
    assert members["postgres-0"]["role"] == "primary" and members["postgres-0-1"]["role"].startswith("replica")
    _eventually(lambda: api.post("/api/v1/links", json={"url": f"https://example.com/{uuid.uuid4().hex}"}
                                 ).status_code == 201, WRITE_BOUND_S, "a write after the switchover")
    assert _read_back(api, before.json()["code"]) == 200


def test_down_leaves_no_patroni_etcd_or_postgres(replicated):
    replicated.run("down")
    home = str(replicated.home)
    assert find_marked(home) == []
    left = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if home in cmdline and any(word in cmdline for word in ("patroni", "etcd", "postgres")):
            left.append(cmdline)
    assert left == []


def test_sync_replication_names_the_replica_synchronous(tmp_path):
    used: set[int] = set()
    lab = Lab.create(tmp_path / "sync", port_start=27700,
                     SDLAB_POSTGRES_PORT=str(free_port_block(20, 27600, used)),
                     SDLAB_PATRONI_PORT=str(free_port_block(20, 27600, used)),
                     SDLAB_ETCD_PORT=str(free_port_block(2, 27600, used)))
    lab.run("up", "shortener", "--shards", "1", "--replicas", "1", "--replication", "sync", timeout=240)
    try:
        members = _eventually(lambda: (m := _members(lab))["postgres-0-1"]["role"] == "replica (sync)" and m,
                              30, "postgres-0-1 as the synchronous replica")
        assert members["postgres-0"]["role"] == "primary"
        primary = lab.state["components"]["postgres-0"]["url"]
        assert "postgres-0-1" in _fetch(primary, "SHOW synchronous_standby_names")
    finally:
        lab.run("down")
    assert find_marked(str(lab.home)) == []
