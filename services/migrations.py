"""Alembic for every design: an async environment under one advisory lock (concurrent runs do not race)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import create_async_engine

from services.clients.postgres import asyncpg_url


def alembic_config(migrations: Path, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("sqlalchemy.url", database_url)
    return config


def upgrade(migrations: Path, database_url: str) -> None:
    command.upgrade(alembic_config(migrations, database_url), "head")


def run_env(metadata: MetaData, lock_id: int, version_table: str = "alembic_version") -> None:
    """The body of a design's ``migrations/env.py``; ``lock_id`` and ``version_table`` are its own
    (designs may share a PostgreSQL server, so each keeps its schema version in its own table)."""

    def migrate(connection) -> None:
        context.configure(connection=connection, target_metadata=metadata, version_table=version_table)
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(asyncpg_url(context.config.get_main_option("sqlalchemy.url")))
        async with engine.connect() as conn:
            await conn.execute(text(f"SELECT pg_advisory_lock({lock_id})"))
            await conn.commit()
            try:
                await conn.run_sync(migrate)
                await conn.commit()
            finally:
                await conn.execute(text(f"SELECT pg_advisory_unlock({lock_id})"))
                await conn.commit()
        await engine.dispose()

    asyncio.run(main())
