"""Table definitions (SQLAlchemy Core). The migrations in ``messaging/migrations`` create them."""

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, MetaData, String, Table, Text, func

metadata = MetaData()

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("title", Text, nullable=True),
    Column("created_by", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The seq of the newest message; incrementing it locks the row, which serialises a
    # conversation's writers and keeps its seqs contiguous.
    Column("last_seq", BigInteger, nullable=False, server_default="0"),
)

members = Table(
    "members",
    metadata,
    Column("conversation_id", String(32), ForeignKey("conversations.id"), primary_key=True),
    Column("user_name", String(32), primary_key=True),
    Index("members_by_user", "user_name", "conversation_id"),
)

messages = Table(
    "messages",
    metadata,
    Column("conversation_id", String(32), ForeignKey("conversations.id"), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    # Derived from (sender, conversation, client_msg_id): a resend hits this unique key.
    Column("message_id", String(32), nullable=False, unique=True),
    Column("sender", String(32), nullable=False),
    Column("body", Text, nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
)

# db-first: written in the message's transaction; the relay publishes and deletes the rows.
outbox = Table(
    "message_outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("conversation_id", String(32), nullable=False),
    Column("seq", BigInteger, nullable=False),
)

reads = Table(
    "reads",
    metadata,
    Column("conversation_id", String(32), ForeignKey("conversations.id"), primary_key=True),
    Column("user_name", String(32), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)
