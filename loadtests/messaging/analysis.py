"""Reading a messaging run's summary and timeline, and measuring the gateway's memory per connection."""

from __future__ import annotations

import asyncio
import statistics
import time

import psutil

from loadtests.messaging.openloop import raise_open_files
from loadtests.messaging.samples import DELIVER
from services.lab import retry
from services.lab.analysis import endpoint


def p99(r, name: str = DELIVER) -> float:
    """An endpoint's p99 in a run, 0 when it had no request (for comparisons and charts)."""
    return endpoint(r, name)["p99_ms"] or 0.0


def loss(r) -> dict:
    return r.summary.get("loss", {})


def delivered_per_second(timeline: list[dict], name: str = DELIVER) -> list[tuple[int, int]]:
    return [(r["t"], r.get("by_name", {}).get(name, [0])[0]) for r in timeline]


def longest_silence(timeline: list[dict], after: float, name: str = DELIVER) -> int:
    """The longest run of seconds at or after ``after`` in which nothing was delivered, while
    deliveries happened before and after it (the gap a fault cost)."""
    counts = [n for t, n in delivered_per_second(timeline, name) if t >= after]
    last_busy = max((i for i, n in enumerate(counts) if n), default=-1)
    longest = run = 0
    for n in counts[: last_busy + 1]:
        run = run + 1 if n == 0 else 0
        longest = max(longest, run)
    return longest


def worst_second_p99(timeline: list[dict], start: float, end: float, name: str = DELIVER) -> float | None:
    """The highest per-second delivery p99 between ``start`` and ``end`` (a pause shows here)."""
    values = [r["by_name"][name][4] for r in timeline
              if start <= r["t"] < end and name in r.get("by_name", {}) and r["by_name"][name][4] is not None]
    return max(values) if values else None


def median_p99(timeline: list[dict], start: float, end: float, name: str = DELIVER) -> float | None:
    values = [r["by_name"][name][4] for r in timeline
              if start <= r["t"] < end and name in r.get("by_name", {}) and r["by_name"][name][4] is not None]
    return statistics.median(values) if values else None


def peak_rss(timeline: list[dict], prefix: str) -> float:
    """The highest resident memory (MiB) of the components named ``prefix``*, summed per second."""
    return max((sum(v for k, v in r.get("rss_mib", {}).items() if k.startswith(prefix)) for r in timeline),
               default=0.0)


# --- idle connections ---------------------------------------------------------------------------

async def _hold(base_url: str, gateway_url: str, count: int, users: int, say) -> list:
    """Open ``count`` idle WebSockets to one gateway (as ``users`` lab users); returns the open ones."""
    from websockets.asyncio.client import connect

    async with retry.client(base_url=base_url, timeout=30) as client:
        tokens = [(await client.post("/api/v1/sessions", json={"user": f"idle_{i}"})).raise_for_status().json()["token"]
                  for i in range(users)]
    url = gateway_url.replace("http://", "ws://") + "/ws?token="
    gate = asyncio.Semaphore(200)
    opened: list = []

    async def one(i: int) -> None:
        async with gate:
            try:
                opened.append(await connect(url + tokens[i % users], open_timeout=30, ping_interval=None,
                                            max_queue=4))
            except (OSError, asyncio.TimeoutError) as exc:
                say(f"connection {i} failed: {exc}")

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(count)))
    say(f"opened {len(opened):,} of {count:,} connections in {time.monotonic() - started:.1f} s")
    return opened


async def _close(conns: list) -> None:
    gate = asyncio.Semaphore(500)

    async def one(ws) -> None:
        async with gate:
            await ws.close()

    await asyncio.gather(*(one(ws) for ws in conns), return_exceptions=True)


def rss_per_connection(base_url: str, gateway_url: str, gateway_pid: int, count: int, say=print,
                       users: int = 100, settle_s: float = 3.0) -> dict:
    """The gateway's resident memory before and while holding ``count`` idle connections."""
    raise_open_files()
    process = psutil.Process(gateway_pid)

    async def measure() -> dict:
        before = process.memory_info().rss
        conns = await _hold(base_url, gateway_url, count, users, say)
        await asyncio.sleep(settle_s)
        held = process.memory_info().rss
        await _close(conns)
        return {"connections_held": len(conns), "rss_before_mib": round(before / 2**20, 1),
                "rss_held_mib": round(held / 2**20, 1),
                "kib_per_idle_connection": round((held - before) / 1024 / max(len(conns), 1), 1)}

    return asyncio.run(measure())
