"""The loss check (Jepsen's set checker, simplified) for the shortener.

Every create the load generator attempted and every one that got a 201 is in ``acks.jsonl``.
After the run, every acknowledged link is read back through the API:
lost = acknowledged and not readable (must be 0). A create that timed out may still exist;
it was never acknowledged, so it is not counted either way.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx


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


def verify(host: str, out_dir: Path) -> dict:
    attempted, acknowledged = read_acks(out_dir / "acks.jsonl")
    lost, unreadable = asyncio.run(_read_back(host, acknowledged)) if acknowledged else ([], [])
    return {"attempted": attempted, "acknowledged": len(acknowledged), "lost": len(lost),
            "unreadable": len(unreadable), "lost_codes": lost[:20]}
