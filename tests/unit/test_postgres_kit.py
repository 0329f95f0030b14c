"""The kit's PostgreSQL client: one deadline per operation, the errors it maps, passive health."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from services.clients.postgres import PgPool, asyncpg_url, dsn, within_deadline
from shortener.ports import StoreUnavailable


async def test_a_hung_operation_fails_within_the_deadline():
    async def hang() -> None:
        await asyncio.sleep(10)

    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="within 0.2s"):
        await within_deadline(hang, 0.2, StoreUnavailable)
    assert time.monotonic() - started < 0.5


async def test_a_refused_connection_is_unavailable_and_other_errors_pass_through():
    async def refused() -> None:
        raise ConnectionRefusedError("connection refused")

    async def bug() -> None:
        raise ValueError("a bug, not an outage")

    with pytest.raises(StoreUnavailable, match="refused"):
        await within_deadline(refused, 1, StoreUnavailable)
    with pytest.raises(ValueError):
        await within_deadline(bug, 1, StoreUnavailable)


async def test_no_primary_among_a_multi_host_urls_servers_is_unavailable_not_a_bug():
    # Mid-failover: the old primary refuses connections and its replica is not promoted yet.
    async def no_primary() -> None:
        raise asyncpg.exceptions.TargetServerAttributeNotMatched('None of the hosts match the target attribute requirement')

    with pytest.raises(StoreUnavailable, match="target attribute"):
        await within_deadline(no_primary, 1, StoreUnavailable)


async def test_a_slow_cleanup_does_not_delay_the_answer():
    """Cancelling a query on a hung server runs a rollback that hangs too; the caller must not wait for it."""
    cleaned = asyncio.Event()

    async def hang_then_slow_cleanup() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(1.0)  # the rollback on a hung server
            cleaned.set()

    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="within 0.2s"):
        await within_deadline(hang_then_slow_cleanup, 0.2, StoreUnavailable)
    assert time.monotonic() - started < 0.5
    await asyncio.wait_for(cleaned.wait(), 2), "the cleanup still runs, in the background"


def test_urls_as_users_and_sqlalchemy_write_them():
    assert dsn("postgres://u@h:5/db") == dsn("postgresql+asyncpg://u@h:5/db") == "postgresql://u@h:5/db"
    assert asyncpg_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    with pytest.raises(ValueError):
        dsn("mysql://u@h/db")


async def test_a_server_that_answered_lately_is_not_probed_again():
    """Readiness probes come every second; a statement that succeeded within fresh_s says enough."""
    pool = PgPool("postgresql://nobody@127.0.0.1:1/none", timeout_s=0.2, fresh_s=5.0, unavailable=StoreUnavailable)
    probes = []

    async def statement(conn):
        probes.append(conn)
        return 1

    pool._pool = _FakePool()  # a pool whose connections answer anything
    await pool.run(statement)
    assert pool.recently_ok()
    await pool.health_checks()[pool.name]()
    assert len(probes) == 1, "the health check used the recent success, not a statement"

    async def down(conn):
        raise ConnectionResetError("gone")

    with pytest.raises(StoreUnavailable):
        await pool.run(down)
    assert not pool.recently_ok(), "a failure since then calls for a real probe"


class _FakePool:
    expired = 0

    def acquire(self):
        return _Acquired()

    async def expire_connections(self) -> None:
        self.expired += 1


class _Acquired:
    async def __aenter__(self):
        return object()

    async def __aexit__(self, *exc):
        return False


class _Conn:
    terminated = False

    def terminate(self) -> None:
        self.terminated = True


class _Pool:
    def __init__(self, conn: _Conn) -> None:
        self.conn = conn

    async def expire_connections(self) -> None:
        pass

    def acquire(self):
        conn = self.conn

        class Held:
            async def __aenter__(self):
                return conn

            async def __aexit__(self, *exc):
                return False

        return Held()


async def test_a_connection_left_in_an_unknown_protocol_state_is_dropped_and_reported_unavailable():
    # The server died mid-statement; asyncpg's next use of that connection raises a client-side error.
    pool = PgPool("postgresql://u@h/db", timeout_s=1, unavailable=StoreUnavailable)
    conn = _Conn()
    pool._pool = _Pool(conn)

    async def stuck(c) -> None:
        raise asyncpg.exceptions.InternalClientError("cannot switch to state 11; another operation (2) is in progress")

    with pytest.raises(StoreUnavailable, match="cannot switch to state"):
        await pool.run(stuck)
    assert conn.terminated


async def test_a_broken_connection_retires_the_whole_pool_and_a_slow_statement_does_not():
    # After a failover every pooled connection points at the old primary; each would otherwise fail
    # one request of its own before the pool replaced it.
    pool = PgPool("postgresql://u@h/db", timeout_s=0.2, unavailable=StoreUnavailable)
    fake = pool._pool = _FakePool()

    async def slow(conn):
        await asyncio.sleep(1)

    with pytest.raises(StoreUnavailable):
        await pool.run(slow)
    assert fake.expired == 0, "a timeout under load is not a broken server"

    for broken in (ConnectionResetError("reset by peer"),
                   asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
                   asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command")):
        async def fail(conn, exc=broken):
            raise exc

        with pytest.raises(StoreUnavailable):
            await pool.run(fail)
    assert fake.expired == 3
