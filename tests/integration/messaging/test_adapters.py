"""Messaging's stores and registry against the real parts: PostgreSQL (migrated by `sdlab up`) and Redis."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from messaging.adapters.redis import RedisRegistry
from messaging.adapters.sql import SqlConversationStore, SqlMessageStore
from messaging.domain import Conversation, MessageSent, message_id_for, new_conversation_id
from services.clients.postgres import asyncpg_url
from services.clients.redis import RedisClient


def _url(lab, name: str) -> str:
    return lab.state["components"][name]["url"]


@pytest.fixture
async def stores(lab):
    engine = create_async_engine(asyncpg_url(_url(lab, "postgres-0")))
    yield SqlConversationStore(lambda: engine, 2.0), SqlMessageStore(lambda: engine, 2.0)
    await engine.dispose()


@pytest.fixture
async def registry(lab):
    client = RedisClient(_url(lab, "redis"), timeout_s=1.0)
    await client.start()
    yield RedisRegistry(lambda: client.redis)
    await client.stop()


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
