"""The kit's lab login: signed tokens with an expiry, names checked."""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi.testclient import TestClient

from services.app import create_service_app
from services.auth import (
    LoginGuard,
    TokenSigner,
    bearer_token,
    check_user_name,
    sessions_router,
)
from services.errors import InvalidInput, Unauthorized
from shop.config import ShopSettings

SECRET = "a-secret-of-sufficient-length-for-hs256"


def test_a_token_names_its_user():
    signer = TokenSigner(SECRET, ttl_s=60)
    assert signer.verify(signer.issue("alice_1")) == "alice_1"


@pytest.mark.parametrize("token, words", [
    (None, "bearer token is required"),
    ("", "bearer token is required"),
    ("garbage", "not valid"),
    (jwt.encode({"sub": "alice", "exp": int(time.time()) + 86_400, "iss": "sdlab"}, "another-secret-entirely-and-long-enough",
                algorithm="HS256"), "not valid"),
    (jwt.encode({"sub": "alice", "exp": int(time.time()) - 1, "iss": "sdlab"}, SECRET, algorithm="HS256"), "expired"),
    (jwt.encode({"sub": "Alice!", "exp": int(time.time()) + 86_400, "iss": "sdlab"}, SECRET, algorithm="HS256"),
     "no valid user"),
    (jwt.encode({"sub": "alice", "iss": "sdlab"}, SECRET, algorithm="HS256"), "not valid"),  # no expiry
])
def test_bad_tokens_are_refused_with_a_reason(token, words):
    with pytest.raises(Unauthorized, match=words):
        TokenSigner(SECRET, ttl_s=60).verify(token)


@pytest.mark.parametrize("name", ["", "A", "a" * 33, "al ice", "alice!", "ünï"])
def test_bad_names_are_422(name):
    with pytest.raises(InvalidInput):
        check_user_name(name)


def test_bearer_header_parsing():
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer abc") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


def test_a_short_secret_is_refused():
    with pytest.raises(ValueError):
        TokenSigner("short", ttl_s=60)


# -- the guarded login (a design others can reach) -----------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _login_app(guard):
    app = create_service_app(service="shop", settings=ShopSettings(),
                             routers=[sessions_router(TokenSigner(SECRET, ttl_s=60), guard)])
    return TestClient(app, client=("127.0.0.1", 50000))  # the balancer's address: a trusted proxy


def _guard(clock, **limits):
    return LoginGuard("lab-password", per_second=limits.get("per_second", 0.5), burst=limits.get("burst", 10),
                      trusted_proxies=["127.0.0.1"], clock=clock)


def test_a_guarded_login_wants_the_lab_password():
    with _login_app(_guard(Clock())) as client:
        for body in ({"user": "alice"}, {"user": "alice", "password": "guess"}, {"user": "alice", "password": ""}):
            refused = client.post("/api/v1/sessions", json=body)
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "lab_password", body
            assert "token" not in refused.json()
        admitted = client.post("/api/v1/sessions", json={"user": "alice", "password": "lab-password"})
        assert admitted.status_code == 201
        assert TokenSigner(SECRET, ttl_s=60).verify(admitted.json()["token"]) == "alice"


def test_an_unguarded_login_stays_as_simple_as_before():
    with _login_app(None) as client:
        assert client.post("/api/v1/sessions", json={"user": "admin"}).status_code == 201


def test_logins_past_the_rate_are_429_with_retry_after_per_client_address():
    clock = Clock()
    with _login_app(_guard(clock, per_second=0.5, burst=3)) as client:
        good = {"user": "alice", "password": "lab-password"}
        assert [client.post("/api/v1/sessions", json=good).status_code for _ in range(3)] == [201] * 3
        limited = client.post("/api/v1/sessions", json=good)
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "login_rate_limited"
        assert limited.headers["Retry-After"] == "2"  # one token at 0.5/s
        # Wrong guesses spend the same tokens: guessing is as slow as logging in.
        assert client.post("/api/v1/sessions", json={"user": "x", "password": "guess"}).status_code == 429
        # Another client (as the trusted balancer reports it) has its own bucket.
        other = client.post("/api/v1/sessions", json=good, headers={"X-Forwarded-For": "203.0.113.7"})
        assert other.status_code == 201
        clock.now += 2.0
        assert client.post("/api/v1/sessions", json=good).status_code == 201


def test_the_guard_follows_the_settings():
    assert LoginGuard.from_settings(ShopSettings()) is None
    guarded = ShopSettings(bind_host="0.0.0.0", token_secret=SECRET, lab_password="pw", login_burst=2)
    assert isinstance(LoginGuard.from_settings(guarded), LoginGuard)
