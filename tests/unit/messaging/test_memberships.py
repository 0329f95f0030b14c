"""Conversation members, cached in the kit's LocalCache: read once, kept until least recently used."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from messaging.domain import Conversation
from messaging.service import Memberships
from services.errors import Forbidden


class CountingStore:
    def __init__(self, *conversations: Conversation) -> None:
        self.by_id = {c.id: c for c in conversations}
        self.reads: list[str] = []

    async def get(self, conversation_id: str) -> Conversation | None:
        self.reads.append(conversation_id)
        return self.by_id.get(conversation_id)


def _conversation(cid: str, *members: str) -> Conversation:
    return Conversation(id=cid, members=members, title=None, created_at=datetime.now(timezone.utc))


async def test_members_are_read_once_and_the_least_recently_used_leave_first():
    store = CountingStore(_conversation("c1", "ann", "bob"), _conversation("c2", "ann"), _conversation("c3", "cy"))
    memberships = Memberships(store, size=2)
    assert await memberships.check("bob", "c1") == ("ann", "bob")
    assert await memberships.members("c2") == ("ann",)
    assert await memberships.members("c1") == ("ann", "bob")  # c1 is now the most recent
    assert await memberships.members("c3") == ("cy",)  # c2 leaves
    assert await memberships.members("c1") == ("ann", "bob")
    assert await memberships.members("c2") == ("ann",)
    assert store.reads == ["c1", "c2", "c3", "c2"]


async def test_a_stranger_or_an_unknown_conversation_is_forbidden_and_nothing_unknown_is_kept():
    store = CountingStore(_conversation("c1", "ann"))
    memberships = Memberships(store)
    for user, cid in (("eve", "c1"), ("ann", "nope"), ("ann", "nope")):
        with pytest.raises(Forbidden):
            await memberships.check(user, cid)
    assert await memberships.members("nope") is None
    assert store.reads == ["c1", "nope", "nope", "nope"]
