"""links, click batches and counter leases

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
        "links",
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("url_digest", sa.LargeBinary(32), nullable=False),
        sa.Column("custom_alias", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delete_token_digest", sa.LargeBinary(32), nullable=False),
        sa.Column("clicks", sa.BigInteger, nullable=False, server_default="0"),
    )
    # One generated link per URL ("the same URL shortened twice returns the same code");
    # custom aliases may point anywhere.
    op.create_index("links_url_digest_generated", "links", ["url_digest"], unique=True,
                    postgresql_where=sa.text("NOT custom_alias"))
    op.create_table(
        "click_batches",
        sa.Column("batch_id", sa.String(64), primary_key=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "counter_leases",
        sa.Column("lease_end", sa.BigInteger, primary_key=True),
        sa.Column("leased_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("counter_leases")
    op.drop_table("click_batches")
    op.drop_index("links_url_digest_generated", table_name="links")
    op.drop_table("links")
