"""Messaging's stores, outbox, registry, inbox bell and delivery reader against the real parts:
PostgreSQL (migrated by `sdlab up`), Redis and Kafka."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone
from types import SimpleNamespace

import asyncpg
import orjson
import pytest

from messaging.adapters.outbox import PgOutbox
from messaging.adapters.redis import BellListener, RedisInboxBell, RedisRegistry
from messaging.adapters.sql import SqlConversationStore, SqlMessageStore
from messaging.config import MessagingSettings
from messaging.delivery import DeliveryReader
from messaging.domain import (
    Conversation,
    MessageSent,
    message_id_for,
    new_conversation_id,
)
from messaging.ports import StoreUnavailable
from services.clients.kafka import KafkaProducer, TopicSpec
from services.clients.postgres import PgPool, dsn
from services.clients.redis import RedisClient


def _url(lab, name: str) -> str:
    return lab.state["components"][name]["url"]


@pytest.fixture
async def stores(lab):
    db = PgPool(_url(lab, "postgres-0"), timeout_s=2.0, unavailable=StoreUnavailable)
    await db.start()
    yield SqlConversationStore(db), SqlMessageStore(db)
    await db.stop()


@pytest.fixture
async def redis(lab):
    client = RedisClient(_url(lab, "redis"), timeout_s=1.0)
    await client.start()
    yield lambda: client.redis
    await client.stop()


@pytest.fixture
async def registry(redis):
    return RedisRegistry(redis)


def _sent(conversation_id: str, sender: str, client_msg_id: str, text: str = "hi") -> MessageSent:
    return MessageSent(conversation_id, message_id_for(sender, conversation_id, client_msg_id), sender, text,
                       datetime.now(timezone.utc))


async def _conversation(conversations, *members: str) -> Conversation:
    conversation = Conversation(new_conversation_id(), tuple(members), "it", datetime.now(timezone.utc))
    await conversations.create(conversation)
    return conversation


def _names(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"i{i}_{tag}" for i in range(n)]


async def test_append_assigns_contiguous_seqs_and_recognises_a_resend(stores):
    conversations, messages = stores
    a, b = _names(2)
    c = await _conversation(conversations, a, b)
    first = await messages.append(_sent(c.id, a, "m1"), outbox=False)
    again = await messages.append(_sent(c.id, a, "m1", text="changed"), outbox=False)
    second = await messages.append(_sent(c.id, b, "m1"), outbox=False)  # same client id, other sender
    assert (first.message.seq, first.new) == (1, True)
    assert (again.message.seq, again.new, again.message.text) == (1, False, "hi")
    assert (second.message.seq, second.new) == (2, True)
    assert [m.seq for m in await messages.history(c.id, 0, 10)] == [1, 2]
    assert [m.seq for m in await messages.history(c.id, 1, 10)] == [2]
    assert (await conversations.get(c.id)).last_seq == 2
    assert await messages.append(_sent(uuid.uuid4().hex, a, "x"), outbox=False) is None  # no such conversation


async def test_concurrent_appends_to_one_conversation_never_share_or_skip_a_seq(stores):
    conversations, messages = stores
    a, b = _names(2)
    c = await _conversation(conversations, a, b)
    appended = await asyncio.gather(*(messages.append(_sent(c.id, a, f"m{i}"), outbox=False) for i in range(40)))
    assert sorted(x.message.seq for x in appended) == list(range(1, 41))
    assert [m.seq for m in await messages.history(c.id, 0, 100)] == list(range(1, 41))


async def test_read_marks_only_move_forward_and_peers_skip_big_groups(stores):
    conversations, messages = stores
    a, b, c3 = _names(3)
    pair = await _conversation(conversations, a, b)
    await _conversation(conversations, a, b, c3)
    for i in range(3):
        await messages.append(_sent(pair.id, a, f"r{i}"), outbox=False)
    assert await messages.mark_read(pair.id, b, 2) == 2
    assert await messages.mark_read(pair.id, b, 1) == 2
    assert sorted(await conversations.peers(a, max_group=2, limit=10)) == [b]
    assert sorted(await conversations.peers(a, max_group=3, limit=10)) == [b, c3]
    assert [x.id for x in await conversations.list_for(c3, 10)] != []


async def test_routes_follow_connections_and_a_lapsed_gateway_counts_as_gone(registry):
    u, v = _names(2)
    g1, g2 = f"it-gw-{uuid.uuid4().hex[:6]}", f"it-gw-{uuid.uuid4().hex[:6]}"
    assert await registry.heartbeat(g1, 5.0) is False  # it had no liveness key yet
    assert await registry.heartbeat(g1, 5.0) is True
    await registry.heartbeat(g2, 0.2)
    assert await registry.connected(g1, u) is True  # first connection anywhere
    assert await registry.connected(g1, u) is False  # a second device
    assert await registry.connected(g2, v) is True
    assert await registry.routes([u, v]) == {g1: [u], g2: [v]}
    await asyncio.sleep(0.3)  # g2's key expires: its routes no longer count
    assert await registry.online([u, v]) == {u: True, v: False}
    # The session's own reaper (the fan-out worker) forgets dead gateways every second, so it may
    # have forgotten this one already: either way its user is gone from the routes.
    assert await registry.forget_gateway(g2) in ([v], [])
    assert await registry.routes([v]) == {} and g2 not in await registry.dead_gateways()
    assert await registry.disconnected(g1, u) is False  # one device left
    assert await registry.disconnected(g1, u) is True
    assert await registry.routes([u]) == {}
    await registry.forget_gateway(g1)


async def test_a_db_first_append_writes_its_outbox_row_in_the_same_statement(stores, lab):
    """The append, the seq and the outbox row: one statement; the row is deleted once published,
    and one the gateway never published is what the relay sweeps once it is stale."""
    conversations, messages = stores
    a, b = _names(2)
    c = await _conversation(conversations, a, b)
    first = await messages.append(_sent(c.id, a, "o1"), outbox=True)
    second = await messages.append(_sent(c.id, b, "o2"), outbox=True)
    assert first.outbox_id is not None and second.outbox_id > first.outbox_id
    conn = await asyncpg.connect(dsn(_url(lab, "postgres-0")))
    try:
        rows = await conn.fetch("SELECT id, seq FROM message_outbox WHERE conversation_id = $1 ORDER BY id", c.id)
        assert [(r["id"], r["seq"]) for r in rows] == [(first.outbox_id, 1), (second.outbox_id, 2)]
        await messages.published([first.outbox_id])
        left = await conn.fetch("SELECT id FROM message_outbox WHERE conversation_id = $1", c.id)
        assert [r["id"] for r in left] == [second.outbox_id]
        # Stale only once old enough, by the database's clock (the session's own relay may sweep it
        # first: either way it must never sweep a fresh row).
        await conn.execute("UPDATE message_outbox SET created_at = now() - interval '1 hour' WHERE id = $1",
                           second.outbox_id)
    finally:
        await conn.close()
    outbox = PgOutbox(dsn(_url(lab, "postgres-0")), 2.0)
    try:
        fresh = await messages.append(_sent(c.id, a, "o3"), outbox=True)
        if await outbox.lead():  # the session's relay leads: no second leader, by design
            batch = await outbox.stale(100, 60.0)
            assert fresh.outbox_id not in batch.ids
        else:
            assert await outbox.lead() is False
    finally:
        await outbox.stop()


async def test_a_quiet_gateway_is_rung_once_then_not_while_sent_to(redis):
    gateway = f"it-gw-{uuid.uuid4().hex[:6]}"
    rung = asyncio.Event()
    rings = []

    def ring() -> None:
        rings.append(1)
        rung.set()

    listener = BellListener(redis, gateway, ring)
    await listener.start()
    try:
        await asyncio.wait_for(rung.wait(), 5)  # subscribing rings once (a ring may have been missed)
        rung.clear()
        bell = RedisInboxBell(redis, quiet_s=10.0)
        await bell.ring(gateway)
        await asyncio.wait_for(rung.wait(), 5)
        before = len(rings)
        for _ in range(5):
            await bell.ring(gateway)  # sent to lately: the reader is awake, nobody rings
        await asyncio.sleep(0.3)
        assert len(rings) == before
    finally:
        await listener.stop()


async def test_a_gateway_reader_tails_its_topic_and_wakes_when_rung(lab):
    gateway = f"it-gw-{uuid.uuid4().hex[:6]}"
    settings = MessagingSettings(kafka_bootstrap_servers=[_url(lab, "kafka")], instance_id=gateway,
                                 reader_awake_s=3.0, reader_check_s=60)
    topic = TopicSpec(settings.delivery_topic(gateway), partitions=1)
    producer = KafkaProducer(settings.kafka_bootstrap_servers, client_id="it-deliveries", topics=[topic])
    await producer.start()
    # Before the reader: it starts at the end (Tansu's reported end may still show the last record).
    await producer.send(topic.name, orjson.dumps({"to": ["old"], "frame": {"n": 0}}))

    delivered: list[tuple[list[str], dict]] = []
    hub = SimpleNamespace(deliver=lambda users, frame: delivered.append((users, frame)))
    reader = DeliveryReader(settings, hub)
    await reader.start()

    async def until(done, timeout_s: float = 20.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not done():
                await asyncio.sleep(0.02)

    try:
        await until(lambda: reader.pauses >= 1)  # connected, read to the end, nothing new: asleep
        for n in (1, 2):
            reader.ring()
            await producer.send(topic.name, orjson.dumps({"to": ["ann"], "frame": {"n": n}}))
        await producer.send(topic.name, b"not a delivery")
        await until(lambda: len(delivered) >= 2 and reader.malformed >= 1)
        await reader.health_checks()["delivery-topic"]()
    finally:
        await reader.stop()
        await producer.stop()
    assert [d for d in delivered if d[0] != ["old"]] == [(["ann"], {"n": 1}), (["ann"], {"n": 2})]
