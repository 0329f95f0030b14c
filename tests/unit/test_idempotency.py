"""The one Idempotency-Key check, which the shop's checkout and the payment stand-in both use."""

from __future__ import annotations

import pytest

from services.errors import InvalidInput
from services.idempotency import (
    MAX_IDEMPOTENCY_KEY,
    MissingIdempotencyKey,
    check_idempotency_key,
)


@pytest.mark.parametrize("key", ["k", "order 1/2?#", " padded ", "a" * MAX_IDEMPOTENCY_KEY,
                                 "550e8400-e29b-41d4-a716-446655440000"])
def test_a_printable_ascii_key_is_accepted_as_it_is(key):
    assert check_idempotency_key(key, why="") == key


@pytest.mark.parametrize("key", [None, "", "   "])
def test_no_key_is_a_missing_key_whose_message_says_what_it_is_for(key):
    with pytest.raises(MissingIdempotencyKey) as err:
        check_idempotency_key(key, why=" on checkout")
    assert err.value.code == "idempotency_key_missing"
    assert err.value.message == "the Idempotency-Key header is required on checkout"


@pytest.mark.parametrize("key", ["a" * (MAX_IDEMPOTENCY_KEY + 1), "caf\u00e9", "tab\there", "nl\n", "nul\x00"])
def test_a_key_that_is_not_1_to_255_printable_ascii_is_invalid(key):
    with pytest.raises(InvalidInput) as err:
        check_idempotency_key(key, why="")
    assert err.value.code == "invalid_idempotency_key"
    assert err.value.message == "Idempotency-Key must be 1-255 printable ASCII characters"
