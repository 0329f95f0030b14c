"""``python -m shop.payments.migrate``: bring the payment stand-in's schema to the newest (Alembic)."""

from __future__ import annotations

from pathlib import Path

from services import migrations
from shop.config import ShopSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def upgrade(database_url: str) -> None:
    migrations.upgrade(MIGRATIONS, database_url)


def main() -> None:
    url = str(ShopSettings().database_urls[0])
    upgrade(url)
    print(f"payments schema is at head on {url}")


if __name__ == "__main__":
    main()
