"""Alembic environment of the shop's shard schema (the kit's async runner under one advisory lock)."""

from services.migrations import run_env
from shop.adapters.schema import metadata

run_env(metadata, lock_id=727_401, version_table="alembic_version_shop")
