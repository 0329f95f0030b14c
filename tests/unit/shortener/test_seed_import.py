"""The lab's bulk seeding path: real rows, the service's own codes, taken codes retried."""

from __future__ import annotations

from loadtests.shortener.seed import import_links
from shortener import domain
from tests.unit.shortener.fakes import FakeRepo


async def test_import_creates_every_link_with_its_hash_code():
    repo = FakeRepo()
    links = await import_links(repo, 1200, chunk=500)
    assert len(links) == 1200 and len({link["code"] for link in links}) == 1200
    assert repo.calls["insert_many"] == 3  # 500 + 500 + 200
    for link in links[:50]:
        assert link["code"] == domain.hash_code(link["url"], 0)
        assert repo.rows[link["code"]].url_digest == domain.url_digest(link["url"])


class TakenOnce(FakeRepo):
    """The first row of the first bulk insert finds its code taken by another URL."""

    async def insert_many(self, rows):
        if not self.calls["insert_many"]:
            first = rows[0][0]
            self.add(domain.Link(first.code, "https://example.com/someone-else", first.created_at))
        return await super().insert_many(rows)


async def test_a_taken_code_is_retried_with_the_next_salt():
    repo = TakenOnce()
    links = await import_links(repo, 10)
    assert len(links) == 10 and repo.calls["insert_many"] == 2
    retried = [link for link in links if link["code"] != domain.hash_code(link["url"], 0)]
    assert len(retried) == 1 and retried[0]["code"] == domain.hash_code(retried[0]["url"], 1)
