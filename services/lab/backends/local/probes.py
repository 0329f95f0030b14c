"""Readiness probes: each asks a component the question its clients will ask."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import httpx
from aiokafka import AIOKafkaClient

# A probe's failure is expected while a part starts; aiokafka would print each one.
logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


async def redis_ping(address: str, timeout_s: float) -> None:
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout_s)
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout_s)
        if not line.startswith(b"+PONG"):
            raise RuntimeError(f"unexpected reply {line!r}")
    finally:
        writer.close()


async def postgres_select(url: str, timeout_s: float) -> None:
    conn = await asyncpg.connect(url, timeout=timeout_s)
    try:
        await conn.fetchval("SELECT 1", timeout=timeout_s)
    finally:
        await conn.close(timeout=timeout_s)


async def kafka_metadata(bootstrap: str, timeout_s: float) -> None:
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
    finally:
        await client.close()


def _plain_http(timeout_s: float) -> httpx.AsyncClient:
    """A client for the lab's own plain-HTTP endpoints. httpx's default loads the CA bundle into
    an SSL context on every client (~35 ms of CPU, blocking the loop): with twenty components
    probed at once that stalled every probe past its limit on a busy machine ("unready (hung?)")."""
    return httpx.AsyncClient(timeout=timeout_s, verify=False, trust_env=False)


class Degraded(Exception):
    """The instance serves, but some of its dependencies do not answer."""


async def http_ready(url: str, timeout_s: float) -> None:
    """An app instance is ready when /readyz says every dependency answered."""
    async with _plain_http(timeout_s) as client:
        resp = await client.get(f"{url}/readyz")
    body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    status = body.get("status")
    if status == "degraded":
        raise Degraded(f"serving without {', '.join(body.get('failed', []))}")
    if status != "ready":
        failed = ", ".join(body.get("failed", [])) or resp.text[:100]
        raise RuntimeError(f"/readyz answered {resp.status_code}: {failed}")


async def http_ok(url: str, timeout_s: float) -> None:
    """The balancer is ready when a request through it reaches an instance."""
    async with _plain_http(timeout_s) as client:
        resp = await client.get(f"{url}/healthz")
    if resp.status_code != 200:
        raise RuntimeError(f"/healthz through the balancer answered {resp.status_code}")


async def etcd_health(url: str, timeout_s: float) -> None:
    async with _plain_http(timeout_s) as client:
        resp = await client.get(f"{url}/health")
    if resp.status_code != 200 or resp.json().get("health") != "true":
        raise RuntimeError(f"/health answered {resp.status_code}: {resp.text[:100]}")


# An instance's /readyz waits up to its own readiness timeout (0.5 s) on a hung dependency.
APP_PROBE_TIMEOUT_S = 2.5


async def probe(kind: str, address: str, url: str, timeout_s: float = 1.0) -> None:
    if kind == "redis":
        await redis_ping(address, timeout_s)
    elif kind == "postgres":
        await postgres_select(url, timeout_s)
    elif kind == "kafka":
        await kafka_metadata(url, timeout_s)
    elif kind == "app":
        await http_ready(url, max(timeout_s, APP_PROBE_TIMEOUT_S))
    elif kind == "caddy":
        await http_ok(url, timeout_s)
    elif kind == "etcd":
        await etcd_health(url, timeout_s)
    else:
        raise ValueError(f"no probe for {kind!r}")


async def external_probe(kind: str, url: str, timeout_s: float = 1.0) -> None:
    if kind == "redis":
        from redis.asyncio import Redis

        client = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        try:
            await client.ping()
        finally:
            await client.aclose()
    else:
        await probe(kind, "", url, timeout_s)


async def try_probe(kind: str, address: str, url: str, timeout_s: float = 1.0) -> tuple[str, str]:
    """("ready", ""), ("degraded", why) or ("unready", why), why being one line."""
    try:
        limit = (APP_PROBE_TIMEOUT_S if kind == "app" else timeout_s) + 0.5
        await asyncio.wait_for(probe(kind, address, url, timeout_s), limit)
        return "ready", ""
    except Degraded as exc:
        return "degraded", str(exc)
    except asyncio.TimeoutError:
        return "unready", "no answer (hung?)"
    except Exception as exc:  # a probe reports any failure as "not ready"
        return "unready", f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
