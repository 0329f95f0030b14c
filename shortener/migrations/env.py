"""Alembic environment: async engine, one advisory lock so concurrent runs do not race."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.clients.postgres import asyncpg_url
from shortener.adapters.schema import metadata

MIGRATION_LOCK = 727_001  # any constant; the same for every runner of these migrations


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    engine = create_async_engine(asyncpg_url(context.config.get_main_option("sqlalchemy.url")))
    async with engine.connect() as conn:
        await conn.execute(text(f"SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        await conn.commit()
        try:
            await conn.run_sync(_run)
            await conn.commit()
        finally:
            await conn.execute(text(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
            await conn.commit()
    await engine.dispose()


asyncio.run(_main())
