"""The schema every shard holds (the migrations create it): each row carries its bucket, so a bucket
can be copied, verified and deleted as a unit when it moves to another server.

The shard map itself lives on the first server (``shard_map``); the other servers have the table
too, empty. ``owned_buckets`` is each server's own view of which buckets it holds, and the write
fence (``shop_fence``, created by the migration) checks it inside every write transaction.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

products = sa.Table(
    "products", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("bucket", sa.SmallInteger, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("price_cents", sa.BigInteger, nullable=False),
    # Only the stock that can still be bought lives on the (hot) product row; what is held and
    # sold is in reservations, so confirming a sale never touches the hot row again.
    sa.Column("available", sa.Integer, sa.CheckConstraint("available >= 0"), nullable=False),
    sa.Column("initial_stock", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

reservations = sa.Table(
    "reservations", metadata,
    sa.Column("order_id", sa.BigInteger, primary_key=True),
    sa.Column("product_id", sa.BigInteger, primary_key=True),
    sa.Column("bucket", sa.SmallInteger, nullable=False),  # the product's
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("price_cents", sa.BigInteger, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # held, sold, released
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

orders = sa.Table(
    "orders", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("bucket", sa.SmallInteger, nullable=False),  # the buyer's
    sa.Column("user_name", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("idempotency_key", sa.Text, nullable=False),
    sa.Column("failure", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

order_items = sa.Table(
    "order_items", metadata,
    sa.Column("order_id", sa.BigInteger, primary_key=True),
    sa.Column("product_id", sa.BigInteger, primary_key=True),
    sa.Column("bucket", sa.SmallInteger, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("price_cents", sa.BigInteger, nullable=False),
)

idempotency_keys = sa.Table(
    "idempotency_keys", metadata,
    sa.Column("user_name", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("bucket", sa.SmallInteger, nullable=False),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("order_id", sa.BigInteger, nullable=False, unique=True),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
    sa.Column("response_status", sa.Integer, nullable=True),
    sa.Column("response_body", sa.JSON, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
    sa.Column("bucket", sa.SmallInteger, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False, unique=True),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("order_id", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

owned_buckets = sa.Table(
    "owned_buckets", metadata,
    sa.Column("bucket", sa.SmallInteger, primary_key=True),
)

shard_map = sa.Table(
    "shard_map", metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("shards", sa.JSON, nullable=False),
    sa.Column("assignment", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# The fulfillment consumer's own table (it lives on the first server): one row per event handled.
fulfilled_events = sa.Table(
    "fulfilled_events", metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("order_id", sa.BigInteger, nullable=False),
    sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
