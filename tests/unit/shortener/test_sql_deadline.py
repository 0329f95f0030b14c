"""The repository turns a hung database into StoreUnavailable within one overall deadline."""

from __future__ import annotations

import asyncio
import time

import pytest

from shortener.adapters.sql import SqlLinkRepository
from shortener.ports import StoreUnavailable


async def test_a_hung_operation_fails_within_the_deadline():
    repo = SqlLinkRepository(lambda: None, deadline_s=0.2)

    async def hang() -> None:
        await asyncio.sleep(10)

    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await repo._run(hang)
    assert time.monotonic() - started < 0.5


async def test_a_refused_connection_is_store_unavailable():
    repo = SqlLinkRepository(lambda: None, deadline_s=1)

    async def refused() -> None:
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(StoreUnavailable, match="refused"):
        await repo._run(refused)


async def test_a_slow_cleanup_does_not_delay_the_answer():
    """Cancelling a query on a hung server runs a rollback that hangs too; the caller must not wait for it."""
    repo = SqlLinkRepository(lambda: None, deadline_s=0.2)
    cleaned = asyncio.Event()

    async def hang_then_slow_cleanup() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(1.0)  # the rollback on a hung server
            cleaned.set()

    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="within 0.2s"):
        await repo._run(hang_then_slow_cleanup)
    assert time.monotonic() - started < 0.5
    await asyncio.wait_for(cleaned.wait(), 2), "the cleanup still runs, in the background"
