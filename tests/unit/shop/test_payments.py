"""The payment stand-in: its decision and validation, its API's idempotency semantics (against an
in-memory store with the real store's methods), and the shop's HTTP client against that API."""

from __future__ import annotations

import random
import time
import uuid
from datetime import datetime, timezone

import httpx
import pytest
from fastapi.testclient import TestClient

from services.errors import InvalidInput
from shop.adapters.payments import HttpPayments
from shop.config import ShopSettings
from shop.payments.domain import (
    MAX_AMOUNT_CENTS,
    ChargeRow,
    check_amount,
    check_reference,
    decide,
)
from shop.payments.main import create_app
from shop.ports import Charge, PaymentsUnavailable


class FakeStore:
    """The SQL store's contract in a dict: first writer wins, voids never overwrite."""

    def __init__(self) -> None:
        self.rows: dict[str, ChargeRow] = {}

    async def record(self, key, reference, amount, status):
        if key in self.rows:
            return self.rows[key], False
        self.rows[key] = ChargeRow(key, reference, amount, status, datetime.now(timezone.utc))
        return self.rows[key], True

    async def get(self, key):
        return self.rows.get(key)

    async def void(self, key):
        row, _ = await self.record(key, "", 0, "voided")
        return row

    async def stats(self):
        rows = list(self.rows.values())
        captured = [r for r in rows if r.status == "captured"]
        return {"captured": len(captured), "captured_cents": sum(r.amount_cents for r in captured),
                "declined": sum(r.status == "declined" for r in rows),
                "voided": sum(r.status == "voided" for r in rows)}

    async def list(self, status, after_key, limit):
        keys = sorted(k for k, r in self.rows.items()
                      if (status is None or r.status == status) and (after_key is None or k > after_key))
        return [self.rows[k] for k in keys[:limit]]


def _settings(**overrides) -> ShopSettings:
    return ShopSettings(**{"payments_latency_ms": 0, "payments_jitter_ms": 0, **overrides})


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


def _client(store: FakeStore, **overrides) -> TestClient:
    return TestClient(create_app(_settings(**overrides), store=store, rng=random.Random(7)))


def _charge(client: TestClient, key: str | None, amount: int = 1250, reference: str = "order-1") -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post("/v1/charges", json={"amount_cents": amount, "reference": reference}, headers=headers)


def _key_declined(rate: float, declined: bool) -> str:
    return next(k for k in (f"k{i}" for i in range(10_000)) if (decide(k, rate) == "declined") == declined)


# -- the decision and validation --------------------------------------------------------------

def test_decision_is_a_function_of_the_key_and_declines_at_the_rate():
    keys = [f"order-{i}" for i in range(10_000)]
    first = [decide(k, 0.2) for k in keys]
    assert first == [decide(k, 0.2) for k in keys]
    assert abs(first.count("declined") / len(keys) - 0.2) <= 0.02
    assert {decide(k, 0.0) for k in keys} == {"captured"}
    assert {decide(k, 1.0) for k in keys} == {"declined"}


@pytest.mark.parametrize("amount", [0, -1, MAX_AMOUNT_CENTS + 1, True, 1.5, "12"])
def test_an_amount_outside_1_to_a_billion_cents_is_refused(amount):
    with pytest.raises(InvalidInput) as err:
        check_amount(amount)
    assert err.value.code == "invalid_amount"


def test_valid_amounts_and_references_pass():
    assert check_amount(1) == 1 and check_amount(MAX_AMOUNT_CENTS) == MAX_AMOUNT_CENTS
    assert check_reference("order-1") == "order-1"


@pytest.mark.parametrize("reference", ["", "x" * 256, "nul\x00"])
def test_a_bad_reference_is_refused(reference):
    with pytest.raises(InvalidInput):
        check_reference(reference)


# -- the API ------------------------------------------------------------------------------------

def test_a_charge_is_captured_once_and_replayed_to_every_retry(store):
    with _client(store) as client:
        first = _charge(client, "k-1")
        again = _charge(client, "k-1")
        assert first.status_code == again.status_code == 201
        assert first.json() == again.json()
        assert first.json()["status"] == "captured" and first.json()["amount_cents"] == 1250
        assert set(first.json()) == {"key", "status", "amount_cents", "reference", "created_at"}
        assert client.get("/v1/charges/k-1").json() == first.json()
        assert client.get("/v1/stats").json() == {"captured": 1, "captured_cents": 1250, "declined": 0, "voided": 0}


def test_a_declined_charge_answers_402_with_the_charge_and_replays_the_same(store):
    key = _key_declined(0.5, declined=True)
    with _client(store, payments_decline_rate=0.5) as client:
        first, again = _charge(client, key), _charge(client, key)
    assert first.status_code == again.status_code == 402
    assert first.json() == again.json()
    assert first.json()["error"] == {"code": "card_declined", "message": "the card was declined", "status": 402}
    assert first.json()["charge"]["status"] == "declined"


def test_the_same_key_for_another_amount_or_reference_is_refused(store):
    with _client(store) as client:
        assert _charge(client, "k-2").status_code == 201
        for response in (_charge(client, "k-2", amount=999), _charge(client, "k-2", reference="order-2")):
            assert response.status_code == 422
            assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert store.rows["k-2"].amount_cents == 1250


def test_a_voided_key_can_never_be_charged(store):
    with _client(store) as client:
        voided = client.post("/v1/charges/k-3/void")
        assert voided.status_code == 200 and voided.json()["status"] == "voided"
        charged = _charge(client, "k-3")
        assert charged.status_code == 409
        assert charged.json()["error"]["code"] == "charge_voided"
        assert charged.json()["charge"]["status"] == "voided"
        assert client.get("/v1/stats").json()["voided"] == 1


def test_voiding_a_charge_that_exists_returns_it_unchanged(store):
    with _client(store) as client:
        captured = _charge(client, "k-4").json()
        assert client.post("/v1/charges/k-4/void").json() == captured
        assert _charge(client, "k-4").status_code == 201


def test_an_injected_failure_answers_503_and_charges_nothing(store):
    with _client(store, payments_failure_rate=1.0) as client:
        response = _charge(client, "k-5")
        metrics = client.get("/metrics").text
    assert response.status_code == 503 and response.json()["error"]["code"] == "provider_error"
    assert response.headers["Retry-After"] == "1"
    assert store.rows == {}
    assert 'payments_failures_injected_total{service="shop-payments"} 1.0' in metrics


def test_a_lost_response_charges_and_a_retry_learns_it(store):
    with _client(store, payments_lost_response_rate=1.0) as client:
        lost = _charge(client, "k-6")
        assert lost.status_code == 503 and lost.json()["error"]["code"] == "provider_error"
        assert store.rows["k-6"].status == "captured"
        retry = _charge(client, "k-6")
        assert retry.status_code == 201 and retry.json()["status"] == "captured"
        metrics = client.get("/metrics").text
    assert 'payments_responses_lost_total{service="shop-payments"} 1.0' in metrics
    assert 'payments_charges_captured_total{service="shop-payments"} 1.0' in metrics


def test_a_charge_without_a_key_is_a_400(store):
    with _client(store) as client:
        for key in (None, ""):
            response = _charge(client, key)
            assert response.status_code == 400
            assert response.json()["error"] == {
                "code": "idempotency_key_missing", "status": 400,
                "message": "the Idempotency-Key header is required: a charge is made once per key, "
                           "and a retry with the same key returns the first outcome"}
    assert store.rows == {}


def test_invalid_bodies_are_422(store):
    with _client(store) as client:
        assert _charge(client, "k-7", amount=0).json()["error"]["code"] == "invalid_amount"
        bad = client.post("/v1/charges", json={"amount_cents": 12.5, "reference": "r"}, headers={"Idempotency-Key": "k"})
        assert bad.status_code == 422
        assert client.get("/v1/charges", params={"status": "refunded"}).status_code == 422
    assert store.rows == {}


def test_lookup_of_an_unknown_key_is_404_and_keys_may_hold_slashes(store):
    with _client(store) as client:
        missing = client.get("/v1/charges/nope")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert _charge(client, "a/b").status_code == 201
        assert client.get("/v1/charges/a%2Fb").json()["key"] == "a/b"
        assert client.post("/v1/charges/a%2Fb/void").json()["status"] == "captured"


def test_the_listing_pages_by_key_and_filters_by_status(store):
    with _client(store) as client:
        for i in range(5):
            _charge(client, f"c{i}", reference=f"order-{i}")
        client.post("/v1/charges/v0/void")
        page = client.get("/v1/charges", params={"status": "captured", "limit": 2}).json()
        assert [c["key"] for c in page["items"]] == ["c0", "c1"] and page["next"] == "c1"
        page = client.get("/v1/charges", params={"status": "captured", "after": "c3", "limit": 2}).json()
        assert [c["key"] for c in page["items"]] == ["c4"] and page["next"] is None
        everything = client.get("/v1/charges").json()["items"]
        assert [c["key"] for c in everything] == ["c0", "c1", "c2", "c3", "c4", "v0"]
        assert client.get("/v1/charges", params={"limit": 1001}).status_code == 422


def test_latency_and_jitter_delay_a_charge(store):
    with _client(store, payments_latency_ms=30, payments_jitter_ms=10) as client:
        start = time.perf_counter()
        assert _charge(client, "k-8").status_code == 201
        assert time.perf_counter() - start >= 0.019


# -- the shop's client ----------------------------------------------------------------------------

async def _payments(transport: httpx.AsyncBaseTransport) -> HttpPayments:
    payments = HttpPayments(ShopSettings(payments_timeout_s=0.5), transport=transport)
    await payments.start()
    return payments


async def test_the_client_maps_every_outcome_to_a_charge(store):
    app = create_app(_settings(payments_decline_rate=0.5), store=store, rng=random.Random(1))
    payments = await _payments(httpx.ASGITransport(app=app))
    try:
        ok, no = _key_declined(0.5, declined=False), _key_declined(0.5, declined=True)
        assert await payments.charge(ok, 500, "o1") == Charge(ok, "captured", 500)
        assert await payments.charge(ok, 500, "o1") == Charge(ok, "captured", 500)
        assert await payments.charge(no, 700, "o2") == Charge(no, "declined", 700)
        assert await payments.lookup(ok) == Charge(ok, "captured", 500)
        assert await payments.lookup("never-" + uuid.uuid4().hex) is None
        assert await payments.void("v/1?#") == Charge("v/1?#", "voided", 0)
        assert await payments.charge("v/1?#", 900, "o3") == Charge("v/1?#", "voided", 0)
        assert await payments.void(ok) == Charge(ok, "captured", 500)
        with pytest.raises(PaymentsUnavailable, match="idempotency key|Idempotency-Key"):
            await payments.charge(ok, 501, "o1")
        await payments.health_checks()["payments"]()
    finally:
        await payments.stop()


async def test_the_client_treats_5xx_timeouts_and_dropped_connections_as_unavailable(store):
    app = create_app(_settings(payments_failure_rate=1.0), store=store)
    failing = await _payments(httpx.ASGITransport(app=app))

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, text="not json")

    others = [await _payments(httpx.MockTransport(f)) for f in (broken, slow, garbage)]
    try:
        with pytest.raises(PaymentsUnavailable, match="503"):
            await failing.charge("k", 100, "o")
        for payments in others:
            with pytest.raises(PaymentsUnavailable):
                await payments.charge("k", 100, "o")
            with pytest.raises(PaymentsUnavailable):
                await payments.lookup("k")
    finally:
        for payments in [failing, *others]:
            await payments.stop()
