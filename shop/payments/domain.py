"""The stand-in's pure logic: what a new charge decides, what a valid request is, how a charge
looks on the wire. No I/O.

The decision is a hash of the idempotency key, not a coin toss: the same key always gets the same
answer, so a test (or an experiment rerun) sees the same declines every time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import mmh3

from services.errors import InvalidInput

MAX_AMOUNT_CENTS = 10**9
MAX_REFERENCE = 255

ChargeStatus = Literal["captured", "declined", "voided"]
STATUSES: tuple[ChargeStatus, ...] = ("captured", "declined", "voided")


@dataclass(frozen=True)
class ChargeRow:
    """A charge as the store keeps it. A key voided before any charge has amount 0 and reference ''."""

    key: str
    reference: str
    amount_cents: int
    status: ChargeStatus
    created_at: datetime

    def public(self) -> dict:
        return {"key": self.key, "status": self.status, "amount_cents": self.amount_cents,
                "reference": self.reference, "created_at": self.created_at.isoformat()}

    def same_request(self, amount_cents: int, reference: str) -> bool:
        return self.amount_cents == amount_cents and self.reference == reference


def decide(key: str, decline_rate: float) -> Literal["captured", "declined"]:
    """Declined when the key's 32-bit MurmurHash3, as a fraction of 2**32, falls under the rate."""
    return "declined" if mmh3.hash(key.encode(), signed=False) / 2**32 < decline_rate else "captured"


def check_amount(amount_cents: object) -> int:
    # bool is an int in Python; True is not an amount.
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int):
        raise InvalidInput("amount_cents must be an integer", code="invalid_amount")
    if not 0 < amount_cents <= MAX_AMOUNT_CENTS:
        raise InvalidInput(f"amount_cents must be 1-{MAX_AMOUNT_CENTS}, not {amount_cents}", code="invalid_amount")
    return amount_cents


def check_reference(reference: str) -> str:
    # PostgreSQL text cannot hold NUL; an empty reference is kept for keys voided before any charge.
    if not reference or len(reference) > MAX_REFERENCE or "\x00" in reference:
        raise InvalidInput(f"reference must be 1-{MAX_REFERENCE} characters without NUL", code="invalid_reference")
    return reference


def check_status(status: str | None) -> ChargeStatus | None:
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not {status!r}", code="invalid_status")
    return status  # type: ignore[return-value]
