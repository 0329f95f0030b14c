"""reshard_moves: the progress of a live reshard, one row per bucket, so an interrupted one resumes

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
    op.create_table(
        "reshard_moves",
        sa.Column("bucket", sa.SmallInteger, primary_key=True),
        sa.Column("source", sa.Integer, nullable=False),
        sa.Column("target", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),  # planned, switched, cleaned
        sa.Column("rows", sa.Integer, nullable=False, server_default="0"),
        sa.Column("block_ms", sa.Float, nullable=True),
        sa.Column("checksum", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("reshard_moves")
