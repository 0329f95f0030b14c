"""Idle connections between Caddy and an instance, reused at the edges of the two keep-alive
timeouts, lose no request: POSTs (which Caddy does not retry) sent after the pool sat idle for just
over Caddy's idle timeout, and for exactly the instances' own (the instant an instance closes an idle
connection: with the timeouts the other way round, a request written then is lost, a 502), all get
their 201.

Slow by nature (it waits the timeouts out: about two and a half minutes)."""

from __future__ import annotations

import asyncio
import time

import httpx

from loadtests.shortener.seed import random_client_address
from services.lab.stack import uvicorn_cmd
from tests.support.lab import Lab
from tests.unit.lab.test_keep_alive import keep_alive_s, reverse_proxies

CONNECTIONS = 16  # concurrent requests: as many pooled connections between Caddy and the instance


async def _burst(base_url: str, tag: str) -> list[int]:
    """CONNECTIONS concurrent creates (each from its own client address, past the rate limiter)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        async def create(i: int) -> int:
            response = await client.post("/api/v1/links", json={"url": f"https://example.com/keep-alive/{tag}/{i}"},
                                         headers={"X-Forwarded-For": random_client_address()})
            return response.status_code

        return list(await asyncio.gather(*(create(i) for i in range(CONNECTIONS))))


def test_pooled_connections_reused_at_either_timeout_get_no_502(tmp_path):
    proxy_idle_s = reverse_proxies()["SHORTENER_UPSTREAMS"]["transport"]["keep_alive"]["idle_timeout"] / 1e9
    app_keep_alive_s = keep_alive_s(uvicorn_cmd("shortener.main:create_app", "127.0.0.1", 8000))
    lab = Lab.create(tmp_path / "lab", port_start=27000)
    lab.run("up", "shortener", "--instances", "1", timeout=240)
    try:
        url = f"http://127.0.0.1:{lab.env['SDLAB_SHORTENER_PORT']}"
        answers = {"warm": asyncio.run(_burst(url, "warm"))}
        last = time.monotonic()
        for label, idle_s in (("just over Caddy's idle timeout", proxy_idle_s + 1),
                              ("at the instance's keep-alive timeout", app_keep_alive_s)):
            time.sleep(max(0.0, idle_s - (time.monotonic() - last)))
            answers[label] = asyncio.run(_burst(url, label.replace(" ", "-").replace("'", "")))
            last = time.monotonic()
        assert all(s == 201 for statuses in answers.values() for s in statuses), answers
    finally:
        lab.run("down", check=False, timeout=120)
