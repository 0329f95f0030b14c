"""message_outbox.created_at: when a row was written, by the database's clock (the relay sweeps
the rows older than the gateways take to publish, whatever the gateways' own clocks say)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("message_outbox", sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                                              server_default=sa.func.now()))


def downgrade() -> None:
    op.drop_column("message_outbox", "created_at")
