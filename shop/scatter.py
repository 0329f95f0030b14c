"""Catalog listing as a scatter-gather: ask every shard at once, each with its own deadline, merge.

Products are sharded by id, so a listing by category, price or text has no shard key: every
shard holds some of the answer. Each gets the same keyset query (sorted by price, then id) for
one more row than the page, answers within the deadline or is left out, and the pages are merged
in order. A shard that did not answer is named in ``missing_shards`` with ``partial: true``, so a
client knows the page is incomplete instead of getting nothing, or waiting on the slowest shard:
with N shards, the page is as slow as the slowest of N, which is what the deadline bounds.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from services.consistency import FROM_PRIMARY, ReadConsistency
from services.errors import InvalidInput, Unavailable
from shop.domain import Product
from shop.ports import ProductQuery, ShardPage

NO_DEADLINE_S = 30.0


# A cursor is the keyset position itself, "<price>_<id>" of the page's last product: any string of
# that form is a valid place to continue from, so the schema can say exactly what is accepted.
CURSOR = r"^[0-9]{1,12}_[0-9]{1,19}$"


def encode_cursor(product: Product) -> str:
    return f"{product.price_cents}_{product.id}"


def decode_cursor(cursor: str) -> tuple[int, int]:
    """Any position of the pattern is a place to continue from: an id past the largest one an id
    can be (19 digits reach beyond 2**63 - 1) means "after every product at that price"."""
    price, sep, product_id = cursor.partition("_")
    if sep and price.isascii() and price.isdigit() and product_id.isascii() and product_id.isdigit():
        return int(price), min(int(product_id), (1 << 63) - 1)
    raise InvalidInput("cursor is not one this API returned (price_id); start again without it",
                       code="invalid_cursor")


@dataclass(frozen=True)
class Listing:
    items: list[Product]
    next_cursor: str | None
    missing_shards: list[int]

    @property
    def partial(self) -> bool:
        return bool(self.missing_shards)


def merge(pages: list[ShardPage], limit: int) -> tuple[list[Product], bool]:
    """The first ``limit`` products over all pages in (price, id) order, and whether more exist."""
    # Keyed by id: a bucket caught mid-switch can be owned by two servers for an instant.
    unique = {p.id: p for page in pages for p in page.products}
    merged = sorted(unique.values(), key=lambda p: (p.price_cents, p.id))
    more = len(merged) > limit
    return merged[:limit], more


async def scatter_gather(catalog, query: ProductQuery, deadline_s: float,
                         consistency: ReadConsistency = FROM_PRIMARY) -> Listing:
    """``catalog.search(shard, query, deadline_s)`` on every shard at once (a replica of each where
    ``consistency`` allows); each shard's failure or lateness costs its rows only."""
    asked = replace(query, limit=query.limit + 1)
    deadline = deadline_s or NO_DEADLINE_S
    shards = list(range(catalog.shard_count()))
    answers = await asyncio.gather(*(catalog.search(s, asked, deadline, consistency) for s in shards), return_exceptions=True)
    pages, missing = [], []
    for shard, answer in zip(shards, answers):
        if isinstance(answer, Unavailable):
            missing.append(shard)
        elif isinstance(answer, BaseException):
            raise answer
        else:
            pages.append(answer)
    if not pages:
        raise Unavailable("no shard answered the listing in time; retry shortly", code="shards_unavailable")
    items, more = merge(pages, query.limit)
    return Listing(items, encode_cursor(items[-1]) if more and items else None, missing)
