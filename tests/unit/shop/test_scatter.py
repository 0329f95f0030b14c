"""The catalog listing's scatter-gather: merging shard pages in (price, id) order, keyset cursors,
and a shard that does not answer costing its rows only."""

from __future__ import annotations

import re

import pytest

from services.errors import InvalidInput, Unavailable
from shop.domain import Product
from shop.ports import ProductQuery, ShardPage, ShardUnavailable
from shop.scatter import (
    CURSOR,
    Listing,
    decode_cursor,
    encode_cursor,
    merge,
    scatter_gather,
)
from tests.unit.shop.fakes import FakeCatalog


def _p(product_id: int, price: int) -> Product:
    return Product(product_id, f"p{product_id}", "misc", price, 1)


def _catalog() -> tuple[FakeCatalog, list[Product]]:
    """Three shards; ten products with ties on price, spread over all three."""
    catalog = FakeCatalog(shards=3)
    prices = [500, 100, 300, 100, 700, 300, 200, 100, 900, 300]
    made = [catalog.add(bucket, f"item {i}", price, category="lamps" if i % 2 else "mugs")
            for i, (bucket, price) in enumerate(zip([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], prices))]
    assert {catalog.map.shard_of_id(p.id) for p in made} == {0, 1, 2}
    return catalog, sorted(made, key=lambda p: (p.price_cents, p.id))


# -- merge ---------------------------------------------------------------------------------------

def test_merge_orders_by_price_then_id_and_says_whether_more_exist():
    pages = [ShardPage(0, [_p(5, 100), _p(9, 300)]), ShardPage(1, [_p(2, 100), _p(7, 200)]), ShardPage(2, [])]
    items, more = merge(pages, limit=3)
    assert [(p.price_cents, p.id) for p in items] == [(100, 2), (100, 5), (200, 7)]
    assert more is True
    items, more = merge(pages, limit=4)
    assert [p.id for p in items] == [2, 5, 7, 9] and more is False
    assert merge([], limit=5) == ([], False)


# -- cursors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("price, product_id", [(0, 1), (1999, 121282632926375937), (10**9, (1 << 63) - 1)])
def test_a_cursor_round_trips_and_is_url_safe(price, product_id):
    cursor = encode_cursor(_p(product_id, price))
    assert decode_cursor(cursor) == (price, product_id)
    assert re.fullmatch(CURSOR, cursor)  # what the API's schema accepts


def test_an_id_past_every_id_is_the_position_after_every_product_at_that_price():
    """The schema accepts 19 digits, so the handler does too (2**63 and more read as the largest id)."""
    assert decode_cursor(f"1_{1 << 63}") == decode_cursor(f"1_{'9' * 19}") == (1, (1 << 63) - 1)


@pytest.mark.parametrize("cursor", ["", "!!!", "not a cursor", "_", "1_", "_2", "12", "1_2_3", "a_1", "1_a",
                                    "-1_2", "1_-2", "1.5_2", "1_2.0", " 1_2", "1_2 ", "\u0661_\u0662",
                                    "MTAwXzU"])
def test_a_cursor_this_api_did_not_make_is_invalid_input(cursor):
    with pytest.raises(InvalidInput) as err:
        decode_cursor(cursor)
    assert err.value.code == "invalid_cursor"


# -- scatter-gather ------------------------------------------------------------------------------

async def test_every_shard_is_asked_for_one_more_row_with_the_deadline():
    catalog, everything = _catalog()
    listing = await scatter_gather(catalog, ProductQuery(limit=4), 0.25)
    assert [p.id for p in listing.items] == [p.id for p in everything[:4]]
    assert listing.missing_shards == [] and listing.partial is False
    assert decode_cursor(listing.next_cursor) == (everything[3].price_cents, everything[3].id)
    asked = catalog.called("search")
    assert sorted(shard for shard, _, _ in asked) == [0, 1, 2]
    assert {(q.limit, deadline) for _, q, deadline in asked} == {(5, 0.25)}


async def test_no_deadline_means_the_long_default():
    catalog, _ = _catalog()
    await scatter_gather(catalog, ProductQuery(limit=2), 0)
    assert {deadline for _, _, deadline in catalog.called("search")} == {30.0}


async def test_a_shard_that_does_not_answer_is_named_and_the_others_are_merged():
    catalog, everything = _catalog()
    catalog.down.add(1)
    listing = await scatter_gather(catalog, ProductQuery(limit=100), 0.25)
    assert isinstance(listing, Listing) and listing.partial is True and listing.missing_shards == [1]
    expected = [p.id for p in everything if catalog.map.shard_of_id(p.id) != 1]
    assert [p.id for p in listing.items] == expected and 0 < len(expected) < len(everything)
    assert listing.next_cursor is None


async def test_no_shard_answering_is_unavailable():
    catalog, _ = _catalog()
    catalog.down.update({0, 1, 2})
    with pytest.raises(Unavailable) as err:
        await scatter_gather(catalog, ProductQuery(), 0.25)
    assert err.value.code == "shards_unavailable"


async def test_a_shard_that_fails_with_a_bug_is_not_hidden_as_missing():
    catalog, _ = _catalog()
    catalog.fail("search", RuntimeError("a bug, not an outage"))
    with pytest.raises(RuntimeError, match="a bug"):
        await scatter_gather(catalog, ProductQuery(), 0.25)


async def test_paging_with_the_cursor_yields_every_product_once_in_order():
    catalog, everything = _catalog()
    seen: list[int] = []
    after = None
    pages = 0
    while True:
        listing = await scatter_gather(catalog, ProductQuery(after=after, limit=2), 0.25)
        seen += [p.id for p in listing.items]
        pages += 1
        assert len(listing.items) <= 2
        if listing.next_cursor is None:
            break
        after = decode_cursor(listing.next_cursor)
        assert pages < 20
    assert seen == [p.id for p in everything]
    assert pages == 5


async def test_filters_reach_every_shard():
    catalog, everything = _catalog()
    listing = await scatter_gather(catalog, ProductQuery(category="lamps", min_price=200, max_price=700), 0.25)
    expected = [p.id for p in everything if p.category == "lamps" and 200 <= p.price_cents <= 700]
    assert [p.id for p in listing.items] == expected and expected
    assert all(q.category == "lamps" for _, q, _ in catalog.called("search"))


async def test_an_empty_catalog_is_an_empty_complete_page():
    listing = await scatter_gather(FakeCatalog(shards=2), ProductQuery(), 0.25)
    assert (listing.items, listing.next_cursor, listing.partial) == ([], None, False)


async def test_a_shard_failure_during_paging_only_drops_that_shards_rows():
    catalog, everything = _catalog()
    first = await scatter_gather(catalog, ProductQuery(limit=3), 0.25)
    catalog.down.add(0)
    second = await scatter_gather(catalog, ProductQuery(after=decode_cursor(first.next_cursor), limit=3), 0.25)
    assert second.missing_shards == [0]
    rest = [p.id for p in everything[3:] if catalog.map.shard_of_id(p.id) != 0][:3]
    assert [p.id for p in second.items] == rest
    with pytest.raises(ShardUnavailable):
        await catalog.search(0, ProductQuery(), 0.25)
