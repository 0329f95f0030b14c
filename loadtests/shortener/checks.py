"""The loss check (Jepsen's set checker, simplified) for the shortener.

Every create the load generator attempted and every one that got a 201 is in ``acks.jsonl``.
After the run, every acknowledged link is read back through the API:
lost = acknowledged and not readable (must be 0). A create that timed out may still exist;
it was never acknowledged, so it is not counted either way.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx

from services.lab import retry


def read_acks(path: Path) -> tuple[int, dict[str, str]]:
    attempted, acknowledged = 0, {}
    if not path.exists():
        return 0, {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        if event["event"] == "attempted":
            attempted += 1
        elif event["event"] == "acknowledged":
            acknowledged[event["code"]] = event["url"]
    return attempted, acknowledged


async def _read_back(host: str, acknowledged: dict[str, str], concurrency: int = 32) -> tuple[list[str], list[str]]:
    """(lost, unreadable): lost = 404 or a different URL; unreadable = no answer after retries."""
    lost: list[str] = []
    unreadable: list[str] = []
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=host, timeout=5) as client:

        async def one(code: str, url: str) -> None:
            async with sem:
                for _ in range(10):
                    try:
                        resp = await client.get(f"/api/v1/links/{code}")
                    except httpx.HTTPError:
                        await asyncio.sleep(0.5)
                        continue
                    if resp.status_code == 200:
                        if resp.json()["url"] != url:
                            lost.append(code)
                        return
                    if resp.status_code == 404:
                        lost.append(code)
                        return
                    await asyncio.sleep(0.5)  # 503 while a part recovers: ask again
                unreadable.append(code)

        await asyncio.gather(*(one(c, u) for c, u in acknowledged.items()))
    return lost, unreadable


class ClicksUnreadable(Exception):
    """A link's count could not be read (an answer other than 200 after the retries)."""


async def clicks_of(host: str, codes: list[str], concurrency: int = 32) -> int:
    """The clicks counted for ``codes``. A count that cannot be read raises instead of counting as
    0: a busy or throttled instance answering 503 is not a lost click."""
    sem = asyncio.Semaphore(concurrency)
    async with retry.client(base_url=host, timeout=5) as client:

        async def one(code: str) -> int:
            async with sem:
                resp = await client.get(f"/api/v1/links/{code}")
                if resp.status_code != 200:
                    raise ClicksUnreadable(f"GET /api/v1/links/{code} answered {resp.status_code}")
                return resp.json()["clicks"]

        return sum(await asyncio.gather(*(one(c) for c in codes)))


def count_clicks(host: str, seed_file: Path, redirects_ok: int, quiet_s: float = 15.0, cap_s: float = 120.0) -> dict:
    """Clicks PostgreSQL counted for the seeded links against redirects the load generator got.

    The aggregator drains Kafka behind the load, and on a busy machine it can be far behind, so
    this waits as long as the count keeps moving: it stops once the count reached the redirects
    and held still for one reading, or once it has not moved for ``quiet_s``, or at ``cap_s``.
    Warm-up redirects before the run count as clicks too; they are subtracted via ``baseline``.
    """
    seeded = json.loads(seed_file.read_text())
    codes = [link["code"] for link in seeded["links"]]
    baseline = seeded.get("clicks_before", 0)
    start = time.monotonic()
    moved_at, last, counted, unreadable = start, -1, 0, ""
    while time.monotonic() - start < cap_s and time.monotonic() - moved_at < quiet_s:
        try:
            counted, unreadable = asyncio.run(clicks_of(host, codes)) - baseline, ""
        except (ClicksUnreadable, retry.STACK_ERRORS) as exc:
            unreadable = str(exc)  # read again: the last complete reading stands meanwhile
        else:
            if counted == last and counted >= redirects_ok:
                break
            if counted != last:
                moved_at = time.monotonic()
            last = counted
        time.sleep(2.0)
    return {"redirects_ok": redirects_ok, "clicks_counted": counted, "clicks_missing": redirects_ok - counted,
            "settle_s": round(time.monotonic() - start, 1), **({"unreadable": unreadable} if unreadable else {})}


def verify(host: str, out_dir: Path, redirects_ok: int | None = None) -> dict:
    attempted, acknowledged = read_acks(out_dir / "acks.jsonl")
    lost, unreadable = asyncio.run(_read_back(host, acknowledged)) if acknowledged else ([], [])
    result = {"attempted": attempted, "acknowledged": len(acknowledged), "lost": len(lost),
              "unreadable": len(unreadable), "lost_codes": lost[:20]}
    if redirects_ok is not None:
        result["clicks"] = count_clicks(host, out_dir / "seed.json", redirects_ok)
    return result
