"""``python -m messaging.migrate``: bring the messaging database to the newest schema (Alembic)."""

from __future__ import annotations

from pathlib import Path

from messaging.config import MessagingSettings
from services import migrations

MIGRATIONS = Path(__file__).parent / "migrations"


def upgrade(database_url: str) -> None:
    migrations.upgrade(MIGRATIONS, database_url)


def main() -> None:
    url = str(MessagingSettings().database_urls[0])
    upgrade(url)
    print(f"messaging schema is at head on {url}")


if __name__ == "__main__":
    main()
