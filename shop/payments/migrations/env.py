"""Alembic environment of the payment stand-in (the kit's async runner under one advisory lock).

Its own lock and version table: it shares a PostgreSQL server with the shop, whose migrations
keep their own version."""

from services.migrations import run_env
from shop.payments.schema import metadata

run_env(metadata, lock_id=727_301, version_table="alembic_version_payments")
