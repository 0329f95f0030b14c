"""PostgreSQL through asyncpg: a pool per server, every operation under one deadline.

No ORM at run time. SQLAlchemy describes the schemas and Alembic migrates them; the services talk
to PostgreSQL with asyncpg, one round trip a statement, because round trips are what a hot path
pays for first:

- no pre-ping on checkout from the pool (SQLAlchemy's ``pool_pre_ping`` costs BEGIN, ``;`` and
  ROLLBACK on every use): a dead connection is found by the statement that fails, within the
  deadline, and the pool replaces it;
- no reset query on release (asyncpg's default sends ``pg_advisory_unlock_all(); CLOSE ALL;
  UNLISTEN *; RESET ALL``): these sessions carry no state (advisory locks are taken per
  transaction; the one session lock, a relay's leadership, lives on a connection of its own), and
  a transaction left open is still rolled back;
- statements run in autocommit (one statement, one transaction) unless a caller asks for a
  transaction, which costs a BEGIN and a COMMIT more.

Health checks are passive first: a server that answered a real statement within ``fresh_s`` is
not probed again (readiness probes every second would otherwise be most of an idle stack's load).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from asyncpg import exceptions as pgerr

from services.resources import HealthCheck

T = TypeVar("T")
Connection = asyncpg.Connection
# The server could not be reached, went away, or refuses connections for now. asyncpg's client-side
# errors belong here too: with a multi-host URL and target_session_attrs=read-write, "no host is a
# primary" (TargetServerAttributeNotMatched) is a failover in progress, and a connection whose server
# died mid-statement can be left in a protocol state it cannot leave ("cannot switch to state ...;
# another operation is in progress"), which is a broken connection, not a bug in the caller.
UNREACHABLE = (OSError, asyncio.TimeoutError, ConnectionError, pgerr.PostgresConnectionError,
               pgerr.InterfaceError, pgerr.OperatorInterventionError, pgerr.InsufficientResourcesError,
               pgerr.TooManyConnectionsError, pgerr.InternalClientError)
# A connection that broke (its server died, restarted, was failed over, or an administrator ended the
# session) says the same of every other connection to that server: after a failover none of them
# reaches the primary. They are retired together, so that each does not fail one request of its own
# first (a pool of 10 was 10 more 503s per instance after every failover). A timeout is not breakage:
# retiring a whole pool because one statement was slow under load would only add connection churn.
BROKEN = (OSError, ConnectionError, pgerr.PostgresConnectionError, pgerr.InterfaceError,
          pgerr.OperatorInterventionError, pgerr.InternalClientError)


def is_broken_connection(exc: BaseException | None) -> bool:
    """Whether ``exc`` says the connection (and so its server's other connections) is gone."""
    return isinstance(exc, BROKEN) and not isinstance(exc, TimeoutError)


def _swallow(task: asyncio.Task) -> None:
    """Retrieve the abandoned operation's outcome, so that asyncio does not log it as unhandled."""
    if not task.cancelled():
        task.exception()


async def within_deadline(fn: Callable[[], Awaitable[T]], deadline_s: float, unavailable: type[Exception]) -> T:
    """Run a database operation with one deadline for all of it; ``unavailable`` when PostgreSQL
    did not answer in time or could not be reached.

    One deadline for the whole operation (pool wait, statements, commit): each step has its own
    timeout, and three of them in a row is not "fail fast". The operation races the deadline
    instead of asyncio.wait_for, which would also wait for the cancelled operation to clean up
    (a rollback on a hung server has a timeout of its own); the cleanup finishes in the
    background and the caller gets its answer now.
    """
    task = asyncio.ensure_future(fn())
    try:
        done, _ = await asyncio.wait({task}, timeout=deadline_s)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_swallow)
        raise unavailable(f"no answer from PostgreSQL within {deadline_s}s")
    try:
        return task.result()
    except UNREACHABLE as exc:
        raise unavailable(str(exc)[:200] or type(exc).__name__) from exc


def dsn(url: str) -> str:
    """``postgresql://...`` as asyncpg takes it, from any spelling users and SQLAlchemy write."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgres", "postgresql", "postgresql+asyncpg"):
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    return f"postgresql://{rest}"


def asyncpg_url(url: str) -> str:
    """The SQLAlchemy driver URL, for Alembic's migrations (the services use :func:`dsn`). SQLAlchemy
    spells a multi-host URL (``u@h1:1,h2:2/db``) with one ``host`` parameter per server."""
    rest = dsn(url).partition("://")[2]
    netloc, slash, tail = rest.partition("/")
    user, at, hosts = netloc.rpartition("@")
    if "," not in hosts:
        return "postgresql+asyncpg://" + rest
    path, question, query = tail.partition("?")
    params = "&".join([f"host={h}" for h in hosts.split(",")] + ([query] if query else []))
    return f"postgresql+asyncpg://{user}{at}/{path}?{params}"


async def _keep_session(_: asyncpg.Connection) -> None:
    """No reset query on release (see the module's docstring); asyncpg still rolls back an open transaction."""


class PgPool:
    """A pool of connections to one PostgreSQL server, opened and closed in the app's lifespan.

    Connections are made on first use, so a service starts while its database is down (its
    readiness says so). Every call runs under ``timeout_s`` and raises ``unavailable`` when the
    server did not answer in time or could not be reached."""

    def __init__(self, url: str, *, timeout_s: float, max_size: int = 10, name: str = "postgres",
                 critical: bool = False, unavailable: type[Exception] = ConnectionError, fresh_s: float = 5.0) -> None:
        self.name = name
        self.critical = critical
        self.url = url
        self.timeout_s = timeout_s
        self.unavailable = unavailable
        self._dsn = dsn(url)
        self._max_size = max_size
        self._fresh_s = fresh_s
        self._pool: asyncpg.Pool | None = None
        self._last_ok = float("-inf")  # monotonic time of the last statement that succeeded
        self._last_failure = float("-inf")

    async def start(self) -> None:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=0, max_size=self._max_size, timeout=self.timeout_s,
                command_timeout=self.timeout_s, reset=_keep_session, max_inactive_connection_lifetime=60)

    async def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self.timeout_s)
            except (asyncio.TimeoutError, *UNREACHABLE):
                pool.terminate()  # a hung server must not hold the shutdown

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError(f"{self.name} used before start()")
        return self._pool

    def in_use(self) -> tuple[int, int]:
        """(connections checked out, the pool's bound), read without I/O."""
        if self._pool is None:
            return 0, self._max_size
        return self._pool.get_size() - self._pool.get_idle_size(), self._max_size

    def pool_use(self) -> list[tuple[int, int]]:
        """:class:`services.metrics.ClientGauges`' view: one server, shard 0."""
        return [self.in_use()]

    async def run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]], *, deadline_s: float | None = None,
                  transaction: bool = False) -> T:
        """``fn`` on a pooled connection (in a transaction when asked), all of it within the deadline."""
        async def op() -> T:
            async with self.pool.acquire() as conn:
                try:
                    if not transaction:
                        return await fn(conn)
                    async with conn.transaction():
                        return await fn(conn)
                except pgerr.InternalClientError:
                    conn.terminate()  # its protocol state is unknown: the pool must not hand it out again
                    raise

        try:
            result = await within_deadline(op, deadline_s or self.timeout_s, self.unavailable)
        except self.unavailable as exc:
            self._last_failure = time.monotonic()
            if self._pool is not None and is_broken_connection(exc.__cause__):
                await self._pool.expire_connections()
            raise
        self._last_ok = time.monotonic()
        return result

    async def fetch(self, sql: str, *args: Any, deadline_s: float | None = None) -> list[asyncpg.Record]:
        return await self.run(lambda c: c.fetch(sql, *args), deadline_s=deadline_s)

    async def fetchrow(self, sql: str, *args: Any, deadline_s: float | None = None) -> asyncpg.Record | None:
        return await self.run(lambda c: c.fetchrow(sql, *args), deadline_s=deadline_s)

    async def fetchval(self, sql: str, *args: Any, deadline_s: float | None = None) -> Any:
        return await self.run(lambda c: c.fetchval(sql, *args), deadline_s=deadline_s)

    async def execute(self, sql: str, *args: Any, deadline_s: float | None = None) -> str:
        return await self.run(lambda c: c.execute(sql, *args), deadline_s=deadline_s)

    def recently_ok(self) -> bool:
        last_ok = self._last_ok
        return last_ok > self._last_failure and time.monotonic() - last_ok < self._fresh_s

    async def _select_one(self) -> None:
        if self.recently_ok():
            return
        await self.fetchval("SELECT 1")

    def health_checks(self) -> dict[str, HealthCheck]:
        return {self.name: self._select_one}
