"""payments schema and its charges table

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
    op.execute("CREATE SCHEMA IF NOT EXISTS payments")
    op.create_table(
        "charges",
        sa.Column("key", sa.Text(collation="C"), primary_key=True),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("status IN ('captured', 'declined', 'voided')", name="charges_status"),
        schema="payments",
    )
    op.create_index("charges_by_status", "charges", ["status", "key"], schema="payments")


def downgrade() -> None:
    op.drop_table("charges", schema="payments")
    op.execute("DROP SCHEMA IF EXISTS payments")
