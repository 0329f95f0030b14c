"""``python -m shortener.migrate``: bring the links database to the newest schema (Alembic)."""

from __future__ import annotations

from pathlib import Path

from services import migrations
from shortener.config import ShortenerSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def upgrade(database_url: str) -> None:
    migrations.upgrade(MIGRATIONS, database_url)


def main() -> None:
    settings = ShortenerSettings()
    url = str(settings.database_urls[0])
    upgrade(url)
    print(f"shortener schema is at head on {url}")


if __name__ == "__main__":
    main()
