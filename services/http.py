"""Error-to-HTTP mapping with one JSON error body: ``{"error": {"code", "message", "status"}}``."""

from __future__ import annotations

import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from services import errors
from services.logging import get_logger

log = get_logger(__name__)

STATUS_BY_KIND: dict[type[errors.LabError], int] = {
    errors.InvalidInput: 422,
    errors.NotFound: 404,
    errors.Gone: 410,
    errors.Conflict: 409,
    errors.Forbidden: 403,
    errors.RateLimited: 429,
    errors.Unavailable: 503,
}


def status_for(exc: errors.LabError) -> int:
    for kind in type(exc).__mro__:
        if kind in STATUS_BY_KIND:
            return STATUS_BY_KIND[kind]
    return 400


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "status": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def retry_after_value(seconds: float) -> str:
    """Whole seconds, rounded up: a client that waits that long will find a token."""
    return str(max(1, math.ceil(seconds)))


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": retry_after_value(seconds)}


async def _lab_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.LabError)
    headers = None
    if isinstance(exc, (errors.RateLimited, errors.Unavailable)):
        headers = _retry_after(exc.retry_after_s)
    return error_response(status_for(exc), exc.code, exc.message, headers)


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "invalid_input", _describe_validation(exc))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", path=request.url.path)
    return error_response(500, "internal_error", "internal error; see the service log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.LabError, _lab_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
