"""Seed the shop through its API: products over categories (and so over every bucket and shard),
one flash-sale product with little stock, and buyers with their tokens.

    python -m loadtests.shop.seed --host http://127.0.0.1:8082 --products 500 --users 200 --out seed.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from pathlib import Path

import httpx

from services.lab import retry

CATEGORIES = ("books", "kitchen", "garden", "toys", "music", "sports", "tools", "games")
CONCURRENCY = 32
ADMIN = "admin"


async def _post(client: httpx.AsyncClient, path: str, body: dict, headers: dict | None = None) -> dict:
    """POST through the seeding client (retried through a transient 502/503 or a lost connection: a
    product create is not idempotent, but a retried one only adds a product the seed does not know
    about; nothing is counted on it); any other error answer is raised as what it is."""
    return (await client.post(path, json=body, headers=headers)).raise_for_status().json()


async def login(client: httpx.AsyncClient, user: str) -> str:
    return (await _post(client, "/api/v1/sessions", {"user": user}))["token"]


async def seed(base_url: str, products: int, users: int, stock: int = 1000, flash_stock: int = 100,
               admin: str = ADMIN) -> dict:
    """``admin``: a user the shop lets create products (one of its SHOP_ADMINS)."""
    rng = random.Random(7)
    gate = asyncio.Semaphore(CONCURRENCY)
    async with retry.client(base_url=base_url, timeout=30) as client:
        admin_auth = {"Authorization": f"Bearer {await login(client, admin)}"}

        async def product(i: int, body: dict | None = None) -> dict:
            body = body or {"name": f"{rng.choice(CATEGORIES).title()} item {i}", "category": CATEGORIES[i % len(CATEGORIES)],
                            "price_cents": rng.randrange(100, 20_000), "stock": stock}
            async with gate:
                created = await _post(client, "/api/v1/products", body, admin_auth)
            return {"id": created["id"], "category": body["category"], "price_cents": body["price_cents"],
                    "stock": body["stock"]}

        async def buyer(i: int) -> dict:
            name = f"buyer_{i:05d}"
            async with gate:
                return {"user": name, "token": await login(client, name)}

        made = await asyncio.gather(*(product(i) for i in range(products)))
        flash = await product(products, {"name": "Flash sale console", "category": "games", "price_cents": 29_900,
                                         "stock": flash_stock})
        buyers = await asyncio.gather(*(buyer(i) for i in range(users)))
    return {"products": list(made), "flash_product": flash, "users": list(buyers), "categories": list(CATEGORIES)}


def load_seed(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="http://127.0.0.1:8082")
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--stock", type=int, default=1000)
    parser.add_argument("--flash-stock", type=int, default=100)
    parser.add_argument("--out", default="seed.json")
    args = parser.parse_args(argv)
    record = asyncio.run(seed(args.host, args.products, args.users, args.stock, args.flash_stock))
    Path(args.out).write_text(json.dumps(record))
    print(f"seeded {len(record['products'])} products and {len(record['users'])} buyers into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
