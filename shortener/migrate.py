"""``python -m shortener.migrate``: bring the links database to the newest schema (Alembic)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from shortener.config import ShortenerSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url)
    return config


def upgrade(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


def main() -> None:
    settings = ShortenerSettings()
    url = str(settings.database_urls[0])
    upgrade(url)
    print(f"shortener schema is at head on {url}")


if __name__ == "__main__":
    main()
