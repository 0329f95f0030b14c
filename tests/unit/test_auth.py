"""The kit's lab login: signed tokens with an expiry, names checked."""

from __future__ import annotations

import time

import jwt
import pytest

from services.auth import TokenSigner, bearer_token, check_user_name
from services.errors import InvalidInput, Unauthorized

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
