"""HTTP entrypoint of the payment stand-in: charges, lookups, voids, a listing and totals.

A charge misbehaves on purpose, as configured: it takes ``latency ± jitter``; it fails without
charging (``failure_rate``); and it charges and then answers 503 anyway (``lost_response_rate``),
the case a checkout saga must survive by retrying with the same key. Both 503s read the same, as
they would to a real client, which cannot tell them apart.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Protocol

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from services.errors import NotFound
from services.http import ErrorDetail, error_body, error_response, error_responses
from shop.config import ShopSettings
from services.idempotency import MAX_IDEMPOTENCY_KEY, check_idempotency_key
from shop.payments.domain import (MAX_AMOUNT_CENTS, MAX_REFERENCE, ChargeRow, ChargeStatus, check_amount,
                                  check_reference, check_status, decide)

LIST_MAX = 1000
CHARGE_KEY = ": a charge is made once per key, and a retry with the same key returns the first outcome"
LOST = ("the provider did not answer properly; the charge may or may not have been made: "
        "retry with the same Idempotency-Key to learn its outcome")


class ChargeStore(Protocol):
    async def record(self, key: str, reference: str, amount: int, status: ChargeStatus) -> tuple[ChargeRow, bool]: ...

    async def get(self, key: str) -> ChargeRow | None: ...

    async def void(self, key: str) -> ChargeRow: ...

    async def stats(self) -> dict[str, int]: ...

    async def list(self, status: ChargeStatus | None, after_key: str | None, limit: int) -> list[ChargeRow]: ...


@dataclass
class Counters:
    """Counted by this instance, read at scrape time (plain ints: no lock on the hot path)."""

    captured: int = 0
    declined: int = 0
    voided: int = 0  # void requests answered with a voided row (a repeated void counts again)
    failures_injected: int = 0
    responses_lost: int = 0


class ChargeRequest(BaseModel):
    # Strict: 12.5 or "12" is a client bug, not an amount to round.
    amount_cents: int = Field(..., strict=True, description=f"1-{MAX_AMOUNT_CENTS}",
                              json_schema_extra={"minimum": 1, "maximum": MAX_AMOUNT_CENTS})
    reference: str = Field(..., min_length=1, max_length=MAX_REFERENCE, description="the caller's id, e.g. an order")


class ChargeOut(BaseModel):
    key: str
    status: ChargeStatus
    amount_cents: int
    reference: str
    created_at: str


class ChargeRefused(BaseModel):
    """A 402 (declined) or 409 (voided): the error and the charge it is about."""

    error: ErrorDetail
    charge: ChargeOut


class ChargePage(BaseModel):
    items: list[ChargeOut]
    next: str | None = Field(None, description="pass as ?after= for the next page; null on the last")


class Stats(BaseModel):
    captured: int
    captured_cents: int
    declined: int
    voided: int


def _refused(status: int, code: str, message: str, row: ChargeRow) -> JSONResponse:
    return JSONResponse({**error_body(status, code, message), "charge": row.public()}, status_code=status)


def answer(row: ChargeRow, amount_cents: int, reference: str) -> JSONResponse:
    """The answer to a charge request given the charge its key holds (new or replayed)."""
    if row.status == "voided":
        return _refused(409, "charge_voided", f"charge {row.key!r} was voided; this key can never be charged", row)
    if not row.same_request(amount_cents, reference):
        return error_response(422, "idempotency_key_reused",
                              f"Idempotency-Key {row.key!r} was used for a charge of {row.amount_cents} cents "
                              f"(reference {row.reference!r}); use a new key for a different charge")
    if row.status == "declined":
        return _refused(402, "card_declined", "the card was declined", row)
    return JSONResponse(row.public(), status_code=201)


def build_router(store: ChargeStore, settings: ShopSettings, rng: random.Random, counters: Counters) -> APIRouter:
    router = APIRouter(tags=["payments"])
    unavailable = {503: "the provider failed (injected) or its database is unavailable; retry with the same key"}
    key_help = f"1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters"

    async def delay() -> None:
        jitter = settings.payments_jitter_ms
        ms = settings.payments_latency_ms + (rng.uniform(-jitter, jitter) if jitter else 0.0)
        if ms > 0:
            await asyncio.sleep(ms / 1000)

    def happens(rate: float) -> bool:
        return rate > 0 and rng.random() < rate

    @router.post("/v1/charges", status_code=201, response_model=ChargeOut, responses={
        402: {"model": ChargeRefused, "description": "declined (card_declined); a replay answers the same"},
        409: {"model": ChargeRefused, "description": "the key was voided (charge_voided)"},
        **error_responses({400: "no Idempotency-Key (idempotency_key_missing), or a body that is not JSON",
                           422: "invalid amount, reference or key; or the key was used for another charge "
                                "(idempotency_key_reused)", **unavailable})})
    async def charge(body: ChargeRequest,
                     idempotency_key: str | None = Header(None, alias="Idempotency-Key", description=key_help)
                     ) -> JSONResponse:
        key = check_idempotency_key(idempotency_key, why=CHARGE_KEY)
        amount, reference = check_amount(body.amount_cents), check_reference(body.reference)
        await delay()
        if happens(settings.payments_failure_rate):
            counters.failures_injected += 1
            return error_response(503, "provider_error", LOST, headers={"Retry-After": "1"})
        # Insert first (one statement for a new key); a replay, or a racing request that won the
        # insert, gets the row there, whatever it says.
        row, created = await store.record(key, reference, amount, decide(key, settings.payments_decline_rate))
        if created and row.status == "captured":
            counters.captured += 1
        elif created:
            counters.declined += 1
        if created and row.status == "captured" and happens(settings.payments_lost_response_rate):
            counters.responses_lost += 1
            return error_response(503, "provider_error", LOST, headers={"Retry-After": "1"})
        return answer(row, amount, reference)

    @router.get("/v1/charges", response_model=ChargePage, responses=error_responses(
        {422: "invalid status, after or limit", 503: "the database is unavailable"}))
    async def list_charges(status: str | None = Query(None, description="captured, declined or voided"),
                           after: str | None = Query(None, max_length=MAX_IDEMPOTENCY_KEY,
                                                     description="the previous page's next"),
                           limit: int = Query(100, ge=1, le=LIST_MAX)) -> ChargePage:
        rows = await store.list(check_status(status), after, limit)
        items = [ChargeOut(**r.public()) for r in rows]
        return ChargePage(items=items, next=rows[-1].key if len(rows) == limit else None)

    @router.get("/v1/charges/{key:path}", response_model=ChargeOut, responses=error_responses(
        {404: "no charge under this key", 422: "invalid key", 503: "the database is unavailable"}))
    async def get_charge(key: str) -> ChargeOut:
        row = await store.get(check_idempotency_key(key, why=CHARGE_KEY))
        if row is None:
            raise NotFound(f"no charge under key {key!r}")
        return ChargeOut(**row.public())

    @router.post("/v1/charges/{key:path}/void", response_model=ChargeOut, responses=error_responses(
        {422: "invalid key", 503: "the database is unavailable"}))
    async def void_charge(key: str) -> ChargeOut:
        row = await store.void(check_idempotency_key(key, why=CHARGE_KEY))
        if row.status == "voided":
            counters.voided += 1
        return ChargeOut(**row.public())

    @router.get("/v1/stats", response_model=Stats, responses=error_responses({503: "the database is unavailable"}))
    async def stats() -> Stats:
        return Stats(**await store.stats())

    return router
