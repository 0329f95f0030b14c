"""Click analytics over Kafka: a batching publisher (the ClickSink) and the aggregating consumer.

A redirect only increments a counter in memory. Every ``flush_interval`` the counts go to the
``link-clicked`` topic as one message per chunk of codes, each with a unique ``batch_id``; a
batch that fails to send is retried with the same id, and the consumer applies each id once.
What can be lost, precisely: clicks counted in an instance's memory when that instance is
killed (at most one flush interval of them), clicks beyond ``max_pending_codes`` distinct codes
while Kafka is unreachable (counted in ``clicks_dropped_total``), and, on Tansu only, batches
acknowledged but not yet consumed when the broker restarts (Tansu keeps its log in memory).
"""

from __future__ import annotations

import asyncio
import json
import uuid

from aiokafka.errors import KafkaError

from services.clients.kafka import KafkaConsumer, KafkaProducer
from services.consumer_loop import Batch, ConsumerLoop
from services.logging import get_logger
from services.tasks import cancel_and_wait
from shortener.domain import LinkClicked
from shortener.ports import LinkRepository, StoreUnavailable

log = get_logger(__name__)
MAX_CODES_PER_MESSAGE = 5000
_SEND_FAILURES = (KafkaError, OSError, asyncio.TimeoutError)


class ClickPublisher:
    name = "click-publisher"
    critical = False

    def __init__(self, producer: KafkaProducer, *, topic: str, instance: str, flush_interval_s: float,
                 max_pending_codes: int) -> None:
        self._producer = producer
        self._topic = topic
        self._instance = instance
        self._interval = flush_interval_s
        self._max_pending = max_pending_codes
        self._pending: dict[str, int] = {}
        self._unsent: list[LinkClicked] = []
        self._started = False
        self._task: asyncio.Task | None = None
        # One flush at a time: two would both send the batch at the head of the queue.
        self._flushing = asyncio.Lock()
        self.recorded = 0
        self.published = 0
        self.dropped = 0

    # The hot path: no await, no allocation beyond a dict slot.
    def record(self, code: str) -> None:
        pending = self._pending
        if code in pending:
            pending[code] += 1
        elif len(pending) < self._max_pending:
            pending[code] = 1
        else:
            self.dropped += 1
            return
        self.recorded += 1

    async def start(self) -> None:
        try:
            await asyncio.wait_for(self._producer.start(), 10.0)
            self._started = True
        except (asyncio.TimeoutError, *_SEND_FAILURES) as exc:
            # Redirects must not wait on analytics: start anyway, connect on a later flush.
            log.warning("click_producer_not_started", error=str(exc)[:200])
        self._task = asyncio.create_task(self._loop(), name="click-publisher")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        try:
            await asyncio.wait_for(self.flush(), 5.0)  # a graceful stop loses nothing
        except (asyncio.TimeoutError, *_SEND_FAILURES):
            log.warning("clicks_unflushed_at_stop", batches=len(self._unsent))
        if self._started:
            await self._producer.stop()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except _SEND_FAILURES as exc:
                log.warning("click_flush_failed", error=str(exc)[:200], unsent=len(self._unsent))

    def _cut_batches(self) -> None:
        pending, self._pending = self._pending, {}
        items = list(pending.items())
        for i in range(0, len(items), MAX_CODES_PER_MESSAGE):
            self._unsent.append(LinkClicked(uuid.uuid4().hex, self._instance, dict(items[i:i + MAX_CODES_PER_MESSAGE])))

    async def flush(self) -> None:
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        self._cut_batches()
        if not self._unsent:
            return
        if not self._started:
            await self._producer.start()
            self._started = True
        while self._unsent:
            batch = self._unsent[0]
            try:
                await self._producer.send(self._topic, json.dumps(batch.to_json()).encode(),
                                          key=self._instance.encode())
            except _SEND_FAILURES:
                # The topic may be gone (Tansu restarted with an empty log): recreate and retry later.
                try:
                    await self._producer.ensure_topics()
                except _SEND_FAILURES:
                    pass
                raise
            self._unsent.pop(0)
            self.published += sum(batch.counts.values())

    async def _not_connected(self) -> None:
        raise ConnectionError("click producer has not connected to Kafka yet; clicks are buffered")

    def health_checks(self) -> dict:
        return self._producer.health_checks() if self._started else {"kafka": self._not_connected}


class ClickAggregator(ConsumerLoop):
    """Consumer-group member: applies each batch to PostgreSQL once, then commits (at-least-once in, exactly-once effect).

    While PostgreSQL is down the loop holds the partition (the batch is handed again after a pause);
    batches applied before the failure come again and are skipped by their batch id.
    """

    critical = True  # the aggregator process is useless without its consumer
    transient = (StoreUnavailable, KafkaError)
    max_records = 200

    def __init__(self, consumer: KafkaConsumer, repo: LinkRepository) -> None:
        super().__init__("click-aggregator", consumer)
        self._repo = repo
        self.applied = 0
        self.duplicates = 0
        self.malformed = 0

    async def handle(self, batch: Batch) -> None:
        for records in batch.values():
            for record in records:
                await self._apply(record.value)

    async def _apply(self, raw: bytes) -> None:
        try:
            clicks = LinkClicked.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError):
            self.malformed += 1
            log.error("malformed_click_batch", size=len(raw))
            return
        if await self._repo.apply_clicks(clicks):
            self.applied += 1
        else:
            self.duplicates += 1
