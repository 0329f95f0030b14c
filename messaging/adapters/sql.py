"""Conversations and messages on PostgreSQL (SQLAlchemy Core, asyncpg).

A message is stored with one statement: the conversation's ``last_seq`` is incremented (which
locks the row, so a conversation's writers queue and seqs stay contiguous), the message
inserted with that seq, and under db-first an outbox row added and the relay woken with
``pg_notify``, all in one implicit transaction: one round trip per send.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from messaging.domain import Conversation, Message, MessageSent
from messaging.ports import Appended, StoreUnavailable
from services.clients.postgres import DeadlineSql

NOTIFY_CHANNEL = "message_outbox"

_APPEND = """
WITH s AS (UPDATE conversations SET last_seq = last_seq + 1 WHERE id = :cid RETURNING last_seq),
m AS (INSERT INTO messages (conversation_id, seq, message_id, sender, body, sent_at)
      SELECT :cid, s.last_seq, :mid, :sender, :body, :sent_at FROM s RETURNING seq)
"""
APPEND_WITH_OUTBOX = text(
    _APPEND + ", o AS (INSERT INTO message_outbox (conversation_id, seq) SELECT :cid, seq FROM m) "
    f"SELECT seq, pg_notify('{NOTIFY_CHANNEL}', '') FROM m"
)
APPEND_ONLY = text(_APPEND + "SELECT seq FROM m")
_BY_MESSAGE_ID = text(
    "SELECT conversation_id, seq, message_id, sender, body, sent_at FROM messages WHERE message_id = :mid"
)
_HISTORY = text(
    "SELECT conversation_id, seq, message_id, sender, body, sent_at FROM messages "
    "WHERE conversation_id = :cid AND seq > :after ORDER BY seq LIMIT :n"
)
_MARK_READ = text(
    "INSERT INTO reads (conversation_id, user_name, seq) "
    "SELECT id, CAST(:user AS varchar), LEAST(CAST(:seq AS bigint), last_seq) FROM conversations WHERE id = :cid "
    "ON CONFLICT (conversation_id, user_name) DO UPDATE SET seq = GREATEST(reads.seq, EXCLUDED.seq) "
    "RETURNING seq"
)
_CONVERSATION = text(
    "SELECT c.id, c.title, c.created_at, c.last_seq, array_agg(m.user_name ORDER BY m.user_name) AS members "
    "FROM conversations c JOIN members m ON m.conversation_id = c.id WHERE c.id = :cid "
    "GROUP BY c.id"
)
_FOR_USER = text(
    "SELECT c.id, c.title, c.created_at, c.last_seq, "
    "ARRAY(SELECT user_name FROM members x WHERE x.conversation_id = c.id ORDER BY user_name LIMIT 50) AS members "
    "FROM members m JOIN conversations c ON c.id = m.conversation_id WHERE m.user_name = :user "
    "ORDER BY c.last_seq DESC, c.id LIMIT :n"
)
_PEERS = text(
    "SELECT DISTINCT o.user_name FROM members m "
    "JOIN members o ON o.conversation_id = m.conversation_id AND o.user_name <> m.user_name "
    "WHERE m.user_name = :user AND "
    "(SELECT count(*) FROM members k WHERE k.conversation_id = m.conversation_id) <= :max_group LIMIT :n"
)


def message_from(row) -> Message:
    return Message(conversation_id=row.conversation_id, seq=row.seq, message_id=row.message_id,
                   sender=row.sender, text=row.body, sent_at=row.sent_at)


def _conversation(row) -> Conversation:
    return Conversation(id=row.id, members=tuple(row.members), title=row.title, created_at=row.created_at,
                        last_seq=row.last_seq)


class _Sql(DeadlineSql):
    unavailable = StoreUnavailable


class SqlConversationStore(_Sql):
    async def create(self, conversation: Conversation) -> None:
        async def q() -> None:
            async with self._engine.begin() as conn:
                await conn.execute(
                    text("INSERT INTO conversations (id, title, created_by, created_at) VALUES (:id, :t, :by, :at)"),
                    {"id": conversation.id, "t": conversation.title, "by": conversation.members[0],
                     "at": conversation.created_at})
                await conn.execute(
                    text("INSERT INTO members (conversation_id, user_name) "
                         "SELECT :id, unnest(CAST(:users AS text[]))"),
                    {"id": conversation.id, "users": list(conversation.members)})

        await self._run(q)

    async def get(self, conversation_id: str) -> Conversation | None:
        async def q() -> Conversation | None:
            async with self._engine.connect() as conn:
                row = (await conn.execute(_CONVERSATION, {"cid": conversation_id})).first()
            return _conversation(row) if row else None

        return await self._run(q)

    async def list_for(self, user: str, limit: int) -> list[Conversation]:
        async def q() -> list[Conversation]:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(_FOR_USER, {"user": user, "n": limit})).all()
            return [_conversation(r) for r in rows]

        return await self._run(q)

    async def peers(self, user: str, max_group: int, limit: int) -> list[str]:
        async def q() -> list[str]:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(_PEERS, {"user": user, "max_group": max_group, "n": limit})).all()
            return [r.user_name for r in rows]

        return await self._run(q)


class SqlMessageStore(_Sql):
    async def append(self, sent: MessageSent, *, outbox: bool) -> Appended | None:
        params = {"cid": sent.conversation_id, "mid": sent.message_id, "sender": sent.sender,
                  "body": sent.text, "sent_at": sent.sent_at}

        async def q() -> Appended | None:
            try:
                async with self._engine.begin() as conn:
                    row = (await conn.execute(APPEND_WITH_OUTBOX if outbox else APPEND_ONLY, params)).first()
            except IntegrityError:
                # The message_id is taken: a resend (same sender, conversation and client_msg_id).
                async with self._engine.connect() as conn:
                    row = (await conn.execute(_BY_MESSAGE_ID, {"mid": sent.message_id})).first()
                return Appended(message_from(row), new=False) if row else None
            if row is None:
                return None
            return Appended(Message(sent.conversation_id, row.seq, sent.message_id, sent.sender, sent.text,
                                    sent.sent_at), new=True)

        return await self._run(q)

    async def history(self, conversation_id: str, after_seq: int, limit: int) -> list[Message]:
        async def q() -> list[Message]:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(_HISTORY, {"cid": conversation_id, "after": after_seq, "n": limit})).all()
            return [message_from(r) for r in rows]

        return await self._run(q)

    async def mark_read(self, conversation_id: str, user: str, seq: int) -> int:
        async def q() -> int:
            async with self._engine.begin() as conn:
                row = (await conn.execute(_MARK_READ, {"cid": conversation_id, "user": user, "seq": seq})).first()
            return int(row.seq) if row else 0

        return await self._run(q)
