"""The ceiling: a bare ASGI app that answers every request with the same small response (a 302 by
default; ``SDLAB_BARE_STATUS`` picks another), no framework, no I/O: what one uvicorn process
on this machine can answer at most."""

from __future__ import annotations

import os

STATUS = int(os.environ.get("SDLAB_BARE_STATUS", "302"))
HEADERS = [(b"location", b"https://example.com/"), (b"content-length", b"0")]


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": STATUS, "headers": HEADERS})
    await send({"type": "http.response.body", "body": b""})
