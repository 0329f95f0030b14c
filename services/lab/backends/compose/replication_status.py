"""Each PostgreSQL container's role and replication lag in compose mode (``sdlab status``), asked of the
servers themselves: ``pg_is_in_recovery()`` on every one, ``pg_stat_replication`` on the primaries
(compose replicas have no Patroni to ask; :mod:`services.lab.replication.status` is local mode's)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from services.lab.replication import layout as replication
from services.lab.state import ComponentStatus, LabState

# The WAL a replica has not replayed yet, by the primary's count; its name is its application_name.
_STREAMS = ("SELECT application_name, sync_state, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS lag FROM pg_stat_replication")
# A replica's lag in seconds, as local mode reads it (services/lab/replication_status.lag_seconds): now
# minus the commit time of the last transaction it replayed, 0 once it has replayed all it received
# (an idle primary would otherwise read as a lag growing by the second); NULL before any replay.
_LAG_S = ("SELECT CASE WHEN pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0.0 "
          "ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END")


@dataclass
class ServerAnswer:
    in_recovery: bool | None  # None: the server did not answer
    streams: list[dict]  # a primary's pg_stat_replication rows
    lag_s: float | None = None  # a replica's own count, in seconds


def roles_of(answers: dict[str, ServerAnswer]) -> dict[str, tuple[str, int | None, float | None]]:
    """Server name -> (role, lag in bytes, lag in seconds; None for a primary or where unknown)."""
    streaming = {s["application_name"]: s for a in answers.values() if a.in_recovery is False for s in a.streams}
    found: dict[str, tuple[str, int | None, float | None]] = {}
    for name, answer in answers.items():
        if answer.in_recovery is None:
            continue
        if not answer.in_recovery:
            found[name] = ("primary", None, None)
        elif name in streaming:
            stream = streaming[name]
            sync = " (sync)" if stream.get("sync_state") in ("sync", "quorum") else ""
            found[name] = (f"replica{sync}", stream.get("lag"), answer.lag_s)
        else:
            found[name] = ("replica (not streaming)", None, answer.lag_s)
    return found


async def _ask(url: str, timeout_s: float) -> ServerAnswer:
    try:
        conn = await asyncpg.connect(url, timeout=timeout_s)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
        return ServerAnswer(None, [])
    try:
        in_recovery = await conn.fetchval("SELECT pg_is_in_recovery()", timeout=timeout_s)
        if in_recovery:
            lag_s = await conn.fetchval(_LAG_S, timeout=timeout_s)
            return ServerAnswer(True, [], None if lag_s is None else round(max(0.0, lag_s), 3))
        return ServerAnswer(False, [dict(r) for r in await conn.fetch(_STREAMS, timeout=timeout_s)])
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
        return ServerAnswer(None, [])
    finally:
        await conn.close(timeout=timeout_s)


async def _ask_all(urls: dict[str, str], timeout_s: float) -> dict[str, ServerAnswer]:
    answers = await asyncio.gather(*(_ask(u, timeout_s) for u in urls.values()))
    return dict(zip(urls, answers, strict=True))


def annotate(state: LabState, rows: list[ComponentStatus], timeout_s: float = 1.0) -> None:
    """Fill in ``role``, ``lag_bytes`` and ``lag_s`` of every PostgreSQL row, when the deployment has replicas."""
    servers = {c.name: c.url for c in state.components.values()
               if c.kind == "postgres" and c.url and replication.parse_member(c.name) is not None}
    if not any(replication.parse_member(n)[1] > 0 for n in servers):
        return
    roles = roles_of(asyncio.run(_ask_all(servers, timeout_s)))
    for row in rows:
        if row.name in roles:
            row.role, row.lag_bytes, row.lag_s = roles[row.name]
