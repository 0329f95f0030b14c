"""Seeding for messaging's load tests: users (a lab login each) and their conversations, through Caddy.

Users ``u<run>_<i>``; conversations: a pair for every two users, and one group per size named in
``group_sizes`` (default 10 and 100, those that fit; a group takes ``size`` consecutive users).
The seed record (``seed.json``) holds every token, so the generators log in no one again:

    {"host", "ws_url", "run", "users": [{"user", "token"}],
     "conversations": [{"id", "members", "kind": "pair"|"group", "last_seq"}], "options": {...}}
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx

from services.lab import retry

CONCURRENCY = 32
DEFAULT_GROUP_SIZES = (10, 100)


def group_sizes(raw: str | None) -> tuple[int, ...]:
    if raw is None or not raw.strip():
        return DEFAULT_GROUP_SIZES
    sizes = tuple(int(x) for x in raw.split(",") if x.strip())
    if any(s < 2 or s > 1000 for s in sizes):
        raise ValueError(f"group sizes must be 2-1000 members, got {raw!r}")
    return sizes


def layout(users: list[str], sizes: tuple[int, ...]) -> list[tuple[str, list[str]]]:
    """(kind, members) of each conversation to create: pairs of neighbours, then the groups."""
    found = [("pair", users[i:i + 2]) for i in range(0, len(users) - 1, 2)]
    start = 0
    for size in sizes:
        if size > len(users):
            raise ValueError(f"a group of {size} needs at least {size} users; seed more (--seed {size})")
        found.append(("group", [users[(start + j) % len(users)] for j in range(size)]))
        start += size
    return found


def ws_url(base_url: str) -> str:
    """The WebSocket endpoint behind ``base_url`` (wss:// behind https://)."""
    scheme, sep, rest = base_url.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}{sep}{rest}/ws"


async def _gather_limited(coros) -> list:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def run(coro):
        async with gate:
            return await coro

    return await asyncio.gather(*(run(c) for c in coros))


async def _login(client: httpx.AsyncClient, user: str) -> dict:
    response = await client.post("/api/v1/sessions", json={"user": user})
    response.raise_for_status()
    return response.json()


async def _create(client: httpx.AsyncClient, token: str, kind: str, members: list[str]) -> dict:
    response = await client.post("/api/v1/conversations", json={"members": members[1:], "title": f"load {kind}"},
                                 headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    body = response.json()
    return {"id": body["id"], "members": body["members"], "kind": kind, "last_seq": body.get("last_seq", 0)}


async def seed(base_url: str, users: int, sizes: tuple[int, ...]) -> dict:
    run = uuid.uuid4().hex[:6]
    names = [f"u{run}_{i}" for i in range(users)]
    async with retry.client(base_url=base_url, timeout=30) as client:
        sessions = await _gather_limited(_login(client, name) for name in names)
        tokens = {s["user"]: s["token"] for s in sessions}
        conversations = await _gather_limited(_create(client, tokens[members[0]], kind, members)
                                              for kind, members in layout(names, sizes))
    return {"host": base_url, "ws_url": ws_url(base_url), "run": run,
            "users": sessions, "conversations": conversations}


async def last_seqs(base_url: str, record: dict) -> dict[str, int]:
    """Each conversation's last seq now, read by one member of each (the first, who created it)."""
    tokens = {u["user"]: u["token"] for u in record["users"]}
    creators = sorted({c["members"][0] for c in record["conversations"]})
    async with retry.client(base_url=base_url, timeout=30) as client:
        async def mine(user: str) -> dict[str, int]:
            response = await client.get("/api/v1/conversations", params={"limit": 500},
                                        headers={"Authorization": f"Bearer {tokens[user]}"})
            response.raise_for_status()
            return {c["id"]: c["last_seq"] for c in response.json()["items"]}

        found: dict[str, int] = {}
        for part in await _gather_limited(mine(u) for u in creators):
            found.update(part)
    return found


async def refresh(base_url: str, record: dict) -> dict:
    """The record of the run before on the same stack, with every conversation's last seq read again."""
    seqs = await last_seqs(base_url, record)
    return {**record, "conversations": [{**c, "last_seq": seqs.get(c["id"], c["last_seq"])}
                                        for c in record["conversations"]]}


def load_seed(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())
