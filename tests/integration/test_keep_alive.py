"""Idle connections between Caddy and an instance, reused at the edges of the two keep-alive
timeouts, lose no request: POSTs (which Caddy does not retry) sent after the pool sat idle for just
over Caddy's idle timeout, and for exactly the instances' own (the instant an instance closes an idle
connection: with the timeouts the other way round, a request written then is lost, a 502), all get
their 201.

Slow by nature (it waits the timeouts out), so the lab runs with Caddy's idle timeout at 5 s
(SDLAB_UPSTREAM_KEEPALIVE_S) and the instances' 15 s longer, the same rule as the 60 s default."""

from __future__ import annotations

import asyncio
import time

import httpx

from loadtests.shortener.seed import random_client_address
from tests.support.lab import Lab

CONNECTIONS = 16  # concurrent requests: as many pooled connections between Caddy and the instance
PROXY_IDLE_S = 5


async def _burst(base_url: str, tag: str) -> list[int]:
    """CONNECTIONS concurrent creates (each from its own client address, past the rate limiter)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        async def create(i: int) -> int:
            response = await client.post("/api/v1/links", json={"url": f"https://example.com/keep-alive/{tag}/{i}"},
                                         headers={"X-Forwarded-For": random_client_address()})
            return response.status_code

        return list(await asyncio.gather(*(create(i) for i in range(CONNECTIONS))))


def test_pooled_connections_reused_at_either_timeout_get_no_502(tmp_path):
    lab = Lab.create(tmp_path / "lab", port_start=27000, SDLAB_UPSTREAM_KEEPALIVE_S=str(PROXY_IDLE_S))
    lab.run("up", "shortener", "--instances", "1", timeout=240)
    try:
        # What the stack runs, read back: Caddy's idle timeout from its environment, the instance's
        # keep-alive from its command line.
        caddy, instance = lab.state["components"]["caddy"], lab.state["components"]["shortener-1"]
        proxy_idle_s = int(caddy["env"]["SDLAB_UPSTREAM_KEEPALIVE"].rstrip("s"))
        cmd = instance["cmd"]
        app_keep_alive_s = int(cmd[cmd.index("--timeout-keep-alive") + 1])
        assert (proxy_idle_s, app_keep_alive_s) == (PROXY_IDLE_S, PROXY_IDLE_S + 15)
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
