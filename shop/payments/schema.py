"""The stand-in's table (SQLAlchemy Core), in a schema of its own: it may share a PostgreSQL server
with the shop, and must not look like part of the shop's data. ``migrations/`` creates it."""

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Index, MetaData, Table, Text, func

SCHEMA = "payments"

metadata = MetaData(schema=SCHEMA)

charges = Table(
    "charges",
    metadata,
    # The idempotency key: the primary key makes "first writer wins" the database's job. Collated
    # "C" (keys are ASCII): byte order, so a listing pages by key the same on every server.
    Column("key", Text(collation="C"), primary_key=True),
    Column("reference", Text, nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("status IN ('captured', 'declined', 'voided')", name="charges_status"),
    # Listing by status pages by key.
    Index("charges_by_status", "status", "key"),
)
