"""Admission control: a bounded number at once, a bounded wait, then 429 (RateLimited)."""

from __future__ import annotations

import asyncio

import pytest

from services.admission import Admission
from services.errors import RateLimited


async def test_a_burst_queues_within_the_bound_and_every_one_runs():
    admission = Admission(limit=2, wait_s=1.0)
    running, peak = 0, 0

    async def job() -> None:
        nonlocal running, peak
        async with admission.turn():
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1

    await asyncio.gather(*(job() for _ in range(10)))
    assert peak == 2 and admission.refused == 0 and admission.in_flight == 0 and admission.waiting == 0


async def test_past_the_bound_the_caller_is_told_to_come_back():
    admission = Admission(limit=1, wait_s=0.05)
    holding = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with admission.turn():
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    with pytest.raises(RateLimited) as refused:
        async with admission.turn():
            pass
    assert refused.value.code == "busy" and refused.value.retry_after_s >= 1
    assert admission.refused == 1 and admission.waiting == 0
    release.set()
    await holder
    async with admission.turn():  # the slot came back
        assert admission.in_flight == 1
