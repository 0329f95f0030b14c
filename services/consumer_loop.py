"""The consume loop of every design's Kafka consumers: fetch a batch, handle it, commit.

At least once: offsets are committed only once the whole batch was handled. No fetched batch is
passed over: when handling fails, the consumer goes back to the batch's first record in every
partition, so the next fetch hands the same batch again (without that, the next fetch would go
on after it, and a later commit would cover records never handled). Hence a handler must be
idempotent, and must count and skip a record it can never handle, or that record comes back
forever.

An error listed in ``transient`` (a part that is down for now) pauses the loop ``pause_s`` and
the batch is tried again; any other error is logged as a bug and retried after a longer pause
(see :class:`services.tasks.BackgroundLoop`). ``stop`` drains: a batch in hand is finished and
committed, for at most ``drain_s``, before the consumer leaves its group; a loop that is waiting
for records stops at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Mapping, Sequence
from typing import Protocol

from services.logging import get_logger
from services.resources import HealthCheck
from services.tasks import BackgroundLoop, cancel_and_wait

log = get_logger(__name__)


class Record(Protocol):
    topic: str
    offset: int
    value: bytes


# Records by partition, each partition's in log order.
Batch = Mapping[Hashable, Sequence[Record]]


class Consumer(Protocol):
    """What a :class:`ConsumerLoop` reads through: :class:`services.clients.kafka.KafkaConsumer`
    (a consumer-group member) or another reader of a log with the same calls."""

    name: str
    critical: bool

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def getmany(self, *, timeout_ms: int, max_records: int | None = None) -> Batch: ...

    def seek(self, partition: Hashable, offset: int) -> None: ...

    async def commit(self) -> None:
        """Record that everything fetched so far was handled."""
        ...

    async def rewind_lost_logs(self) -> list:
        """Partitions whose log the broker lost, sent back to their start."""
        ...

    def health_checks(self) -> dict[str, HealthCheck]: ...


class ConsumerLoop(BackgroundLoop):
    """A lifespan resource: starts its consumer, then runs fetch, :meth:`handle`, commit until stopped."""

    max_records = 500
    fetch_timeout_ms = 1000
    # How often a loop that fetched nothing asks whether the broker lost its log; None: never.
    lost_log_check_s: float | None = None
    drain_s = 2.0

    def __init__(self, name: str, consumer: Consumer) -> None:
        super().__init__(name)
        self.consumer = consumer
        self.batches = 0  # batches handled and committed
        self._handling = False  # between a fetch that brought records and their commit
        self._checked_at = float("-inf")

    async def start(self) -> None:
        self._stopping = False
        await self.consumer.start()
        await super().start()

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None and self._handling:
            await asyncio.wait({self._task}, timeout=self.drain_s)
        await cancel_and_wait(self._task)
        await self.consumer.stop()

    async def step(self) -> None:
        batch = await self.consumer.getmany(timeout_ms=self.fetch_timeout_ms, max_records=self.max_records)
        if self._stopping:
            self._go_back(batch)  # stopping: left for whoever reads next, not half handled
            return
        if not any(batch.values()):
            await self._lost_logs()
            await self.idle()
            return
        self._handling = True
        try:
            try:
                await self.handle(batch)
            except BaseException:
                self._go_back(batch)
                raise
            self.batches += 1
            await self.consumer.commit()
        finally:
            self._handling = False

    def _go_back(self, batch: Batch) -> None:
        for partition, records in batch.items():
            if records:
                self.consumer.seek(partition, records[0].offset)

    async def _lost_logs(self) -> None:
        if self.lost_log_check_s is None:
            return
        now = asyncio.get_running_loop().time()
        if now - self._checked_at < self.lost_log_check_s:
            return
        self._checked_at = now
        for partition in await self.consumer.rewind_lost_logs():
            log.warning("log_lost_rewound", loop=self.name, partition=str(partition))

    async def handle(self, batch: Batch) -> None:
        """Handle every record of ``batch``; raise to have the whole batch handed again."""
        raise NotImplementedError

    async def idle(self) -> None:
        """After a fetch that brought nothing (a loop may wait for a reason to fetch again)."""

    def health_checks(self) -> dict[str, HealthCheck]:
        return self.consumer.health_checks()
