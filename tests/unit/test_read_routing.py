"""Read routing: stale-tolerant reads on replicas, the primary when asked or when no replica can,
and read-your-writes by waiting for a commit LSN (with fake pools: no servers)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from services.clients.read_routing import ReadRouter, member_urls
from services.consistency import BadConsistency, ReadConsistency
from services.metrics import ReadRoutingCounters
from shortener.config import ShortenerSettings
from shortener.main import create_app
from shortener.ports import StoreUnavailable


def _lsn(text: str | int) -> int:
    return int(text)


class _Conn:
    def __init__(self, pool: _Pool) -> None:
        self.pool = pool

    async def fetchval(self, sql: str, *args):
        if "pg_last_wal_replay_lsn" in sql:
            self.pool.polls += 1
            if self.pool.catch_up_after is not None and self.pool.polls > self.pool.catch_up_after:
                self.pool.replayed = max(self.pool.replayed, _lsn(args[0]))
            return self.pool.replayed >= _lsn(args[0])
        if "pg_current_wal_lsn" in sql:
            return "50331744"
        return self.pool.name


class _Pool:
    unavailable = StoreUnavailable

    def __init__(self, name: str, *, down: bool = False, slow: bool = False, replayed: str = "0",
                 catch_up_after: int | None = None) -> None:
        self.name, self.down, self.slow, self.replayed = name, down, slow, _lsn(replayed)
        self.catch_up_after = catch_up_after  # polls before the replica has replayed what is asked
        self.polls = 0
        self.runs = 0

    async def run(self, fn, deadline_s=None):
        self.runs += 1
        if self.down:
            raise StoreUnavailable(f"{self.name} is down") from ConnectionRefusedError("refused")
        if self.slow:
            raise StoreUnavailable(f"no answer from {self.name} within the deadline")  # as within_deadline says it
        return await fn(_Conn(self))

    async def fetchval(self, sql: str, *args):
        return await self.run(lambda c: c.fetchval(sql, *args))


def _who(conn) -> object:
    return conn.fetchval("SELECT 'who'")


async def test_without_replicas_every_read_goes_to_the_primary_and_writes_need_no_token():
    router = ReadRouter(_Pool("primary"), [])
    assert await router.read(_who) == "primary"
    assert await router.commit_lsn() is None
    assert router.stats.primary_reads == 1 and not router.routes_reads


async def test_stale_tolerant_reads_take_the_replicas_in_turn_and_the_primary_when_asked():
    router = ReadRouter(_Pool("primary"), [_Pool("r1"), _Pool("r2")])
    assert [await router.read(_who) for _ in range(4)] == ["r1", "r2", "r1", "r2"]
    assert await router.read(_who, ReadConsistency(primary=True)) == "primary"
    assert (router.stats.replica_reads, router.stats.primary_reads) == (4, 1)
    assert await router.commit_lsn() == "50331744"


async def test_a_failed_replica_sends_its_reads_to_the_primary_and_is_skipped_for_a_while():
    down = _Pool("r1", down=True)
    router = ReadRouter(_Pool("primary"), [down, _Pool("r2")], skip_s=60)
    assert await router.read(_who) == "primary"  # r1 failed: this read is answered all the same
    assert [await router.read(_who) for _ in range(3)] == ["r2", "r2", "r2"]
    assert down.runs == 1 and router.stats.fell_back_unavailable == 1


async def test_a_slow_replica_keeps_its_reads_and_they_fail_rather_than_overload_the_primary():
    primary, slow = _Pool("primary"), _Pool("r1", slow=True)
    router = ReadRouter(primary, [slow], skip_s=60)
    for _ in range(3):
        with pytest.raises(StoreUnavailable, match="within the deadline"):
            await router.read(_who)
    assert slow.runs == 3 and primary.runs == 0
    assert router.stats.timed_out == 3 and router.stats.fell_back_unavailable == 0


async def test_read_your_writes_is_served_by_a_replica_that_has_replayed_the_write():
    replica = _Pool("r1", replayed="50331744")
    router = ReadRouter(_Pool("primary"), [replica])
    assert await router.read(_who, ReadConsistency(after_lsn=50331744)) == "r1"
    assert replica.polls == 1 and router.stats.waited == 0


async def test_read_your_writes_waits_for_a_replica_catching_up():
    replica = _Pool("r1", replayed="16777216", catch_up_after=3)
    router = ReadRouter(_Pool("primary"), [replica], wait_s=1.0, poll_s=0.001)
    assert await router.read(_who, ReadConsistency(after_lsn=50331744)) == "r1"
    assert replica.polls == 4 and router.stats.waited == 1 and router.stats.fell_back_behind == 0


async def test_read_your_writes_asks_the_primary_when_the_replica_stays_behind():
    replica = _Pool("r1", replayed="16777216")
    router = ReadRouter(_Pool("primary"), [replica], wait_s=0.02, poll_s=0.001)
    assert await router.read(_who, ReadConsistency(after_lsn=50331744)) == "primary"
    assert replica.polls > 2 and router.stats.fell_back_behind == 1 and router.stats.replica_reads == 0


def test_member_urls_name_each_server_of_a_multi_host_url():
    url = "postgresql://postgres@127.0.0.1:5432,127.0.0.1:5532/postgres?target_session_attrs=read-write"
    assert member_urls(url) == [
        "postgresql://postgres@127.0.0.1:5432/postgres?target_session_attrs=standby",
        "postgresql://postgres@127.0.0.1:5532/postgres?target_session_attrs=standby"]
    assert member_urls("postgresql://postgres@127.0.0.1:5432/postgres") == []


@pytest.mark.parametrize(("after", "source", "message"), [
    ("tomorrow", None, "X-Read-After-LSN"), ("0/16B3748", None, "X-Read-After-LSN"),
    ("99999999999999999999", None, "X-Read-After-LSN"), ("1'--", None, "X-Read-After-LSN"), (None, "nearest", "X-Read-From")])
def test_consistency_headers_that_cannot_be_honoured_say_which(after, source, message):
    with pytest.raises(BadConsistency, match=message):
        ReadConsistency.from_headers(after, source)


def test_consistency_headers_as_clients_send_them():
    assert ReadConsistency.from_headers("23803720", None) == ReadConsistency(after_lsn=23803720)
    assert ReadConsistency.from_headers(None, "Primary") == ReadConsistency(primary=True)
    assert ReadConsistency.from_headers(None, None) == ReadConsistency()


async def test_metrics_say_where_reads_were_served_and_why():
    router = ReadRouter(_Pool("primary"), [_Pool("r1", replayed="16777216")], wait_s=0.005, poll_s=0.001)
    await router.read(_who)
    await router.read(_who, ReadConsistency(after_lsn=50331744))
    registry = CollectorRegistry()
    registry.register(ReadRoutingCounters("shortener", lambda: [router]))
    text = generate_latest(registry).decode()
    assert 'db_routed_reads_total{reason="stale_ok",served_by="replica",service="shortener"} 1.0' in text
    assert 'db_routed_reads_total{reason="replica_behind",served_by="primary",service="shortener"} 1.0' in text
    assert 'db_read_after_waits_total{service="shortener"} 1.0' in text
    unrouted = CollectorRegistry()
    unrouted.register(ReadRoutingCounters("shortener", lambda: [ReadRouter(_Pool("primary"), [])]))
    assert "db_routed_reads" not in generate_latest(unrouted).decode()


async def test_the_counters_sum_the_routers_of_every_server():
    first, second = ReadRouter(_Pool("p1"), [_Pool("r1")]), ReadRouter(_Pool("p2"), [_Pool("r2")])
    await first.read(_who)
    await second.read(_who)
    registry = CollectorRegistry()
    registry.register(ReadRoutingCounters("shop", lambda: [first, second, ReadRouter(_Pool("p3"), [])]))
    assert 'db_routed_reads_total{reason="stale_ok",served_by="replica",service="shop"} 2.0' in (
        generate_latest(registry).decode())


def test_the_consistency_headers_are_documented_as_strings_a_client_may_omit():
    # "a string or null" invited schemathesis to send the header as the text "null" (a 422 for a valid request).
    params = {p["name"]: p for p in create_app(ShortenerSettings()).openapi()["paths"]["/api/v1/links/{code}"]["get"]
              ["parameters"]}
    assert params["x-read-after-lsn"]["schema"]["type"] == "string" and not params["x-read-after-lsn"]["required"]
    assert params["x-read-from"]["schema"]["enum"] == ["primary", "replica"]
    assert "anyOf" not in params["x-read-after-lsn"]["schema"] and "anyOf" not in params["x-read-from"]["schema"]
