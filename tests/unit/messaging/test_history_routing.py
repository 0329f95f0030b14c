"""History pages may come from a replica; the gateway's resume reads the primary (nothing acknowledged missed)."""

from __future__ import annotations

from datetime import datetime, timezone

from messaging.adapters.sql import SqlMessageStore
from services.consistency import FROM_PRIMARY, STALE_OK, ReadConsistency


class _Router:
    def __init__(self) -> None:
        self.asked: list[ReadConsistency] = []

    async def read(self, fn, consistency):
        self.asked.append(consistency)
        return await fn(self)

    async def fetch(self, sql, *args):
        return [{"conversation_id": args[0], "seq": args[1] + 1, "message_id": "m1", "sender": "ann", "body": "hi",
                 "sent_at": datetime(2026, 12, 7, tzinfo=timezone.utc)}]


async def test_a_history_page_reads_where_the_caller_allows_and_the_primary_by_default():
    router = _Router()
    store = SqlMessageStore(db=None, reads=router)
    assert [m.seq for m in await store.history("c1", 4, 10)] == [5]  # the gateway's resume: no argument
    await store.history("c1", 0, 10, STALE_OK)  # the REST history page
    assert router.asked == [FROM_PRIMARY, STALE_OK]
