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
