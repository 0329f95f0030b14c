"""The use cases against in-memory fakes: caching, degradation, single-flight, shorten, delete."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from services.errors import (
    Conflict,
    Forbidden,
    Gone,
    InvalidInput,
    NotFound,
    RateLimited,
    Unavailable,
)
from shortener.domain import ShortenUrl, hash_code
from shortener.ports import CacheEntry
from tests.unit.shortener.fakes import link, make_service, utcnow

URL = "https://example.com/article?id=42"
CLIENT = "203.0.113.7"


async def shorten(service, url: str = URL, alias: str | None = None, expires_in: timedelta | None = None):
    return await service.shorten(ShortenUrl(url, alias, expires_in), CLIENT)


# --- resolve: the cache layers -----------------------------------------------------------------

async def test_resolve_from_the_database_fills_redis_and_the_local_cache():
    service, fakes = make_service()
    fakes.repo.add(link("abc1234", URL))
    resolved = await service.resolve("abc1234")
    assert resolved.url == URL
    assert fakes.repo.gets == 1
    assert fakes.cache.entries["abc1234"] == CacheEntry(resolved, found=True)
    assert service.local.get("abc1234") == (True, resolved)
    assert (service.stats.misses, service.stats.db_reads) == (1, 1)


async def test_redis_ttl_is_the_configured_ttl_with_jitter():
    service, fakes = make_service(cache_ttl_s=1000, cache_ttl_jitter=0.1)
    for i in range(20):
        fakes.repo.add(link(f"code{i:03d}", f"{URL}&n={i}"))
        await service.resolve(f"code{i:03d}")
    assert all(900 <= ttl <= 1100 for ttl in fakes.cache.ttls.values())
    assert len(set(fakes.cache.ttls.values())) > 1


async def test_second_resolve_is_a_local_hit():
    service, fakes = make_service()
    fakes.repo.add(link("abc1234", URL))
    await service.resolve("abc1234")
    assert (await service.resolve("abc1234")).url == URL
    assert service.stats.local_hits == 1
    assert fakes.repo.gets == 1
    assert fakes.cache.calls["get"] == 1


async def test_without_a_local_cache_the_second_resolve_is_a_redis_hit():
    service, fakes = make_service(local_cache_size=0)
    fakes.repo.add(link("abc1234", URL))
    await service.resolve("abc1234")
    assert (await service.resolve("abc1234")).url == URL
    assert (service.stats.redis_hits, service.stats.local_hits) == (1, 0)
    assert fakes.repo.gets == 1


async def test_unknown_code_is_not_found_and_cached_as_missing():
    service, fakes = make_service(local_cache_size=0, negative_ttl_s=30)
    with pytest.raises(NotFound) as info:
        await service.resolve("nosuch1")
    assert info.value.code == "link_not_found"
    assert fakes.cache.entries["nosuch1"] == CacheEntry(None, found=True)
    assert fakes.cache.ttls["nosuch1"] == 30


async def test_second_lookup_of_an_unknown_code_does_not_read_the_database():
    service, fakes = make_service(local_cache_size=0)
    for _ in range(2):
        with pytest.raises(NotFound):
            await service.resolve("nosuch1")
    assert fakes.repo.gets == 1
    assert service.stats.redis_hits == 1


async def test_unknown_code_is_remembered_in_the_local_cache_too():
    service, fakes = make_service()
    for _ in range(2):
        with pytest.raises(NotFound):
            await service.resolve("nosuch1")
    assert fakes.repo.gets == 1
    assert service.stats.local_hits == 1


async def test_expired_link_is_gone():
    service, fakes = make_service()
    fakes.repo.add(link("old1234", URL, expires_at=utcnow() - timedelta(seconds=1)))
    with pytest.raises(Gone) as info:
        await service.resolve("old1234")
    assert info.value.code == "link_expired"


async def test_expired_link_is_gone_from_the_cache_as_well():
    service, fakes = make_service()
    fakes.repo.add(link("old1234", URL, expires_at=utcnow() - timedelta(seconds=1)))
    for _ in range(2):
        with pytest.raises(Gone):
            await service.resolve("old1234")
    assert fakes.repo.gets == 1


async def test_with_every_cache_off_each_resolve_reads_the_database():
    service, fakes = make_service(cache_enabled=False, local_cache_size=0)
    fakes.repo.add(link("abc1234", URL))
    for _ in range(3):
        await service.resolve("abc1234")
    assert fakes.repo.gets == 3
    assert fakes.cache.total_calls == 0


async def test_cache_disabled_never_touches_redis():
    service, fakes = make_service(cache_enabled=False)
    fakes.repo.add(link("abc1234", URL))
    await service.resolve("abc1234")
    with pytest.raises(NotFound):
        await service.resolve("nosuch1")
    assert fakes.cache.total_calls == 0
    assert fakes.repo.gets == 2


# --- resolve with the cache down -------------------------------------------------------------

async def test_resolve_succeeds_from_the_database_when_the_cache_is_down():
    service, fakes = make_service()
    fakes.repo.add(link("abc1234", URL))
    fakes.cache.down = True
    assert (await service.resolve("abc1234")).url == URL
    assert service.stats.cache_errors == 2  # the get and the fill


async def test_cache_breaker_opens_after_the_configured_failures_and_stops_calling_redis():
    service, fakes = make_service(redis_breaker_failures=3, local_cache_size=0)
    fakes.repo.add(link("abc1234", URL))
    fakes.cache.down = True
    # First resolve: get fails (1), fill fails (2). Second: get fails (3): the breaker opens.
    for _ in range(2):
        await service.resolve("abc1234")
    assert fakes.cache.total_calls == 3
    assert service.redis_breaker.state == "open"
    for _ in range(5):
        assert (await service.resolve("abc1234")).url == URL
    assert fakes.cache.total_calls == 3
    assert fakes.repo.gets == 7


# --- resolve with the database down ----------------------------------------------------------

async def test_cached_link_resolves_while_the_database_is_down():
    service, fakes = make_service(local_cache_size=0)
    fakes.repo.add(link("abc1234", URL))
    await service.resolve("abc1234")
    fakes.repo.down = True
    assert (await service.resolve("abc1234")).url == URL
    assert fakes.repo.gets == 1


async def test_uncached_link_is_unavailable_while_the_database_is_down():
    service, fakes = make_service()
    fakes.repo.add(link("abc1234", URL))
    fakes.repo.down = True
    with pytest.raises(Unavailable) as info:
        await service.resolve("abc1234")
    assert info.value.code == "database_unavailable"
    assert info.value.retry_after_s == 2


async def test_database_breaker_opens_and_stops_calling_the_database():
    service, fakes = make_service(db_breaker_failures=5)
    fakes.repo.down = True
    for i in range(8):
        with pytest.raises(Unavailable):
            await service.resolve(f"code{i:03d}")
    assert fakes.repo.gets == 5
    assert service.db_breaker.state == "open"


async def test_shorten_is_unavailable_while_the_database_is_down():
    service, fakes = make_service()
    fakes.repo.down = True
    with pytest.raises(Unavailable) as info:
        await shorten(service)
    assert info.value.code == "database_unavailable"


# --- single-flight ---------------------------------------------------------------------------

async def test_concurrent_misses_for_one_code_read_the_database_once():
    service, fakes = make_service()
    fakes.repo.add(link("abc1234", URL))
    fakes.repo.delay = 0.02
    results = await asyncio.gather(*(service.resolve("abc1234") for _ in range(100)))
    assert {r.url for r in results} == {URL}
    assert fakes.repo.gets == 1
    assert service.coalesced == 99


async def test_concurrent_misses_count_99_coalesced_lookups():
    service, fakes = make_service()
    fakes.repo.add(link("abc1234", URL))
    fakes.repo.delay = 0.02
    await asyncio.gather(*(service.resolve("abc1234") for _ in range(100)))
    assert service.coalesced == 99


async def test_without_single_flight_every_concurrent_miss_reads_the_database():
    service, fakes = make_service(single_flight=False)
    fakes.repo.add(link("abc1234", URL))
    fakes.repo.delay = 0.02
    await asyncio.gather(*(service.resolve("abc1234") for _ in range(100)))
    assert fakes.repo.gets == 100
    assert service.coalesced == 0


async def test_coalesced_lookups_share_the_database_failure():
    service, fakes = make_service()
    fakes.repo.delay = 0.02
    fakes.repo.down = True
    results = await asyncio.gather(*(service.resolve("abc1234") for _ in range(10)), return_exceptions=True)
    assert all(isinstance(r, Unavailable) for r in results)
    assert fakes.repo.gets == 1


async def test_a_cancelled_leader_does_not_cancel_the_waiters():
    service, fakes = make_service()
    fakes.repo.add(link("abc1234", URL))
    fakes.repo.delay = 0.02
    leader = asyncio.create_task(service.resolve("abc1234"))
    await asyncio.sleep(0)  # the leader is now inside the database read
    waiter = asyncio.create_task(service.resolve("abc1234"))
    await asyncio.sleep(0)  # the waiter is now waiting on the leader's read
    leader.cancel()
    try:
        assert (await waiter).url == URL
    except asyncio.CancelledError:
        pytest.fail("the waiter was cancelled although only the leader was")


# --- shorten ---------------------------------------------------------------------------------

async def test_shorten_a_new_url_creates_a_link_with_a_delete_token():
    service, fakes = make_service()
    result = await shorten(service)
    assert result.created is True
    assert result.delete_token
    assert result.link.code == hash_code(URL, 0)
    assert result.link.url == URL and result.link.custom_alias is False
    assert fakes.repo.rows[result.link.code].link == result.link


async def test_shorten_the_same_url_again_returns_the_same_code_without_a_token():
    service, _ = make_service()
    first = await shorten(service)
    again = await shorten(service)
    assert again.link.code == first.link.code
    assert again.created is False
    assert again.delete_token is None


async def test_shorten_with_expiry_sets_expires_at():
    service, _ = make_service()
    before = utcnow()
    result = await shorten(service, expires_in=timedelta(hours=1))
    assert before + timedelta(hours=1) <= result.link.expires_at <= utcnow() + timedelta(hours=1)


async def test_shorten_a_url_whose_link_expired_creates_a_fresh_link():
    service, fakes = make_service()
    fakes.repo.add(link(hash_code(URL, 0), URL, expires_at=utcnow() - timedelta(seconds=1)))
    result = await shorten(service)
    assert result.created is True
    assert result.link.code == hash_code(URL, 1)
    assert hash_code(URL, 0) not in fakes.repo.rows


async def test_shorten_with_an_alias_uses_it():
    service, fakes = make_service()
    result = await shorten(service, alias="my-link")
    assert result.link.code == "my-link"
    assert result.link.custom_alias is True
    assert result.created is True and result.delete_token


async def test_an_alias_may_point_at_a_url_that_already_has_a_generated_link():
    service, _ = make_service()
    generated = await shorten(service)
    aliased = await shorten(service, alias="my-link")
    assert (aliased.link.code, aliased.created) == ("my-link", True)
    assert generated.link.code != "my-link"


async def test_taken_alias_is_a_conflict():
    service, _ = make_service()
    await shorten(service, alias="my-link")
    with pytest.raises(Conflict) as info:
        await shorten(service, url="https://other.example/", alias="my-link")
    assert info.value.code == "alias_taken"


async def test_reserved_alias_is_invalid_input():
    service, fakes = make_service()
    with pytest.raises(InvalidInput) as info:
        await shorten(service, alias="Metrics")
    assert info.value.code == "alias_reserved"
    assert fakes.repo.calls["insert"] == 0


async def test_invalid_url_is_refused_before_the_database():
    service, fakes = make_service()
    with pytest.raises(InvalidInput) as info:
        await shorten(service, url="javascript:alert(1)")
    assert info.value.code == "url_scheme"
    assert fakes.repo.calls["insert"] == 0


async def test_link_to_the_public_host_is_refused():
    service, _ = make_service(public_url="https://sho.rt")
    with pytest.raises(Forbidden) as info:
        await shorten(service, url="https://sho.rt/abc1234")
    assert info.value.code == "url_self"


async def test_hash_collision_is_resolved_with_the_next_salt():
    service, fakes = make_service()
    fakes.repo.add(link(hash_code(URL, 0), "https://someone-else.example/"))
    result = await shorten(service)
    assert result.link.code == hash_code(URL, 1)
    assert result.created is True
    assert service.stats.collisions == 1


async def test_creating_a_link_clears_the_negative_cache_for_its_code():
    service, fakes = make_service()
    with pytest.raises(NotFound):
        await service.resolve("fresh-code")
    assert fakes.cache.entries["fresh-code"].link is None
    await shorten(service, alias="fresh-code")
    assert (await service.resolve("fresh-code")).url == URL


async def test_a_create_costs_one_limiter_call_and_one_insert_and_forgets_nothing_fresh():
    service, fakes = make_service()
    result = await shorten(service)
    assert fakes.limiter.clients == [CLIENT] and fakes.repo.calls["insert"] == 1
    assert fakes.cache.total_calls == 0 and fakes.invalidator.codes == [], \
        "a code no cache holds has nothing to forget: no round trip for it"
    assert result.created is True


async def test_a_code_cached_as_missing_is_forgotten_everywhere_when_created():
    """A probe of the alias before it existed left "not found" in Redis and in the local caches;
    the create must drop it, or the new link would answer 404 for the negative TTL."""
    service, fakes = make_service()
    with pytest.raises(NotFound):
        await service.resolve("soon-here")
    assert fakes.cache.entries["soon-here"].link is None
    await shorten(service, alias="soon-here")
    assert "soon-here" not in fakes.cache.entries and fakes.invalidator.codes == ["soon-here"]
    assert (await service.resolve("soon-here")).url == URL


async def test_a_create_while_the_limiter_is_down_forgets_the_code_to_be_safe():
    service, fakes = make_service()
    fakes.limiter.down = True
    result = await shorten(service)
    assert fakes.invalidator.codes == [result.link.code]


async def test_rate_limited_create_is_refused_with_the_wait():
    service, fakes = make_service()
    fakes.limiter.wait = 2.5
    with pytest.raises(RateLimited) as info:
        await shorten(service)
    assert info.value.retry_after_s == 2.5
    assert service.stats.rate_limited == 1
    assert fakes.limiter.clients == [CLIENT]
    assert fakes.repo.calls["insert"] == 0


async def test_create_is_allowed_when_the_limiter_is_down():
    service, fakes = make_service()
    fakes.limiter.down = True
    result = await shorten(service)
    assert result.created is True
    assert service.stats.limiter_errors == 1


async def test_counter_scheme_gives_distinct_codes_across_lease_refills():
    service, fakes = make_service(id_scheme="counter", counter_lease_size=1000)
    codes = [(await shorten(service, url=f"https://example.com/{i}")).link.code for i in range(3000)]
    assert len(set(codes)) == 3000
    assert all(len(c) == 7 for c in codes)
    assert fakes.counter.leases == [(0, 1000), (1000, 2000), (2000, 3000)]


async def test_counter_scheme_is_unavailable_when_the_counter_is_down():
    service, fakes = make_service(id_scheme="counter")
    fakes.counter.down = True
    with pytest.raises(Unavailable) as info:
        await shorten(service)
    assert info.value.code == "ids_unavailable"


async def test_random_scheme_creates_and_still_deduplicates_urls():
    service, _ = make_service(id_scheme="random", code_length=9)
    first = await shorten(service)
    again = await shorten(service)
    other = await shorten(service, url="https://example.com/other")
    assert len(first.link.code) == 9 and first.created
    assert (again.link.code, again.created) == (first.link.code, False)
    assert other.link.code != first.link.code


# --- delete ----------------------------------------------------------------------------------

async def test_delete_with_a_wrong_token_is_forbidden():
    service, fakes = make_service()
    created = await shorten(service)
    with pytest.raises(Forbidden) as info:
        await service.delete(created.link.code, "not-the-token")
    assert info.value.code == "bad_delete_token"
    assert created.link.code in fakes.repo.rows


async def test_delete_with_the_right_token_removes_the_link():
    service, fakes = make_service()
    code = (created := await shorten(service)).link.code
    await service.delete(code, created.delete_token)
    assert code not in fakes.repo.rows
    with pytest.raises(NotFound):
        await service.resolve(code)


async def test_delete_drops_the_link_from_every_cache_and_tells_the_other_instances():
    service, fakes = make_service()
    code = (created := await shorten(service)).link.code
    await service.resolve(code)
    assert service.local.get(code)[0] and code in fakes.cache.entries
    fakes.invalidator.codes.clear()
    await service.delete(code, created.delete_token)
    assert service.local.get(code) == (False, None)
    assert code not in fakes.cache.entries
    assert fakes.invalidator.codes == [code]


async def test_delete_of_an_unknown_code_is_not_found():
    service, _ = make_service()
    with pytest.raises(NotFound):
        await service.delete("nosuch1", "whatever")


async def test_delete_while_the_cache_is_down_defers_the_invalidation():
    service, fakes = make_service()
    code = (created := await shorten(service)).link.code
    await service.resolve(code)
    fakes.cache.down = True
    await service.delete(code, created.delete_token)
    assert service.pending_invalidations == {code}
    fakes.cache.down = False
    await service.retry_invalidations()
    assert service.pending_invalidations == set()
    assert code not in fakes.cache.entries


async def test_stale_redis_entry_of_a_pending_invalidation_is_not_served():
    service, fakes = make_service(local_cache_size=0)
    code = (created := await shorten(service)).link.code
    await service.resolve(code)  # Redis now holds the link
    fakes.cache.down = True
    await service.delete(code, created.delete_token)
    fakes.cache.down = False  # Redis is back, still holding the deleted link
    with pytest.raises(NotFound):
        await service.resolve(code)


async def test_get_link_reports_clicks_from_the_database():
    service, fakes = make_service()
    fakes.repo.add(link("abc1234", URL), clicks=7)
    assert (await service.get_link("abc1234")).clicks == 7
    with pytest.raises(NotFound):
        await service.get_link("nosuch1")


# --- analytics -------------------------------------------------------------------------------

async def test_clicks_are_recorded_when_analytics_is_on():
    service, fakes = make_service(analytics_enabled=True)
    service.clicked("abc1234")
    service.clicked("abc1234")
    assert fakes.clicks.counts == {"abc1234": 2}


async def test_clicks_are_not_recorded_when_analytics_is_off():
    service, fakes = make_service(analytics_enabled=False)
    service.clicked("abc1234")
    assert fakes.clicks.counts == {}
