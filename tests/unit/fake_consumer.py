"""An in-memory consumer with the port of services.consumer_loop (as KafkaConsumer has it), for
the kit's ConsumerLoop and every design's loop on it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from services.consumer_loop import ConsumerLoop


@dataclass(frozen=True)
class Rec:
    topic: str
    offset: int
    value: bytes


class Down(Exception):
    """A dependency that is down for now (the loops' transient kind)."""


class FakeConsumer:
    """Partitions as lists; a position and a committed offset each; failures on demand."""

    name = "fake-consumer"
    critical = False

    def __init__(self, logs: dict[int, list[bytes]]) -> None:
        self.logs = logs
        self.position = dict.fromkeys(logs, 0)
        self.committed = dict.fromkeys(logs, 0)
        self.fetch_failures: list[BaseException] = []
        self.commit_failures: list[BaseException] = []
        self.lost: list[int] = []
        self.rewind_calls = 0
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def getmany(self, *, timeout_ms: int, max_records: int | None = None) -> dict:
        if self.fetch_failures:
            raise self.fetch_failures.pop(0)
        batch, room = {}, max_records or 10**9
        for partition, log in self.logs.items():
            start = self.position[partition]
            taken = log[start:start + room]
            if taken:
                batch[partition] = [Rec("t", start + i, v) for i, v in enumerate(taken)]
                self.position[partition] += len(taken)
                room -= len(taken)
        if not batch:
            await asyncio.sleep(0.001)  # a fetch that waited and found nothing
        return batch

    def seek(self, partition: int, offset: int) -> None:
        self.position[partition] = offset

    async def commit(self) -> None:
        if self.commit_failures:
            raise self.commit_failures.pop(0)
        self.committed = dict(self.position)

    async def rewind_lost_logs(self) -> list:
        self.rewind_calls += 1
        lost, self.lost = self.lost, []
        for partition in lost:
            self.position[partition] = 0
        return lost

    def health_checks(self) -> dict:
        return {}

    def done(self) -> bool:
        return all(self.committed[p] == len(log) for p, log in self.logs.items())


async def run_until(loop: ConsumerLoop, done, timeout_s: float = 5.0) -> None:
    """Start ``loop``, wait until ``done()``, stop it (draining)."""
    await loop.start()
    try:
        async with asyncio.timeout(timeout_s):
            while not done():
                await asyncio.sleep(0.001)
    finally:
        await loop.stop()
