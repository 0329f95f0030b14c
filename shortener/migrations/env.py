"""Alembic environment of the shortener's schema (the kit's async runner under one advisory lock)."""

from services.migrations import run_env
from shortener.adapters.schema import metadata

run_env(metadata, lock_id=727_001)
