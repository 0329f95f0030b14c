"""The payment stand-in's store against the lab's PostgreSQL (migrated here: the migration is
idempotent, and runs under its own advisory lock if the lab migrates at the same time)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.clients.postgres import PgPool
from shop.payments import migrate
from shop.payments.store import SqlCharges, StoreUnavailable


@pytest.fixture
async def charges(lab):
    url = lab.state["components"]["postgres-0"]["url"]
    # Alembic's runner starts an event loop of its own: off this one.
    await asyncio.to_thread(migrate.upgrade, url)
    pool = PgPool(url, timeout_s=5.0, max_size=15, unavailable=StoreUnavailable)
    await pool.start()
    yield SqlCharges(pool)
    await pool.stop()


def _key() -> str:
    return f"it-{uuid.uuid4().hex}"


async def test_the_first_writer_wins_and_the_others_read_its_charge(charges):
    key = _key()
    results = await asyncio.gather(*(charges.record(key, f"order-{i}", 100 + i, "captured") for i in range(10)))
    created = [row for row, new in results if new]
    assert len(created) == 1
    winner = created[0]
    assert {row for row, _ in results} == {winner}
    assert await charges.get(key) == winner
    assert winner.status == "captured" and winner.created_at.tzinfo is not None


async def test_a_second_record_returns_the_first_unchanged(charges):
    key = _key()
    first, new = await charges.record(key, "order-a", 500, "declined")
    again, again_new = await charges.record(key, "order-b", 900, "captured")
    assert (new, again_new) == (True, False)
    assert again == first and (again.reference, again.amount_cents, again.status) == ("order-a", 500, "declined")


async def test_a_void_records_a_voided_key_and_never_changes_a_charge(charges):
    fresh, captured = _key(), _key()
    voided = await charges.void(fresh)
    assert (voided.key, voided.status, voided.amount_cents, voided.reference) == (fresh, "voided", 0, "")
    assert await charges.void(fresh) == voided
    row, new = await charges.record(fresh, "order-v", 100, "captured")
    assert not new and row == voided  # too late: the key is voided for good

    charged, _ = await charges.record(captured, "order-c", 250, "captured")
    assert await charges.void(captured) == charged
    assert (await charges.get(captured)).status == "captured"
    assert await charges.get(_key()) is None


async def test_stats_count_by_status_and_sum_captured_cents(charges):
    before = await charges.stats()
    await charges.record(_key(), "o", 1_000, "captured")
    await charges.record(_key(), "o", 2_500, "captured")
    await charges.record(_key(), "o", 7_000, "declined")
    await charges.void(_key())
    after = await charges.stats()
    # Other tests (and the session's lab) may record concurrently: at least these, then.
    assert after["captured"] - before["captured"] >= 2
    assert after["captured_cents"] - before["captured_cents"] >= 3_500
    assert after["declined"] - before["declined"] >= 1
    assert after["voided"] - before["voided"] >= 1


async def test_the_listing_pages_by_key_and_filters_by_status(charges):
    prefix = f"it-list-{uuid.uuid4().hex[:8]}-"
    for i in range(5):
        await charges.record(f"{prefix}{i}", "o", 100, "captured" if i % 2 == 0 else "declined")
    first = await charges.list("captured", prefix, 2)
    assert [r.key for r in first] == [f"{prefix}0", f"{prefix}2"]
    rest = await charges.list("captured", first[-1].key, 2)
    assert rest[0].key == f"{prefix}4"
    declined = [r.key for r in await charges.list("declined", prefix, 1000) if r.key.startswith(prefix)]
    assert declined == [f"{prefix}1", f"{prefix}3"]
    everything = [r.key for r in await charges.list(None, prefix, 1000) if r.key.startswith(prefix)]
    assert everything == [f"{prefix}{i}" for i in range(5)]
