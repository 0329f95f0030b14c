"""The shared kit: settings, error mapping, metrics, health endpoints, resilience, local cache."""

from __future__ import annotations

import asyncio
import math

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel, ValidationError

from messaging import ports as messaging_ports
from services import errors
from services.app import create_service_app
from services.clients.postgres import asyncpg_url
from services.local_cache import LocalCache
from services.resilience import CircuitBreaker, CircuitOpen, SingleFlight
from services.settings import ServiceSettings, split_urls
from shop import ports as shop_ports
from shop.payments import store as payments_store
from shortener import ports as shortener_ports


class Settings(ServiceSettings):
    model_config = ServiceSettings.model_config | {"env_prefix": "KIT_"}


class FakeResource:
    """Implements the Resource protocol; its check fails on demand."""

    def __init__(self, name: str, critical: bool) -> None:
        self.name, self.critical = name, critical
        self.healthy = True
        self.events: list[str] = []

    async def start(self) -> None:
        self.events.append("start")

    async def stop(self) -> None:
        self.events.append("stop")

    async def _check(self) -> None:
        if not self.healthy:
            raise ConnectionError(f"{self.name} refused")

    def health_checks(self):
        return {self.name: self._check}


def test_settings_parse_csv_and_validate_urls(monkeypatch):
    monkeypatch.setenv("KIT_DATABASE_URLS", "postgresql://u@h:1/db, postgresql://u@h:2/db")
    monkeypatch.setenv("KIT_KAFKA_BOOTSTRAP_SERVERS", "a:1,b:2")
    s = Settings()
    assert [str(u) for u in s.database_urls] == ["postgresql://u@h:1/db", "postgresql://u@h:2/db"]
    assert s.kafka_bootstrap_servers == ["a:1", "b:2"]
    monkeypatch.setenv("KIT_REDIS_URL", "http://not-redis")
    with pytest.raises(ValidationError, match="redis_url"):
        Settings()
    monkeypatch.delenv("KIT_REDIS_URL")
    monkeypatch.setenv("KIT_KAFKA_BOOTSTRAP_SERVERS", "nohostport")
    with pytest.raises(ValidationError, match="host:port"):
        Settings()


def test_asyncpg_url():
    assert asyncpg_url("postgresql://u@h:5432/d") == "postgresql+asyncpg://u@h:5432/d"
    assert asyncpg_url("postgres://u@h/d") == "postgresql+asyncpg://u@h/d"
    with pytest.raises(ValueError):
        asyncpg_url("mysql://u@h/d")


class Body(BaseModel):
    n: int


class Unreached(errors.DependencyUnavailable):
    """What an adapter raises: a dependency, named, with no code of its own."""

    dependency = "postgresql"


def _app(resources=()):
    router = APIRouter()

    @router.get("/items/{item}")
    async def item(item: str) -> dict:
        kinds = {"gone": errors.Gone, "taken": errors.Conflict, "missing": errors.NotFound}
        if item in kinds:
            raise kinds[item](f"{item}!")
        if item == "busy":
            raise errors.Unavailable("db down", retry_after_s=2.2)
        if item == "slow":
            raise errors.RateLimited("slow down", retry_after_s=0.3)
        if item == "boom":
            raise RuntimeError("bug")
        if item == "unreached":
            raise Unreached("connection refused")
        return {"item": item}

    @router.post("/items")
    async def create(body: Body) -> dict:
        return {"n": body.n}

    return create_service_app(service="kit", settings=Settings(), resources=list(resources), routers=[router])


async def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t")


@pytest.mark.parametrize("item,status,code", [("gone", 410, "gone"), ("taken", 409, "conflict"),
                                              ("missing", 404, "not_found"), ("busy", 503, "unavailable"),
                                              ("slow", 429, "rate_limited"), ("boom", 500, "internal_error"),
                                              ("unreached", 503, "unavailable")])
async def test_errors_map_to_status_with_json_body(item, status, code):
    async with await _client(_app()) as client:
        resp = await client.get(f"/items/{item}")
    assert resp.status_code == status
    assert resp.json()["error"]["code"] == code and resp.json()["error"]["status"] == status
    if item == "busy":
        assert resp.headers["retry-after"] == "3"
    if item == "slow":
        assert resp.headers["retry-after"] == "1"
    if item == "unreached":
        assert resp.headers["retry-after"] == "1" and resp.json()["error"]["message"] == "connection refused"


def test_every_design_names_its_dependency_under_one_base():
    kinds = {shortener_ports.StoreUnavailable: ("postgresql", "unavailable"),
             shortener_ports.CacheUnavailable: ("redis", "unavailable"),
             messaging_ports.StoreUnavailable: ("postgresql", "unavailable"),
             messaging_ports.RegistryUnavailable: ("redis", "unavailable"),
             messaging_ports.LogUnavailable: ("kafka", "unavailable"),
             shop_ports.ShardUnavailable: ("postgresql", "shard_unavailable"),
             shop_ports.CacheUnavailable: ("redis", "redis_unavailable"),
             shop_ports.PaymentsUnavailable: ("the payment provider", "payments_unavailable"),
             payments_store.StoreUnavailable: ("postgresql", "store_unavailable")}
    for kind, (dependency, code) in kinds.items():
        exc = kind("timed out")
        assert isinstance(exc, errors.DependencyUnavailable) and isinstance(exc, errors.Unavailable)
        assert (exc.dependency, exc.code, exc.message, str(exc), exc.retry_after_s) == (
            dependency, code, "timed out", "timed out", 1.0)
    named = errors.DependencyUnavailable("no route", dependency="kafka", retry_after_s=2, code="log_down")
    assert (named.dependency, named.code, named.retry_after_s) == ("kafka", "log_down", 2)


async def test_validation_error_names_the_field():
    async with await _client(_app()) as client:
        resp = await client.post("/items", json={"n": "x"})
        unknown = await client.get("/nope/nope")
    assert resp.status_code == 422
    assert resp.json()["error"]["message"].startswith("n: ")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


async def test_metrics_count_route_templates_not_paths():
    app = _app()
    async with await _client(app) as client:
        for item in ("a", "b", "gone"):
            await client.get(f"/items/{item}")
        text = (await client.get("/metrics")).text
    assert 'http_requests_total{method="GET",route="/items/{item}",service="kit",status="200"} 2.0' in text
    assert 'http_requests_total{method="GET",route="/items/{item}",service="kit",status="410"} 1.0' in text
    assert 'http_request_duration_seconds_count{method="GET",route="/items/{item}",service="kit"} 3.0' in text
    assert 'http_requests_in_flight{service="kit"} 1.0' in text  # the /metrics request itself


async def test_health_and_readiness_report_which_dependency_failed():
    db, cache = FakeResource("db", critical=True), FakeResource("cache", critical=False)
    app = _app([db, cache])
    async with app.router.lifespan_context(app):
        async with await _client(app) as client:
            assert (await client.get("/healthz")).json()["status"] == "alive"
            ready = await client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["status"] == "ready"
            cache.healthy = False
            degraded = await client.get("/readyz")
            assert degraded.status_code == 200 and degraded.json()["failed"] == ["cache"]
            assert degraded.json()["status"] == "degraded"
            db.healthy = False
            unready = await client.get("/readyz")
            assert unready.status_code == 503 and unready.json()["status"] == "unready"
            assert "db refused" in unready.json()["checks"]["db"]
    assert db.events == ["start", "stop"] and cache.events == ["start", "stop"]


def test_circuit_breaker_opens_half_opens_and_closes():
    now = [0.0]
    breaker = CircuitBreaker("x", failure_threshold=2, reset_after_s=1.0, clock=lambda: now[0])
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 1.5
    assert breaker.state == "half-open"
    assert breaker.allow() and not breaker.allow(), "half-open lets exactly one trial through"
    breaker.record_failure()
    assert breaker.state == "open"
    now[0] = 3.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()


async def test_circuit_breaker_call_raises_circuit_open():
    breaker = CircuitBreaker("x", failure_threshold=1, reset_after_s=60)

    async def fail():
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await breaker.call(fail, (ConnectionError,))
    with pytest.raises(CircuitOpen):
        await breaker.call(fail, (ConnectionError,))


async def test_single_flight_runs_once_for_concurrent_callers():
    flight: SingleFlight[str, int] = SingleFlight()
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return 42

    results = await asyncio.gather(*(flight.do("k", load) for _ in range(50)))
    assert results == [42] * 50 and calls == 1 and flight.coalesced == 49
    assert await flight.do("k", load) == 42 and calls == 2, "a later call runs again"


async def test_single_flight_shares_failures():
    flight: SingleFlight[str, int] = SingleFlight()

    async def fail() -> int:
        await asyncio.sleep(0.01)
        raise ValueError("no")

    results = await asyncio.gather(*(flight.do("k", fail) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)


def test_local_cache_ttl_and_lru():
    now = [0.0]
    cache: LocalCache[str] = LocalCache(2, ttl_s=10, clock=lambda: now[0])
    cache.put("a", "1")
    cache.put("b", "2")
    assert cache.get("a") == (True, "1")
    cache.put("c", "3")  # evicts b, the least recently used
    assert cache.get("b") == (False, None) and cache.get("a") == (True, "1")
    cache.put("d", "4", ttl_s=1)
    now[0] = 2
    assert cache.get("d") == (False, None) and cache.get("a") == (True, "1")
    now[0] = 11
    assert cache.get("a") == (False, None)
    assert LocalCache(0, 1).enabled is False


def test_local_cache_with_an_infinite_ttl_evicts_by_recency_only():
    now = [0.0]
    cache: LocalCache[str] = LocalCache(2, ttl_s=math.inf, clock=lambda: now[0])
    cache.put("a", "1")
    cache.put("b", "2")
    now[0] = 1e12
    assert cache.get("a") == (True, "1")
    cache.put("c", "3")
    assert cache.get("b") == (False, None) and cache.get("a") == (True, "1") and len(cache) == 2


def test_a_multi_host_url_reaches_the_designs_and_sqlalchemy():
    url = "postgresql://postgres@h:5432,h:5442/postgres?target_session_attrs=read-write"
    settings = ServiceSettings(database_urls=f"{url},postgresql://postgres@h:5433/postgres")
    assert [str(u) for u in settings.database_urls] == [url, "postgresql://postgres@h:5433/postgres"]
    assert asyncpg_url(url) == ("postgresql+asyncpg://postgres@/postgres?host=h:5432&host=h:5442"
                                "&target_session_attrs=read-write")
    assert split_urls("postgresql://a@h/d, postgres://b@h/d") == ["postgresql://a@h/d", "postgres://b@h/d"]
