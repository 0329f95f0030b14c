"""The Idempotency-Key a request must carry when repeating it must not repeat its effect (a
checkout, a charge). Pure: the entrypoint reads the header, this decides what it is worth."""

from __future__ import annotations

from services.errors import InvalidInput, LabError

MAX_IDEMPOTENCY_KEY = 255


class MissingIdempotencyKey(LabError):
    """A 400 (no kind maps it elsewhere): without a key a retry cannot be told from a second
    request, so the request is malformed, not merely invalid."""

    code = "idempotency_key_missing"


def check_idempotency_key(key: str | None, *, why: str) -> str:
    """``key`` as it is when it is 1-255 printable ASCII characters and not only spaces.

    ``why`` ends the missing key's message (what the key is for, in the caller's words). A key of
    spaces only counts as missing: a header's value never starts or ends with spaces, so one that
    is only spaces is an empty header.
    """
    if key is None or not key.strip():
        raise MissingIdempotencyKey(f"the Idempotency-Key header is required{why}")
    if len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable() or not key.isascii():
        raise InvalidInput(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters",
                           code="invalid_idempotency_key")
    return key
