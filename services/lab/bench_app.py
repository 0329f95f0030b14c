"""The ceiling: a bare ASGI app that answers every request with the same 302 the shortener sends."""

from __future__ import annotations

LOCATION = b"https://example.com/"


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 302,
                "headers": [(b"location", LOCATION), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
