"""The lab login, shared by messaging and shop: any well-formed name gets a signed token (JWT, HS256).

There are no user passwords on purpose: the lab measures systems, not identity. What it keeps from a
real login is the shape: a token signed with a secret from settings, an expiry, a 401 (HTTP) or
a refused handshake (WebSocket) without one. Once others can reach a design (its settings are
``guarded``), :class:`LoginGuard` asks every login for the one lab password and limits attempts per
client address, so the token is no longer free to whoever finds the port.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Awaitable, Callable

import jwt
from fastapi import APIRouter, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from services.errors import InvalidInput, RateLimited, Unauthorized
from services.forwarded import client_address, trusted_networks
from services.http import error_responses
from services.ratelimit import LocalTokenBucket
from services.settings import LoginSettings

USER_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
USER_NAME_RULE = "1-32 characters of a-z, 0-9 and _"


def check_user_name(name: str) -> str:
    if not isinstance(name, str) or not USER_NAME.fullmatch(name):
        raise InvalidInput(f"user name {name!r} is not {USER_NAME_RULE}", code="invalid_user")
    return name


class TokenSigner:
    """Issues and checks the lab's bearer tokens."""

    def __init__(self, secret: str, *, ttl_s: int, issuer: str = "sdlab") -> None:
        if len(secret.encode()) < 32:  # RFC 7518: an HS256 key has at least 256 bits
            raise ValueError("the token secret must be at least 32 bytes")
        self._secret = secret
        self._ttl_s = ttl_s
        self._issuer = issuer

    def issue(self, user: str) -> str:
        now = int(time.time())
        claims = {"sub": check_user_name(user), "iat": now, "exp": now + self._ttl_s, "iss": self._issuer}
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str | None) -> str:
        """The user the token names; Unauthorized when it is missing, forged, expired or malformed."""
        if not token:
            raise Unauthorized("a bearer token is required: POST /api/v1/sessions {\"user\": NAME} gives one")
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"], issuer=self._issuer,
                                options={"require": ["sub", "exp", "iss"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired; log in again") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"the token is not valid ({exc})") from None
        user = claims.get("sub")
        if not isinstance(user, str) or not USER_NAME.fullmatch(user):
            raise Unauthorized("the token names no valid user")
        return user


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header value, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def current_user(signer: TokenSigner) -> Callable[..., Awaitable[str]]:
    """A FastAPI dependency: the caller's user name, or 401. The OpenAPI document declares the
    bearer scheme on every operation that uses it (the header is parsed as :func:`bearer_token` does)."""
    scheme = HTTPBearer(auto_error=False, description="a token from POST /api/v1/sessions")

    async def dependency(credentials: HTTPAuthorizationCredentials | None = Security(scheme)) -> str:
        return signer.verify(credentials.credentials if credentials else None)

    return dependency


class LoginGuard:
    """A guarded login: the lab password (compared in constant time) and a token bucket per client
    address (X-Forwarded-For believed from trusted proxies only). Each instance keeps its own buckets,
    so behind N instances a client gets up to N times the rate: enough to make guessing slow."""

    def __init__(self, password: str, *, per_second: float, burst: int, trusted_proxies: list[str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not password:
            raise ValueError("a guarded login needs a lab password")
        self._password = password.encode()
        self._bucket = LocalTokenBucket(per_second=per_second, burst=burst, clock=clock)
        self._trusted = trusted_networks(trusted_proxies)

    @classmethod
    def from_settings(cls, settings: LoginSettings) -> LoginGuard | None:
        """The guard a design's settings ask for; None while only this machine reaches it."""
        if not settings.guarded or settings.lab_password is None:
            return None
        return cls(settings.lab_password.get_secret_value(), per_second=settings.login_rate_per_s,
                   burst=settings.login_burst, trusted_proxies=settings.trusted_proxies)

    def check(self, request: Request, password: str | None) -> None:
        """Raises RateLimited (429) past the client's rate, then Unauthorized (401) without the password.
        The rate is taken first, so wrong guesses count against it too."""
        client = client_address(request.client.host if request.client else None,
                                request.headers.get("x-forwarded-for"), self._trusted)
        wait = self._bucket.acquire(client)
        if wait > 0:
            raise RateLimited("too many logins from this address; wait and try again", retry_after_s=wait,
                              code="login_rate_limited")
        if password is None or not hmac.compare_digest(password.encode(), self._password):
            raise Unauthorized("this lab asks for its password at login: POST /api/v1/sessions "
                               "{\"user\": NAME, \"password\": LAB_PASSWORD}", code="lab_password")


class SessionIn(BaseModel):
    user: str = Field(..., description=USER_NAME_RULE, json_schema_extra={"pattern": USER_NAME.pattern})
    password: str | None = Field(None, max_length=1024,
                                 description="the lab password; asked only where others can reach the lab")


class SessionOut(BaseModel):
    user: str
    token: str


def sessions_router(signer: TokenSigner, guard: LoginGuard | None = None) -> APIRouter:
    router = APIRouter(tags=["sessions"])

    @router.post("/api/v1/sessions", status_code=201, response_model=SessionOut,
                 responses=error_responses({400: "the body is not JSON",
                                            401: "the lab password is missing or wrong (a guarded lab)",
                                            422: "the name is not " + USER_NAME_RULE,
                                            429: "too many logins from this address (a guarded lab)"}))
    async def create_session(body: SessionIn, request: Request) -> SessionOut:
        if guard is not None:
            guard.check(request, body.password)
        return SessionOut(user=body.user, token=signer.issue(check_user_name(body.user)))

    return router
