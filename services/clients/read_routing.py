"""Reads on replicas, writes on the primary, and read-your-writes by commit LSN.

A read that tolerates staleness goes to a streaming replica (round robin over the healthy ones);
everything else goes to the primary. A read may instead ask for one of two stronger promises:

- **after an LSN** (read-your-writes): the write answered with the primary's WAL position after
  its commit (:meth:`ReadRouter.commit_lsn`); the read waits on the replica until
  ``pg_last_wal_replay_lsn()`` has reached it, for ``wait_s`` at most, then goes to the primary;
- **from the primary**: no wait and no staleness, at the price of the primary's capacity.

A replica that is gone (down, or promoted since: its connections ask for a standby) is skipped for
``skip_s`` and its reads go to the primary; a replica that is only slow (a read past its deadline)
keeps its reads, which fail as reads past a deadline do: sending an overloaded replica's reads to
the primary would overload the primary and its writes with it (a cascade an early run of
``shortener.read-replicas`` went through: the primary ran out, the breaker that reads and writes
share opened, and creates failed with the redirects). Every choice is counted
(:class:`RoutingStats`), so that an experiment can say where reads were served, and why.

The routing is written by hand because it is what the replication walkthrough teaches; the
replicas are found from the primary's multi-host URL (every member of the shard).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode

import asyncpg

from services.clients.postgres import PgPool, dsn, is_broken_connection
from services.consistency import ReadConsistency
from services.settings import ServiceSettings

T = TypeVar("T")
# The token is a WAL position in bytes (services/consistency.py), sent as text to stay clear of codecs.
_REPLAYED = "SELECT pg_last_wal_replay_lsn() >= '0/0'::pg_lsn + $1::text::numeric"
# The end of the WAL written so far: after a commit returned, at or past that commit's record.
_COMMIT_LSN = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::text"


def member_urls(url: str, *, session_attrs: str = "standby") -> list[str]:
    """One URL per server of a multi-host URL (``u@h1:1,h2:2/db``), each asking for ``session_attrs``;
    a single-host URL has no replicas to read from and gives ``[]``."""
    rest = dsn(url).partition("://")[2]
    netloc, _, tail = rest.partition("/")
    user, at, hosts = netloc.rpartition("@")
    if "," not in hosts:
        return []
    path, _, query = tail.partition("?")
    params = dict(parse_qsl(query))
    params["target_session_attrs"] = session_attrs
    return [f"postgresql://{user}{at}{host}/{path}?{urlencode(params)}" for host in hosts.split(",")]


@dataclass
class RoutingStats:
    replica_reads: int = 0
    primary_reads: int = 0  # asked for, or no replica configured
    waited: int = 0  # read-your-writes reads that found the replica behind and waited
    fell_back_behind: int = 0  # the replica had not replayed the LSN within wait_s
    fell_back_unavailable: int = 0  # no healthy replica, or the chosen one is down or promoted
    timed_out: int = 0  # the replica did not answer within the deadline: failed, not sent to the primary


class _Behind(Exception):
    """The replica had not replayed the write the reader asked to see."""


class ReadRouter:
    """A lifespan resource: it opens and closes the replicas' pools (the primary's is the app's own).
    It has no health check: a replica down costs its reads a trip to the primary, not the service
    its readiness, and ``sdlab status`` shows each member's role and lag."""

    name = "replicas"
    critical = False

    def __init__(self, primary: PgPool, replicas: list[PgPool], *, wait_s: float = 0.05, skip_s: float = 2.0,
                 poll_s: float = 0.002) -> None:
        self.primary = primary
        self.replicas = replicas
        self.wait_s = wait_s
        self.skip_s = skip_s
        self.poll_s = poll_s
        self.stats = RoutingStats()
        self._turn = itertools.cycle(range(len(replicas))) if replicas else None
        self._skip_until = [float("-inf")] * len(replicas)

    async def start(self) -> None:
        for pool in self.replicas:
            await pool.start()

    async def stop(self) -> None:
        for pool in self.replicas:
            await pool.stop()

    def health_checks(self) -> dict:
        return {}

    @property
    def routes_reads(self) -> bool:
        return bool(self.replicas)

    def _next_replica(self) -> int | None:
        now = time.monotonic()
        for _ in range(len(self.replicas)):
            i = next(self._turn)  # type: ignore[arg-type]
            if self._skip_until[i] <= now:
                return i
        return None

    async def read(self, fn: Callable[[asyncpg.Connection], Awaitable[T]],
                   consistency: ReadConsistency = ReadConsistency(), *, deadline_s: float | None = None) -> T:
        """``fn`` on a replica when ``consistency`` allows it, else (or when the replica cannot) on the
        primary; ``deadline_s`` bounds each attempt (a fallback gets its own)."""
        if consistency.primary or not self.replicas:
            self.stats.primary_reads += 1
            return await self.primary.run(fn, deadline_s=deadline_s)
        i = self._next_replica()
        if i is None:
            self.stats.fell_back_unavailable += 1
            return await self.primary.run(fn, deadline_s=deadline_s)
        replica = self.replicas[i]
        try:
            result = await replica.run(self._after(consistency.after_lsn, fn) if consistency.after_lsn else fn,
                                       deadline_s=deadline_s)
        except _Behind:
            self.stats.fell_back_behind += 1
            return await self.primary.run(fn, deadline_s=deadline_s)
        except replica.unavailable as exc:
            if not is_broken_connection(exc.__cause__):
                # Slow, not gone: the replica is overloaded. Its reads sent to the primary would
                # overload the primary too (and the writes with it), so the read fails like any
                # read past its deadline, and the replica keeps its turn.
                self.stats.timed_out += 1
                raise
            self._skip_until[i] = time.monotonic() + self.skip_s
            self.stats.fell_back_unavailable += 1
            return await self.primary.run(fn, deadline_s=deadline_s)
        self.stats.replica_reads += 1
        return result

    def _after(self, lsn: int, fn: Callable[[asyncpg.Connection], Awaitable[T]]
               ) -> Callable[[asyncpg.Connection], Awaitable[T]]:
        async def waiting(conn: asyncpg.Connection) -> T:
            deadline = time.monotonic() + self.wait_s
            if not await conn.fetchval(_REPLAYED, str(lsn)):
                self.stats.waited += 1
                while not await conn.fetchval(_REPLAYED, str(lsn)):
                    if time.monotonic() >= deadline:
                        raise _Behind(lsn)
                    await asyncio.sleep(self.poll_s)
            return await fn(conn)

        return waiting

    async def commit_lsn(self) -> str | None:
        """The token a write hands its client for read-your-writes (one statement more on the
        primary), or None when reads are not routed to replicas and need no token."""
        if not self.replicas:
            return None
        return await self.primary.fetchval(_COMMIT_LSN)


def read_router(primary: PgPool, settings: ServiceSettings, *, max_size: int) -> ReadRouter:
    """The router of a design's one PostgreSQL server: a pool per member of its URL (none when the URL
    names one server, or when ``read_from_replicas`` is off), each as bounded as the primary's."""
    # Every member, the primary's host included: which one leads changes with a failover. The leader's
    # pool asks for a standby and fails, so it is skipped, and tried again every skip_s (one refused
    # connection per instance every 2 s): a primary demoted by a failover takes reads again.
    urls = member_urls(primary.url) if settings.read_from_replicas else []
    replicas = [PgPool(url, timeout_s=primary.timeout_s, max_size=max_size, name=f"{primary.name}-replica-{i}",
                       unavailable=primary.unavailable) for i, url in enumerate(urls)]
    return ReadRouter(primary, replicas, wait_s=settings.read_after_wait_s)
