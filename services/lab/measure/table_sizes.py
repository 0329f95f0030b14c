"""What a design's data takes on disk: every user table's rows and total size (heap, indexes, TOAST:
``pg_total_relation_size``) on every PostgreSQL server after a run, summed over the servers (shards
hold the same tables). ``sdlab estimate`` turns it into bytes per row, the unit of storage a year.

Small tables weigh more per row than big ones (a page is 8 KiB, an index has its root pages), so a
run with few rows over-states the bytes per row a little; the figure says how many rows it is from."""

from __future__ import annotations

import asyncio

import asyncpg

from services.lab.measure.cost import postgres_urls
from services.lab.state import LabState

# Marked like the cost meter's own reads, which it leaves out of the statements it counts.
_TABLES = ("SELECT /* sdlab-cost */ schemaname, relname, pg_total_relation_size(relid) AS bytes "
           "FROM pg_stat_user_tables ORDER BY relname")


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


async def _server(url: str) -> dict[str, tuple[int, int]]:
    """table -> (rows, bytes) on one server; nothing when it cannot be read (the run is still valid)."""
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
        return {}
    try:
        found = {}
        for row in await conn.fetch(_TABLES):
            name = f"{_quoted(row['schemaname'])}.{_quoted(row['relname'])}"
            rows = await conn.fetchval(f"SELECT /* sdlab-cost */ count(*) FROM {name}")
            found[row["relname"]] = (int(rows), int(row["bytes"]))
        return found
    except asyncpg.PostgresError:
        return {}
    finally:
        await conn.close()


async def _all(urls: list[str]) -> dict[str, dict]:
    totals: dict[str, dict] = {}
    for found in await asyncio.gather(*(_server(url) for url in urls)):
        for table, (rows, size) in found.items():
            entry = totals.setdefault(table, {"rows": 0, "bytes": 0})
            entry["rows"] += rows
            entry["bytes"] += size
    for entry in totals.values():
        entry["bytes_per_row"] = round(entry["bytes"] / entry["rows"], 1) if entry["rows"] else None
    return dict(sorted(totals.items()))


def measure(state: LabState) -> dict[str, dict]:
    """``summary.json``'s ``tables``: {table: {rows, bytes, bytes_per_row}} over every server."""
    return asyncio.run(_all(list(postgres_urls(state).values())))
