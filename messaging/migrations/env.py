"""Alembic environment of the messaging schema (the kit's async runner under one advisory lock)."""

from messaging.adapters.schema import metadata
from services.migrations import run_env

run_env(metadata, lock_id=727_002, version_table="alembic_version_messaging")
