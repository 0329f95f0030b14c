"""Conversations and messages on PostgreSQL (asyncpg, through the kit's pool).

A message is stored with one statement: the conversation's ``last_seq`` is incremented (which
locks the row, so a conversation's writers queue and seqs stay contiguous), the message
inserted with that seq, and under db-first an outbox row added, all in one statement in
autocommit: one round trip per send. The gateway that stored it publishes it at once and deletes
outbox rows in batches (:meth:`SqlMessageStore.published`); the relay sweeps what is left.
"""

from __future__ import annotations

from asyncpg import Record, UniqueViolationError

from messaging.domain import Conversation, Message, MessageSent
from messaging.ports import Appended
from services.clients.postgres import PgPool
from services.clients.read_routing import ReadRouter
from services.consistency import FROM_PRIMARY, ReadConsistency

_APPEND = """
WITH s AS (UPDATE conversations SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq),
m AS (INSERT INTO messages (conversation_id, seq, message_id, sender, body, sent_at)
      SELECT $1, s.last_seq, $2, $3, $4, $5 FROM s RETURNING seq)
"""
APPEND_WITH_OUTBOX = (
    _APPEND + ", o AS (INSERT INTO message_outbox (conversation_id, seq) SELECT $1, seq FROM m RETURNING id) "
    "SELECT m.seq, o.id AS outbox_id FROM m, o"
)
APPEND_ONLY = _APPEND + "SELECT seq, NULL::bigint AS outbox_id FROM m"
_PUBLISHED = "DELETE FROM message_outbox WHERE id = ANY($1::bigint[])"
_MESSAGE_COLUMNS = "conversation_id, seq, message_id, sender, body, sent_at"
_BY_MESSAGE_ID = f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE message_id = $1"
_HISTORY = f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
_MARK_READ = (
    "INSERT INTO reads (conversation_id, user_name, seq) "
    "SELECT id, $2::varchar, LEAST($3::bigint, last_seq) FROM conversations WHERE id = $1 "
    "ON CONFLICT (conversation_id, user_name) DO UPDATE SET seq = GREATEST(reads.seq, EXCLUDED.seq) "
    "RETURNING seq"
)
_CREATE = (
    "WITH c AS (INSERT INTO conversations (id, title, created_by, created_at) VALUES ($1, $2, $3, $4) RETURNING id) "
    "INSERT INTO members (conversation_id, user_name) SELECT c.id, unnest($5::text[]) FROM c"
)
_CONVERSATION = (
    "SELECT c.id, c.title, c.created_at, c.last_seq, array_agg(m.user_name ORDER BY m.user_name) AS members "
    "FROM conversations c JOIN members m ON m.conversation_id = c.id WHERE c.id = $1 GROUP BY c.id"
)
_FOR_USER = (
    "SELECT c.id, c.title, c.created_at, c.last_seq, "
    "ARRAY(SELECT user_name FROM members x WHERE x.conversation_id = c.id ORDER BY user_name LIMIT 50) AS members "
    "FROM members m JOIN conversations c ON c.id = m.conversation_id WHERE m.user_name = $1 "
    "ORDER BY c.last_seq DESC, c.id LIMIT $2"
)
_PEERS = (
    "SELECT DISTINCT o.user_name FROM members m "
    "JOIN members o ON o.conversation_id = m.conversation_id AND o.user_name <> m.user_name "
    "WHERE m.user_name = $1 AND "
    "(SELECT count(*) FROM members k WHERE k.conversation_id = m.conversation_id) <= $2 LIMIT $3"
)


def message_from(row: Record) -> Message:
    return Message(conversation_id=row["conversation_id"], seq=row["seq"], message_id=row["message_id"],
                   sender=row["sender"], text=row["body"], sent_at=row["sent_at"])


def _conversation(row: Record) -> Conversation:
    return Conversation(id=row["id"], members=tuple(row["members"]), title=row["title"],
                        created_at=row["created_at"], last_seq=row["last_seq"])


class SqlConversationStore:
    def __init__(self, db: PgPool) -> None:
        self._db = db

    async def create(self, conversation: Conversation) -> None:
        await self._db.execute(_CREATE, conversation.id, conversation.title, conversation.members[0],
                               conversation.created_at, list(conversation.members))

    async def get(self, conversation_id: str) -> Conversation | None:
        row = await self._db.fetchrow(_CONVERSATION, conversation_id)
        return _conversation(row) if row else None

    async def list_for(self, user: str, limit: int) -> list[Conversation]:
        return [_conversation(r) for r in await self._db.fetch(_FOR_USER, user, limit)]

    async def peers(self, user: str, max_group: int, limit: int) -> list[str]:
        return [r["user_name"] for r in await self._db.fetch(_PEERS, user, max_group, limit)]


class SqlMessageStore:
    """Appends on the primary (``db``); history pages through ``reads``, a replica when the caller accepts one."""

    def __init__(self, db: PgPool, reads: ReadRouter | None = None) -> None:
        self._db = db
        self._reads = reads or ReadRouter(db, [])

    async def append(self, sent: MessageSent, *, outbox: bool) -> Appended | None:
        async def q(conn) -> Appended | None:
            try:
                row = await conn.fetchrow(APPEND_WITH_OUTBOX if outbox else APPEND_ONLY, sent.conversation_id,
                                          sent.message_id, sent.sender, sent.text, sent.sent_at)
            except UniqueViolationError:
                # The message_id is taken: a resend (same sender, conversation and client_msg_id).
                row = await conn.fetchrow(_BY_MESSAGE_ID, sent.message_id)
                return Appended(message_from(row), new=False) if row else None
            if row is None:
                return None
            return Appended(Message(sent.conversation_id, row["seq"], sent.message_id, sent.sender, sent.text,
                                    sent.sent_at), new=True, outbox_id=row["outbox_id"])

        return await self._db.run(q)

    async def history(self, conversation_id: str, after_seq: int, limit: int,
                      consistency: ReadConsistency = FROM_PRIMARY) -> list[Message]:
        rows = await self._reads.read(lambda c: c.fetch(_HISTORY, conversation_id, after_seq, limit), consistency)
        return [message_from(r) for r in rows]

    async def published(self, outbox_ids) -> None:
        await self._db.execute(_PUBLISHED, list(outbox_ids))

    async def mark_read(self, conversation_id: str, user: str, seq: int) -> int:
        row = await self._db.fetchrow(_MARK_READ, conversation_id, user, seq)
        return int(row["seq"]) if row else 0
