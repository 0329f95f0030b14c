"""The lab login, shared by messaging and shop: any well-formed name gets a signed token (JWT, HS256).

There are no passwords on purpose: the lab measures systems, not identity. What it keeps from a
real login is the shape: a token signed with a secret from settings, an expiry, a 401 (HTTP) or
a refused handshake (WebSocket) without one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable

import jwt
from fastapi import APIRouter, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from services.errors import InvalidInput, Unauthorized
from services.http import error_responses

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


class SessionIn(BaseModel):
    user: str = Field(..., description=USER_NAME_RULE, json_schema_extra={"pattern": USER_NAME.pattern})


class SessionOut(BaseModel):
    user: str
    token: str


def sessions_router(signer: TokenSigner) -> APIRouter:
    router = APIRouter(tags=["sessions"])

    @router.post("/api/v1/sessions", status_code=201, response_model=SessionOut,
                 responses=error_responses({400: "the body is not JSON",
                                            422: "the name is not " + USER_NAME_RULE}))
    async def create_session(body: SessionIn) -> SessionOut:
        return SessionOut(user=body.user, token=signer.issue(check_user_name(body.user)))

    return router
