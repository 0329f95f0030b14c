"""Messaging's ports: what the use cases need from storage, presence/routing, the log and the limiter."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol

from messaging.domain import Conversation, Message, MessageSent
from services.consistency import FROM_PRIMARY, ReadConsistency
from services.errors import DependencyUnavailable


class StoreUnavailable(DependencyUnavailable):
    """PostgreSQL could not be reached or timed out."""

    dependency = "postgresql"


class RegistryUnavailable(DependencyUnavailable):
    """Redis (presence and routing) could not be reached."""

    dependency = "redis"


class LogUnavailable(DependencyUnavailable):
    """Kafka did not acknowledge in time."""

    dependency = "kafka"


@dataclass(frozen=True)
class Appended:
    message: Message
    new: bool  # False: the message_id was stored before (a resend); nothing new to deliver
    outbox_id: int | None = None  # db-first: the outbox row to delete once the message is published


class ConversationStore(Protocol):
    async def create(self, conversation: Conversation) -> None: ...

    async def get(self, conversation_id: str) -> Conversation | None: ...

    async def list_for(self, user: str, limit: int) -> list[Conversation]: ...

    async def peers(self, user: str, max_group: int, limit: int) -> list[str]:
        """Users sharing a conversation of at most ``max_group`` members with ``user``."""
        ...


class MessageStore(Protocol):
    async def append(self, sent: MessageSent, *, outbox: bool) -> Appended | None:
        """Store with the conversation's next seq (and an outbox row when asked), in one transaction;
        an already stored message_id returns that message with new=False; None: no such conversation."""
        ...

    async def history(self, conversation_id: str, after_seq: int, limit: int,
                      consistency: ReadConsistency = FROM_PRIMARY) -> list[Message]:
        """A page of a conversation: from the primary unless the caller accepts less (the gateway's
        resume must see every acknowledged message; a history page may be as stale as a replica)."""
        ...

    async def published(self, outbox_ids: Sequence[int]) -> None:
        """These outbox rows' messages are on the log: delete the rows (one statement for all)."""
        ...

    async def mark_read(self, conversation_id: str, user: str, seq: int) -> int:
        """Store the user's read position (it only moves forward); returns the stored one."""
        ...


@dataclass(frozen=True)
class OutboxBatch:
    ids: list[int]
    messages: list[Message]


class Outbox(Protocol):
    """The relay's view: it sweeps what the gateways did not publish (a gateway died between its
    commit and Kafka's ack)."""

    async def lead(self) -> bool:
        """Try to become (or stay) the one relay allowed to publish; False while another one is."""
        ...

    async def stale(self, limit: int, older_than_s: float, busy: Sequence[int] = ()) -> OutboxBatch:
        """The oldest rows whose messages were sent over ``older_than_s`` ago, in id order, leaving
        out ``busy`` (published, not yet acked); on the leader's own connection."""
        ...

    async def done(self, ids: Sequence[int]) -> None: ...


class Registry(Protocol):
    """Who is connected where (Redis): routes for delivery, presence for users."""

    async def connected(self, gateway: str, user: str) -> bool:
        """Record a connection; True when the user was offline everywhere before."""
        ...

    async def disconnected(self, gateway: str, user: str) -> bool:
        """Drop a connection; True when the user is now offline everywhere."""
        ...

    async def heartbeat(self, gateway: str, ttl_s: float) -> bool:
        """Refresh the gateway's liveness; False when it had expired (the gateway was presumed dead)."""
        ...

    async def routes(self, users: Sequence[str]) -> dict[str, list[str]]:
        """Gateway -> the users (of ``users``) it holds connections of, over live gateways only (one
        round trip)."""
        ...

    async def online(self, users: Sequence[str]) -> dict[str, bool]: ...

    async def dead_gateways(self) -> list[str]: ...

    async def forget_gateway(self, gateway: str) -> list[str]:
        """Remove a gateway's routes; the users that went offline everywhere with it."""
        ...


class Deliveries(Protocol):
    """Per-gateway delivery: a frame to some users on one gateway (Kafka, a topic per gateway).

    A gateway with nothing to read stops asking the broker (Tansu answers a waiting fetch only when
    its wait is over, so a reader kept awake would poll every few milliseconds at rest); a
    delivery to a gateway that may have gone quiet wakes it first (:class:`InboxBell`)."""

    async def deliver(self, gateway: str, conversation_id: str, users: Sequence[str], frame: dict) -> Awaitable[None]:
        """Queue the frame; the awaitable returned completes when the log has it (await a batch's together)."""
        ...


class InboxBell(Protocol):
    """Tells a quiet gateway that its delivery topic has something (Redis pub/sub)."""

    async def ring(self, gateway: str) -> None: ...


class SentLog(Protocol):
    """``log-first``: the gateway appends the message to the log and acks on the broker's ack."""

    async def publish(self, sent: MessageSent) -> None: ...


class SendLimiter(Protocol):
    def acquire(self, user: str) -> float:
        """0 when the user may send now, else the seconds until it may (no I/O: kept in the gateway)."""
        ...
