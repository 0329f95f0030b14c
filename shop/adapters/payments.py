"""The payment provider over HTTP (the lab's stand-in, ``shop.payments``), as the checkout saga calls it.

Anything that is not a definite answer (a 5xx, a timeout, a dropped connection, an answer that
makes no sense) is :class:`PaymentsUnavailable`: the charge may or may not have been made, and
only a retry with the same key (or a lookup) can tell. A non-critical resource: the shop still
serves its catalog and carts while the provider is down.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from services.resources import HealthCheck
from shop.config import ShopSettings
from shop.ports import Charge, PaymentsUnavailable

_STATUSES = ("captured", "declined", "voided")


def _message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        return str(error.get("message") or error.get("code") or response.reason_phrase)[:200]
    except (ValueError, AttributeError):
        return response.reason_phrase or f"HTTP {response.status_code}"


def _code(response: httpx.Response) -> str | None:
    try:
        return response.json().get("error", {}).get("code")
    except (ValueError, AttributeError):
        return None


def _charge(body: Any) -> Charge:
    """A charge out of the provider's JSON; a body that is not one is as good as no answer."""
    try:
        status = body["status"]
        if status not in _STATUSES:
            raise ValueError(f"unknown charge status {status!r}")
        return Charge(key=str(body["key"]), status=status, amount_cents=int(body["amount_cents"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise PaymentsUnavailable(f"the payment provider answered with no usable charge ({exc})") from exc


class HttpPayments:
    """:class:`shop.ports.Payments` over ``httpx``; the client opens and closes with the app."""

    name = "payments"
    critical = False

    def __init__(self, settings: ShopSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._base_url = str(settings.payments_url)
        self._timeout_s = settings.payments_timeout_s
        self._transport = transport  # tests pass one (an ASGI app, a mock)
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(base_url=self._base_url, timeout=self._timeout_s, transport=self._transport)

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def health_checks(self) -> dict[str, HealthCheck]:
        return {"payments": self._healthz}

    async def _healthz(self) -> None:
        (await self._send("GET", "/healthz")).raise_for_status()

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self._client is None:
            raise RuntimeError("HttpPayments used before start()")
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise PaymentsUnavailable(f"the payment provider did not answer within {self._timeout_s}s") from exc
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}"[:200]
            raise PaymentsUnavailable(f"the payment provider could not be reached ({reason})") from exc
        if response.status_code >= 500:
            raise PaymentsUnavailable(f"the payment provider answered {response.status_code}: {_message(response)}")
        return response

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise PaymentsUnavailable(f"the payment provider answered {response.status_code} without JSON") from exc

    @staticmethod
    def _path(key: str) -> str:
        # Keys are printable ASCII and may hold "/", "?" or "#": every one of those is escaped.
        return f"/v1/charges/{quote(key, safe='')}"

    async def charge(self, key: str, amount_cents: int, reference: str) -> Charge:
        response = await self._send("POST", "/v1/charges", headers={"Idempotency-Key": key},
                                    json={"amount_cents": amount_cents, "reference": reference})
        if response.status_code == 201:
            return _charge(self._json(response))
        if response.status_code == 402 or (response.status_code == 409 and _code(response) == "charge_voided"):
            body = self._json(response)
            return _charge(body.get("charge") if isinstance(body, dict) else None)
        raise PaymentsUnavailable(f"the payment provider refused the charge ({response.status_code}): "
                                  f"{_message(response)}")

    async def lookup(self, key: str) -> Charge | None:
        response = await self._send("GET", self._path(key))
        if response.status_code == 404:
            return None
        if response.status_code == 200:
            return _charge(self._json(response))
        raise PaymentsUnavailable(f"the payment provider refused the lookup ({response.status_code}): "
                                  f"{_message(response)}")

    async def void(self, key: str) -> Charge:
        response = await self._send("POST", f"{self._path(key)}/void")
        if response.status_code == 200:
            return _charge(self._json(response))
        raise PaymentsUnavailable(f"the payment provider refused the void ({response.status_code}): "
                                  f"{_message(response)}")
