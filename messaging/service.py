"""Messaging's use cases: conversations, sending, reading, presence, and the routing of frames.

Every entrypoint (REST API, WebSocket gateway, relay and persister workers) calls these; they
talk to the parts only through the ports.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from messaging.config import MessagingSettings
from messaging.domain import (
    Conversation,
    MarkRead,
    Message,
    MessageSent,
    SendMessage,
    ack_frame,
    check_title,
    conversation_members,
    message_frame,
    message_id_for,
    new_conversation_id,
    presence_frame,
    receipt_frame,
)
from messaging.ports import (
    ConversationStore,
    Deliveries,
    LogUnavailable,
    MessageStore,
    Registry,
    RegistryUnavailable,
    SendLimiter,
    SentLog,
    StoreUnavailable,
)
from services.consistency import STALE_OK, ReadConsistency
from services.errors import Forbidden, InvalidInput, NotFound, RateLimited, Unavailable
from services.local_cache import LocalCache
from services.logging import get_logger

log = get_logger(__name__)


class Memberships:
    """Conversation members, cached: a conversation's members never change once it exists."""

    def __init__(self, store: ConversationStore, size: int = 100_000) -> None:
        self._store = store
        # conversation -> (members in order, the same as a set for membership tests); never stale,
        # so only the least recently used leave
        self._cache: LocalCache[tuple[tuple[str, ...], frozenset[str]]] = LocalCache(size, ttl_s=math.inf)

    async def _entry(self, conversation_id: str) -> tuple[tuple[str, ...], frozenset[str]] | None:
        hit, entry = self._cache.get(conversation_id)
        if hit:
            return entry
        conversation = await self._store.get(conversation_id)
        if conversation is None:
            return None
        entry = (conversation.members, frozenset(conversation.members))
        self._cache.put(conversation_id, entry)
        return entry

    async def members(self, conversation_id: str) -> tuple[str, ...] | None:
        entry = await self._entry(conversation_id)
        return entry[0] if entry else None

    async def check(self, user: str, conversation_id: str) -> tuple[str, ...]:
        """The members, if ``user`` is one; Forbidden otherwise (an unknown conversation too, so
        that ids cannot be probed)."""
        entry = await self._entry(conversation_id)
        if entry is None or user not in entry[1]:
            raise Forbidden(f"you are not a member of conversation {conversation_id!r}", code="forbidden")
        return entry[0]


class Router:
    """Sends a frame to the gateways that hold a connection of its recipients, and only those."""

    def __init__(self, registry: Registry, deliveries: Deliveries) -> None:
        self._registry = registry
        self._deliveries = deliveries

    async def route(self, conversation_id: str, users: Sequence[str], frame: dict) -> list:
        """Queue the frame for every gateway concerned; returns the acknowledgements to await."""
        return await self.route_many([(conversation_id, users, frame)])

    async def route_many(self, items: Sequence[tuple[str, Sequence[str], dict]]) -> list:
        """Route (conversation, recipients, frame) items in order with one registry lookup for all
        (a relay batch of 500 messages would otherwise wait on 500 Redis round trips)."""
        users = sorted({u for _, recipients, _ in items for u in recipients})
        if not users:
            return []
        gateways_of: dict[str, list[str]] = defaultdict(list)
        for gateway, reachable in (await self._registry.routes(users)).items():
            for user in reachable:
                gateways_of[user].append(gateway)
        acks = []
        for conversation_id, recipients, frame in items:
            per_gateway: dict[str, list[str]] = defaultdict(list)
            for user in recipients:
                for gateway in gateways_of.get(user, ()):
                    per_gateway[gateway].append(user)
            for gateway, to in sorted(per_gateway.items()):
                acks.append(await self._deliveries.deliver(gateway, conversation_id, to, frame))
        return acks

    async def send(self, conversation_id: str, users: Sequence[str], frame: dict) -> None:
        await asyncio.gather(*await self.route(conversation_id, users, frame))


class Publisher:
    """db-first, written by hand (the transactional outbox is what the design teaches): a message
    committed with its outbox row is put on the log at once by the gateway that stored it, and its
    row deleted once Kafka has it, the rows of many messages in one statement every
    ``outbox_flush_s``. A gateway that dies in between leaves rows for the relay's sweep (a message
    then goes out twice at worst; every connection drops a seq it already has).

    Members connected to the gateway that stored the message (the sender's own connections, and a
    peer that happens to be on the same gateway) get it from memory (:meth:`here`), not through
    Kafka: the log carries it only between gateways. A crash loses nothing by that: those sockets
    die with the gateway, and their clients resume from the database."""

    def __init__(self, deliveries: Deliveries, messages: MessageStore) -> None:
        self._deliveries = deliveries
        self._messages = messages
        self._gateway: str | None = None
        self._deliver_here: Callable[[list[str], dict], None] | None = None
        self._done: list[int] = []
        self._confirming: set[asyncio.Task] = set()
        self.published = 0
        self.unpublished = 0  # left to the relay (Kafka did not take them)

    def here(self, gateway: str, deliver: Callable[[list[str], dict], None]) -> None:
        """This process is ``gateway``: its own members are delivered to by ``deliver``."""
        self._gateway, self._deliver_here = gateway, deliver

    async def publish(self, message: Message, routes: dict[str, list[str]], outbox_id: int) -> None:
        """Queue the message for every gateway holding a member (queued in the caller's order, so a
        conversation's messages from one gateway keep theirs); Kafka's acks are awaited aside."""
        frame = message_frame(message)
        local = routes.get(self._gateway) if self._deliver_here is not None else None
        if local:
            self._deliver_here(local, frame)
        try:
            acks = [await self._deliveries.deliver(gateway, message.conversation_id, users, frame)
                    for gateway, users in sorted(routes.items()) if gateway != self._gateway or not local]
        except (LogUnavailable, RegistryUnavailable) as exc:
            self.unpublished += 1
            log.warning("message_not_published", error=str(exc)[:200])
            return
        if not acks:  # every member is here (or none is online): nothing to wait for
            self.published += 1
            self._done.append(outbox_id)
            return
        task = asyncio.ensure_future(self._confirm(acks, outbox_id))
        self._confirming.add(task)
        task.add_done_callback(self._confirming.discard)

    async def _confirm(self, acks: list, outbox_id: int) -> None:
        try:
            await asyncio.gather(*acks)
        except LogUnavailable as exc:
            self.unpublished += 1
            log.warning("message_not_published", error=str(exc)[:200])
            return
        self.published += 1
        self._done.append(outbox_id)

    async def flush(self) -> int:
        """Delete the outbox rows of what Kafka has (one statement); they are kept for the next
        flush when PostgreSQL does not answer."""
        if not self._done:
            return 0
        ids, self._done = self._done, []
        try:
            await self._messages.published(ids)
        except StoreUnavailable:
            self._done = ids + self._done
            raise
        return len(ids)

    async def drain(self) -> None:
        """At shutdown: the acks still awaited, then the last flush."""
        await asyncio.gather(*self._confirming, return_exceptions=True)
        await self.flush()


class MessagingService:
    def __init__(self, settings: MessagingSettings, *, conversations: ConversationStore, messages: MessageStore,
                 registry: Registry, router: Router, limiter: SendLimiter, sent_log: SentLog | None,
                 publisher: Publisher | None = None) -> None:
        self.settings = settings
        self.conversations = conversations
        self.messages = messages
        self.registry = registry
        self.router = router
        self.memberships = Memberships(conversations)
        self._limiter = limiter
        self._sent_log = sent_log
        self.publisher = publisher

    # REST use cases
    async def create_conversation(self, creator: str, members: list[str], title: str | None) -> Conversation:
        conversation = Conversation(id=new_conversation_id(), members=conversation_members(creator, members),
                                    title=check_title(title), created_at=datetime.now(timezone.utc))
        await self._store(self.conversations.create(conversation))
        return conversation

    async def history(self, user: str, conversation_id: str, after_seq: int, limit: int,
                      consistency: ReadConsistency = STALE_OK) -> list[Message]:
        # Membership is checked on the primary: who may read is not a question a stale copy answers.
        await self._store(self.memberships.check(user, conversation_id))
        return await self._store(self.messages.history(conversation_id, after_seq, limit, consistency))

    async def my_conversations(self, user: str, limit: int) -> list[Conversation]:
        return await self._store(self.conversations.list_for(user, limit))

    async def presence(self, users: list[str]) -> dict[str, bool]:
        if len(users) > 1000:
            raise InvalidInput("ask for at most 1000 users at a time", code="too_many_users")
        try:
            return await self.registry.online(users)
        except RegistryUnavailable as exc:
            raise Unavailable(f"presence is unavailable: {exc}", code="presence_unavailable") from exc

    # Gateway use cases
    async def send(self, user: str, command: SendMessage) -> dict:
        """The ack frame, once the message is durable (db-first: committed, and queued for the log at
        once; log-first: on the log)."""
        members = await self._store(self.memberships.check(user, command.conversation_id))
        wait = self._limiter.acquire(user)
        if wait > 0:
            raise RateLimited(f"sending faster than {self.settings.send_rate_per_s:g} messages/s",
                              retry_after_s=wait, code="rate_limited")
        sent = MessageSent(command.conversation_id, message_id_for(user, command.conversation_id,
                                                                   command.client_msg_id),
                           user, command.text, datetime.now(timezone.utc))
        if self._sent_log is None:
            appended = await self._store(self.messages.append(sent, outbox=True))
            if appended is None:
                raise NotFound(f"conversation {command.conversation_id!r} is gone", code="forbidden")
            seq = appended.message.seq
            if appended.new and self.publisher is not None:
                await self._publish(appended, members)
        else:
            try:
                await self._sent_log.publish(sent)
            except LogUnavailable as exc:
                raise Unavailable(f"the message log is unavailable ({exc}); send again", code="unavailable") from exc
            seq = None  # assigned when the persister stores it; the message frame carries it
        return ack_frame(command.conversation_id, command.client_msg_id, seq, sent.message_id)

    async def _publish(self, appended, members: Sequence[str]) -> None:
        """Routes looked up after the commit: a member who connects later replays it from the
        database (its resume reads after its route exists), so no member falls between the two."""
        try:
            routes = await self.registry.routes(members)
        except RegistryUnavailable as exc:
            log.warning("message_not_routed", error=str(exc)[:200])  # the relay's sweep publishes it
            return
        await self.publisher.publish(appended.message, routes, appended.outbox_id)

    async def read(self, user: str, command: MarkRead) -> None:
        members = await self._store(self.memberships.check(user, command.conversation_id))
        seq = await self._store(self.messages.mark_read(command.conversation_id, user, command.seq))
        others = [m for m in members if m != user]
        await self._deliver(command.conversation_id, others, receipt_frame(command.conversation_id, user, seq))

    async def presence_changed(self, user: str, online: bool) -> None:
        """Tell the user's peers (members of their smaller conversations); best effort."""
        try:
            peers = await self.conversations.peers(user, self.settings.presence_max_group, limit=5000)
        except StoreUnavailable as exc:
            log.warning("presence_not_sent", user=user, error=str(exc))
            return
        await self._deliver("presence", peers, presence_frame(user, online))

    async def deliver_stored(self, messages: Sequence[Message]) -> None:
        """Route stored messages to their members' gateways, in order; returns once the log has all."""
        await asyncio.gather(*await self.route_stored(messages))

    async def route_stored(self, messages: Sequence[Message]) -> list:
        """Queue stored messages for their members' gateways, in order; returns the acks to await."""
        items = [(m.conversation_id, await self.memberships.members(m.conversation_id) or (), message_frame(m))
                 for m in messages]
        return await self.router.route_many(items)

    async def _deliver(self, key: str, users: Sequence[str], frame: dict) -> None:
        try:
            await self.router.send(key, users, frame)
        except (RegistryUnavailable, LogUnavailable) as exc:
            log.warning("frame_not_routed", type=frame.get("type"), error=str(exc))

    @staticmethod
    async def _store(operation):
        try:
            return await operation
        except StoreUnavailable as exc:
            raise Unavailable(f"the message store is unavailable ({exc}); try again", code="unavailable") from exc
