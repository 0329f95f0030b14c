"""Table definitions (SQLAlchemy Core). The migrations in ``shortener/migrations`` create them."""

from sqlalchemy import BigInteger, Boolean, Column, DateTime, LargeBinary, MetaData, String, Table, Text, func

metadata = MetaData()

links = Table(
    "links",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("url", Text, nullable=False),
    Column("url_digest", LargeBinary(32), nullable=False),
    Column("custom_alias", Boolean, nullable=False, server_default="false"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("delete_token_digest", LargeBinary(32), nullable=False),
    Column("clicks", BigInteger, nullable=False, server_default="0"),
)

# Every click batch applied, so a redelivered batch is recognised and skipped.
click_batches = Table(
    "click_batches",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The end of every counter range handed out: where Redis restarts counting after losing its state.
counter_leases = Table(
    "counter_leases",
    metadata,
    Column("lease_end", BigInteger, primary_key=True),
    Column("leased_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
