"""Kafka through aiokafka: a producer and a consumer, each started and stopped in the app's lifespan.

Delivery settings, chosen on purpose:
- ``acks="all"``: a send is acknowledged only once every in-sync replica has it. aiokafka
  defaults to ``acks=1``; on a one-broker lab both mean the same, but on a real cluster
  ``acks=1`` loses acknowledged messages when the leader dies, and the lab says "nothing
  acknowledged is lost".
- ``enable_idempotence=False``: Tansu does not implement ``InitProducerId``. Retries may
  therefore duplicate a message, so every consumer drops duplicates by message id
  (at-least-once delivery plus idempotent processing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from services.resources import HealthCheck


class LostLogs:
    """Tells when a broker lost a partition's log (Tansu keeps it in memory: a restart empties it,
    and new records are numbered from 0 again): the end it reports went down, which a broker that
    keeps its log never does.

    Not "the position is past the end": Tansu 0.6 reports a partition's end as the first offset
    of its last batch, not one past its last record, so a reader that is simply caught up stands a
    batch past it. Rewinding on that reads the whole log again, and again at the next check
    (measured: a broker kept at a full core by two such readers, re-reading ever longer logs).
    """

    def __init__(self) -> None:
        self._ends: dict = {}  # partition -> the highest end reported

    def lost(self, partition, end: int | None) -> bool:
        if end is None:
            return False
        seen = self._ends.get(partition)
        self._ends[partition] = end if seen is None else max(seen, end)
        if seen is not None and end < seen:
            self._ends[partition] = end  # the new log's end, from here on
            return True
        return False


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 3


async def ensure_topics(bootstrap: Sequence[str], topics: Sequence[TopicSpec], timeout_s: float = 5.0) -> None:
    """Create missing topics. Tansu keeps topics in memory, so a broker restart needs this again."""
    if not topics:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=list(bootstrap), request_timeout_ms=int(timeout_s * 1000))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t.name, t.partitions, 1) for t in topics if t.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another instance created it between our list and create
    finally:
        await admin.close()


class KafkaProducer:
    def __init__(
        self,
        bootstrap: Sequence[str],
        *,
        client_id: str,
        topics: Sequence[TopicSpec] = (),
        linger_ms: int = 5,
        request_timeout_s: float = 5.0,
        critical: bool = False,
    ) -> None:
        self.name = "kafka"
        self.critical = critical
        self._bootstrap = list(bootstrap)
        self._client_id = client_id
        self._topics = list(topics)
        self._linger_ms = linger_ms
        self._timeout_s = request_timeout_s
        self._producer: AIOKafkaProducer | None = None

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("KafkaProducer used before start()")
        return self._producer

    async def ensure_topics(self) -> None:
        await ensure_topics(self._bootstrap, self._topics, self._timeout_s)

    async def start(self) -> None:
        await self.ensure_topics()
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=False,
            linger_ms=self._linger_ms,
            request_timeout_ms=int(self._timeout_s * 1000),
        )
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()  # flushes what is buffered
            self._producer = None

    @property
    def bootstrap(self) -> list[str]:
        return list(self._bootstrap)

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Send and wait for the broker's acknowledgement."""
        await self.producer.send_and_wait(topic, value, key=key)

    async def enqueue(self, topic: str, value: bytes, key: bytes | None = None,
                      partition: int | None = None) -> asyncio.Future:
        """Queue a record and return the future of its acknowledgement, so that a batch can be
        sent back to back and awaited once (records of one partition keep their order)."""
        return await self.producer.send(topic, value, key=key, partition=partition)

    async def _metadata(self) -> None:
        await asyncio.wait_for(self.producer.client.fetch_all_metadata(), self._timeout_s)

    def health_checks(self) -> dict[str, HealthCheck]:
        return {"kafka": self._metadata}


class KafkaConsumer:
    """A consumer-group member with manual commits (commit after processing: at-least-once)."""

    def __init__(
        self,
        bootstrap: Sequence[str],
        *,
        group_id: str,
        topics: Sequence[TopicSpec],
        client_id: str,
        max_poll_records: int = 500,
        fetch_max_wait_ms: int = 500,
        metadata_max_age_ms: int | None = None,
        critical: bool = False,
    ) -> None:
        self.name = f"kafka-consumer-{group_id}"
        self.critical = critical
        self._bootstrap = list(bootstrap)
        self._topics = list(topics)
        self._options = dict(
            bootstrap_servers=self._bootstrap,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_poll_records,
            fetch_max_wait_ms=fetch_max_wait_ms,
        )
        if metadata_max_age_ms is not None:
            # A subscribed topic that vanished (a broker that lost its log re-creates it on the
            # next produce) is seen again within this; aiokafka's default is 5 minutes.
            self._options["metadata_max_age_ms"] = metadata_max_age_ms
        self._consumer: AIOKafkaConsumer | None = None
        self._next_offset: dict = {}  # partition -> offset after the last record handed out
        self._lost = LostLogs()

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("KafkaConsumer used before start()")
        return self._consumer

    async def start(self) -> None:
        await ensure_topics(self._bootstrap, self._topics)
        # aiokafka binds to the running loop, so the consumer is built here, not in __init__.
        consumer = AIOKafkaConsumer(*[t.name for t in self._topics], **self._options)
        await consumer.start()
        self._consumer = consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            try:
                await self._consumer.stop()
            except KafkaError:
                pass  # leaving the group fails when the broker is gone; the process is stopping anyway
            self._consumer = None

    async def getmany(self, *, timeout_ms: int, max_records: int | None = None) -> dict:
        """``AIOKafkaConsumer.getmany``, remembering where each partition's records end (for ``lag``)."""
        records = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        for partition, messages in records.items():
            if messages:
                self._next_offset[partition] = messages[-1].offset + 1
        return records

    def seek(self, partition, offset: int) -> None:
        """Fetch ``partition`` from ``offset`` next (back to a batch that was not handled)."""
        if partition not in self.consumer.assignment():
            return  # a rebalance gave it to another member, which starts from the committed offset
        self.consumer.seek(partition, offset)
        self._next_offset[partition] = offset

    async def commit(self) -> None:
        """Commit the group's offsets: everything fetched so far was handled."""
        await self.consumer.commit()

    async def rewind_lost_logs(self) -> list:
        """Partitions whose log is now shorter than our position, sent back to their start.

        A broker that lost its log (Tansu keeps it in memory: a restart empties it) numbers new
        records from 0 again, and Tansu answers a fetch past the end with nothing rather than
        OffsetOutOfRange: a consumer left at offset 500 would skip the first 500 new records
        (see :class:`LostLogs`)."""
        if self._consumer is None or not self._consumer.assignment():
            return []
        partitions = list(self._consumer.assignment())
        ends = await self._consumer.end_offsets(partitions)
        rewound = []
        for partition in partitions:
            if self._lost.lost(partition, ends.get(partition)):
                self._consumer.seek(partition, 0)
                self._next_offset.pop(partition, None)
                rewound.append(partition)
        return rewound

    def lag(self) -> dict[str, int]:
        """Records behind the end of the log, per topic, over this member's partitions (as of the last
        fetch: aiokafka learns each partition's high watermark from its fetch responses)."""
        if self._consumer is None:
            return {}
        behind: dict[str, int] = {}
        for partition in self._consumer.assignment():
            end = self._consumer.highwater(partition)
            if end is None:
                continue
            done = self._next_offset.get(partition, end)
            behind[partition.topic] = behind.get(partition.topic, 0) + max(0, end - done)
        return behind

    async def _metadata(self) -> None:
        await asyncio.wait_for(self.consumer._client.fetch_all_metadata(), 2.0)

    def health_checks(self) -> dict[str, HealthCheck]:
        return {"kafka": self._metadata}
