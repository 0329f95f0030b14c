"""Error-to-HTTP mapping with one JSON error body: ``{"error": {"code", "message", "status"}}``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, BeforeValidator, Field, Strict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from services import errors
from services.consistency import LSN_PATTERN, ReadConsistency
from services.logging import get_logger

log = get_logger(__name__)

STATUS_BY_KIND: dict[type[errors.LabError], int] = {
    errors.InvalidInput: 422,
    errors.NotFound: 404,
    errors.Gone: 410,
    errors.Conflict: 409,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.PaymentRequired: 402,
    errors.RateLimited: 429,
    errors.Unavailable: 503,
}


def _integral(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# An integer as JSON Schema means it: 12 or 12.0, never "12", 12.5 or true (pydantic's lax int
# takes strings and booleans, which a fuzzer rightly calls schema-violating requests accepted).
JsonInt = Annotated[int, BeforeValidator(_integral), Strict()]


def bounded_json_int(ge: int, le: int) -> object:
    """JsonInt within [ge, le]. The bounds come before the validator: placed after it, pydantic
    writes them into the OpenAPI document as raw ``ge``/``le`` (which no client reads) when the
    type is in a union with null, though it still enforces them."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_integral), Strict()]


class ErrorDetail(BaseModel):
    code: str
    message: str
    status: int


class ErrorBody(BaseModel):
    """Every error's JSON body, whatever raised it."""

    error: ErrorDetail


_HEADERS_BY_STATUS = {
    401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}},
    503: {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}},
}


def error_responses(descriptions: dict[int, str]) -> dict[int | str, dict]:
    """OpenAPI ``responses`` for error statuses: the one body above and the headers the mapping
    below always sets (a 401's WWW-Authenticate, a 429's or 503's Retry-After)."""
    return {status: {"model": ErrorBody, "description": text,
                     **({"headers": _HEADERS_BY_STATUS[status]} if status in _HEADERS_BY_STATUS else {})}
            for status, text in descriptions.items()}


def status_for(exc: errors.LabError) -> int:
    for kind in type(exc).__mro__:
        if kind in STATUS_BY_KIND:
            return STATUS_BY_KIND[kind]
    return 400


def error_body(status: int, code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message, "status": status}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, code, message), status_code=status, headers=headers)


def retry_after_value(seconds: float) -> str:
    """Whole seconds, rounded up: a client that waits that long will find a token."""
    return str(max(1, math.ceil(seconds)))


def lab_error_parts(exc: errors.LabError) -> tuple[int, dict, dict[str, str]]:
    """Status, JSON body and headers for a domain error: the one mapping for every entrypoint,
    FastAPI's handler and a raw ASGI fast path alike."""
    status = status_for(exc)
    headers = {}
    if isinstance(exc, (errors.RateLimited, errors.Unavailable)):
        headers["Retry-After"] = retry_after_value(exc.retry_after_s)
    if isinstance(exc, errors.Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return status, error_body(status, exc.code, exc.message), headers


async def _lab_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.LabError)
    status, body, headers = lab_error_parts(exc)
    return JSONResponse(body, status_code=status, headers=headers or None)


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            parts.append(f"the request body is not valid JSON ({err.get('ctx', {}).get('error', 'decode error')})")
            continue
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "invalid_input", _describe_validation(exc))


def _routes(routes) -> Iterator:
    """Every route, including those of included routers."""
    for route in routes:
        inner = getattr(route, "original_router", None) or getattr(route, "app", None)
        if hasattr(route, "path_regex"):
            yield route
        elif inner is not None and hasattr(inner, "routes"):
            yield from _routes(inner.routes)


def allowed_methods(app, path: str) -> list[str]:
    """The methods of every route whose path matches: Starlette's 405 names only the first route's."""
    methods: set[str] = set()
    for route in _routes(app.router.routes):
        if route.path_regex.match(path) and getattr(route, "methods", None):
            methods |= set(route.methods)
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(getattr(exc, "headers", None) or {})
    message = str(exc.detail)
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request.app, request.url.path))
        message = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
    elif exc.status_code == 400:
        message = f"the request body could not be parsed ({exc.detail}); send JSON with Content-Type: application/json"
    code = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, message, headers or None)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", path=request.url.path)
    return error_response(500, "internal_error", "internal error; see the service log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.LabError, _lab_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


# Typed without ``| None`` though optional: FastAPI documents ``str | None`` as "a string or null",
# and a client (schemathesis, for one) may then send the header as the text ``null``.
def read_consistency(
    x_read_after_lsn: str = Header(None, pattern=LSN_PATTERN, description=(
        "read-your-writes: the X-Commit-LSN a write answered; a replica serves the read only once it has "
        "replayed that far (it waits briefly, else the primary answers)")),
    x_read_from: Literal["primary", "replica"] = Header(None, description=(
        "primary: no staleness; replica (the default): as stale as the replica's replication lag")),
) -> ReadConsistency:
    """A read endpoint's dependency: how fresh the caller needs the answer (see :mod:`services.consistency`)."""
    return ReadConsistency.from_headers(x_read_after_lsn, x_read_from)
