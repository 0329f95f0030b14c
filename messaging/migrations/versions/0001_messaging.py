"""conversations, members, messages, outbox, reads

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("title", sa.Text, nullable=True),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "members",
        sa.Column("conversation_id", sa.String(32), sa.ForeignKey("conversations.id"), primary_key=True),
        sa.Column("user_name", sa.String(32), primary_key=True),
    )
    op.create_index("members_by_user", "members", ["user_name", "conversation_id"])
    op.create_table(
        "messages",
        sa.Column("conversation_id", sa.String(32), sa.ForeignKey("conversations.id"), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("message_id", sa.String(32), nullable=False, unique=True),
        sa.Column("sender", sa.String(32), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "message_outbox",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("conversation_id", sa.String(32), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "reads",
        sa.Column("conversation_id", sa.String(32), sa.ForeignKey("conversations.id"), primary_key=True),
        sa.Column("user_name", sa.String(32), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("reads", "message_outbox", "messages", "members", "conversations"):
        op.drop_table(table)
