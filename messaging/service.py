"""Messaging's use cases: conversations, sending, reading, presence, and the routing of frames.

Every entrypoint (REST API, WebSocket gateway, relay and persister workers) calls these; they
talk to the parts only through the ports.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
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
    MessageStore,
    Registry,
    RegistryUnavailable,
    SendLimiter,
    SentLog,
    StoreUnavailable,
    LogUnavailable,
)
from services.errors import Forbidden, InvalidInput, NotFound, RateLimited, Unavailable
from services.logging import get_logger

log = get_logger(__name__)


class Memberships:
    """Conversation members, cached: a conversation's members never change once it exists."""

    def __init__(self, store: ConversationStore, size: int = 100_000) -> None:
        self._store = store
        self._size = size
        # conversation -> (members in order, the same as a set for membership tests), least recent first
        self._cache: OrderedDict[str, tuple[tuple[str, ...], frozenset[str]]] = OrderedDict()

    async def _entry(self, conversation_id: str) -> tuple[tuple[str, ...], frozenset[str]] | None:
        entry = self._cache.get(conversation_id)
        if entry is not None:
            self._cache.move_to_end(conversation_id)
            return entry
        conversation = await self._store.get(conversation_id)
        if conversation is None:
            return None
        entry = self._cache[conversation_id] = (conversation.members, frozenset(conversation.members))
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
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


class MessagingService:
    def __init__(self, settings: MessagingSettings, *, conversations: ConversationStore, messages: MessageStore,
                 registry: Registry, router: Router, limiter: SendLimiter, sent_log: SentLog | None) -> None:
        self.settings = settings
        self.conversations = conversations
        self.messages = messages
        self.registry = registry
        self.router = router
        self.memberships = Memberships(conversations)
        self._limiter = limiter
        self._sent_log = sent_log

    # REST use cases
    async def create_conversation(self, creator: str, members: list[str], title: str | None) -> Conversation:
        conversation = Conversation(id=new_conversation_id(), members=conversation_members(creator, members),
                                    title=check_title(title), created_at=datetime.now(timezone.utc))
        await self._store(self.conversations.create(conversation))
        return conversation

    async def history(self, user: str, conversation_id: str, after_seq: int, limit: int) -> list[Message]:
        await self._store(self.memberships.check(user, conversation_id))
        return await self._store(self.messages.history(conversation_id, after_seq, limit))

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
        """The ack frame, once the message is durable (db-first: committed; log-first: on the log)."""
        await self._store(self.memberships.check(user, command.conversation_id))
        try:
            wait = await self._limiter.acquire(user)
        except RegistryUnavailable:
            wait = 0.0  # fail open: a Redis outage must not stop conversations
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
        else:
            try:
                await self._sent_log.publish(sent)
            except LogUnavailable as exc:
                raise Unavailable(f"the message log is unavailable ({exc}); send again", code="unavailable") from exc
            seq = None  # assigned when the persister stores it; the message frame carries it
        return ack_frame(command.conversation_id, command.client_msg_id, seq, sent.message_id)

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
