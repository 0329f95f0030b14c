"""Each PostgreSQL container's role and replication lag in compose mode (``sdlab status``), asked of the
servers themselves: ``pg_is_in_recovery()`` on every one, ``pg_stat_replication`` on the primaries
(compose replicas have no Patroni to ask; :mod:`services.lab.replication_status` is local mode's)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from services.lab import replication
from services.lab.state import ComponentStatus, LabState

# The WAL a replica has not replayed yet, by the primary's count; its name is its application_name.
_STREAMS = ("SELECT application_name, sync_state, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS lag FROM pg_stat_replication")


@dataclass
class ServerAnswer:
    in_recovery: bool | None  # None: the server did not answer
    streams: list[dict]  # a primary's pg_stat_replication rows


def roles_of(answers: dict[str, ServerAnswer]) -> dict[str, tuple[str, int | None]]:
    """Server name -> (role, lag in bytes; None for a primary or where unknown)."""
    streaming = {s["application_name"]: s for a in answers.values() if a.in_recovery is False for s in a.streams}
    found: dict[str, tuple[str, int | None]] = {}
    for name, answer in answers.items():
        if answer.in_recovery is None:
            continue
        if not answer.in_recovery:
            found[name] = ("primary", None)
        elif name in streaming:
            stream = streaming[name]
            sync = " (sync)" if stream.get("sync_state") in ("sync", "quorum") else ""
            found[name] = (f"replica{sync}", stream.get("lag"))
        else:
            found[name] = ("replica (not streaming)", None)
    return found


async def _ask(url: str, timeout_s: float) -> ServerAnswer:
    try:
        conn = await asyncpg.connect(url, timeout=timeout_s)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
        return ServerAnswer(None, [])
    try:
        in_recovery = await conn.fetchval("SELECT pg_is_in_recovery()", timeout=timeout_s)
        streams = [] if in_recovery else [dict(r) for r in await conn.fetch(_STREAMS, timeout=timeout_s)]
        return ServerAnswer(in_recovery, streams)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
        return ServerAnswer(None, [])
    finally:
        await conn.close(timeout=timeout_s)


async def _ask_all(urls: dict[str, str], timeout_s: float) -> dict[str, ServerAnswer]:
    answers = await asyncio.gather(*(_ask(u, timeout_s) for u in urls.values()))
    return dict(zip(urls, answers, strict=True))


def annotate(state: LabState, rows: list[ComponentStatus], timeout_s: float = 1.0) -> None:
    """Fill in ``role`` and ``lag_bytes`` of every PostgreSQL row, when the deployment has replicas."""
    servers = {c.name: c.url for c in state.components.values()
               if c.kind == "postgres" and c.url and replication.parse_member(c.name) is not None}
    if not any(replication.parse_member(n)[1] > 0 for n in servers):
        return
    roles = roles_of(asyncio.run(_ask_all(servers, timeout_s)))
    for row in rows:
        if row.name in roles:
            row.role, row.lag_bytes = roles[row.name]
