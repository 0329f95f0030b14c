"""Create links to load-test the redirect path against.

    python -m loadtests.shortener.seed --host http://127.0.0.1:8080 --count 2000 --out results/seed.json

Each request comes from a random address of the benchmarking range 198.18.0.0/15, sent in
X-Forwarded-For (the load balancer passes it on), so the per-client rate limiter sees many
clients instead of throttling one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

from services.clients.postgres import PgPool
from services.lab import retry
from services.settings import split_urls
from shortener import domain
from shortener.adapters.sql import SqlLinkRepository

BENCH_NET_START = 0xC6120000  # 198.18.0.0
BENCH_NET_SIZE = 1 << 17  # /15
MAX_TRIES = 10  # salts tried for a code taken by another URL
# A create is tried for up to 10 s: through a 429 too (the limiter's Retry-After), should the
# random client addresses collide on a bucket.
CREATE_RETRY = retry.RetryPolicy(deadline_s=10.0, first_wait_s=0.05, statuses=retry.TRANSIENT_STATUSES | {429})
MIN_CREATED_RATIO = 0.95


def random_client_address() -> str:
    n = BENCH_NET_START + random.randrange(BENCH_NET_SIZE)
    return f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


async def _create(client: httpx.AsyncClient, url: str) -> dict | None:
    """One link, or None when the shortener refused it or kept failing (counted, not fatal). The
    client retries a reset, a timeout, a 502/503 and the limiter's 429 (after its Retry-After): the
    URL dedup makes a retried create safe."""
    try:
        response = await client.post("/api/v1/links", json={"url": url},
                                     headers={"X-Forwarded-For": random_client_address()})
    except retry.StackCallFailed:
        return None
    return {"code": response.json()["code"], "url": url} if response.status_code in (200, 201) else None


async def seed(host: str, count: int, concurrency: int = 32, progress=print) -> list[dict]:
    """Create ``count`` links on ``host``; returns ``[{"code", "url"}, ...]`` of those created."""
    links: list[dict] = []
    failed = 0
    indexes = iter(range(count))
    started = last_report = time.monotonic()

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failed, last_report
        for i in indexes:
            link = await _create(client, f"https://example.com/seed/{i}/{secrets.token_hex(8)}")
            if link is None:
                failed += 1
            else:
                links.append(link)
            now = time.monotonic()
            if progress and now - last_report >= 1.0:
                last_report = now
                progress(f"seeded {len(links)}/{count} ({len(links) / (now - started):.0f}/s)")

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with retry.client(CREATE_RETRY, limits=limits, base_url=host, timeout=10.0) as client:
        await asyncio.gather(*(worker(client) for _ in range(max(1, min(concurrency, count)))))
    if progress:
        elapsed = time.monotonic() - started
        progress(f"seeded {len(links)}/{count} in {elapsed:.1f}s ({len(links) / max(elapsed, 1e-9):.0f}/s), "
                 f"{failed} failed")
    return links


async def warm(host: str, links: list[dict], concurrency: int = 32) -> int:
    """Redirect every seeded link once, so that each one sits in the caches; returns how many answered 302."""
    sem = asyncio.Semaphore(concurrency)
    ok = 0
    async with retry.client(base_url=host, timeout=10) as client:

        async def one(code: str) -> None:
            nonlocal ok
            async with sem:
                if (await client.get(f"/{code}")).status_code == 302:
                    ok += 1

        await asyncio.gather(*(one(link["code"]) for link in links))
    return ok


async def import_links(repo, count: int, chunk: int = 500) -> list[dict]:
    """Create ``count`` links straight in the link store, in bulk: the lab's seeding path.

    Creating 2,000 links one request at a time costs ~10 s of this machine's two cores (each
    create is a FastAPI route, a rate-limit script, an insert and an invalidation). The load
    runs that follow need the links to exist, not to be created through the API: they are
    rows like any other, made with the shortener's own hash codes, digests and repository, and
    reach the caches the way a user's links do, on their first redirect. A code taken by
    another URL is retried with the next salt, as the service does."""
    pending = [f"https://example.com/seed/{i}/{secrets.token_hex(8)}" for i in range(count)]
    created: list[dict] = []
    for salt in range(MAX_TRIES):
        if not pending:
            break
        now = datetime.now(timezone.utc)
        rows, first_with_code = [], {}
        for url in pending:
            link = domain.Link(domain.hash_code(url, salt), url, now)
            first_with_code.setdefault(link.code, url)
            rows.append((link, domain.url_digest(url), domain.token_digest(domain.new_delete_token())))
        inserted: set[str] = set()
        for start in range(0, len(rows), chunk):
            inserted |= await repo.insert_many(rows[start:start + chunk])
        done = [link for link, *_ in rows if link.code in inserted and first_with_code[link.code] == link.url]
        created += [{"code": link.code, "url": link.url} for link in done]
        finished = {link.url for link in done}
        pending = [url for url in pending if url not in finished]
    return created


def link_store_url(state) -> str:
    """The link store the running lab's instances use (the first of ``SHORTENER_DATABASE_URLS``)."""
    instance = state.components["shortener-1"]
    return split_urls(instance.env["SHORTENER_DATABASE_URLS"])[0]


async def seed_direct(database_url: str, count: int) -> list[dict]:
    """:func:`import_links` into the PostgreSQL server at ``database_url``."""
    db = PgPool(database_url, timeout_s=30.0, max_size=2)
    await db.start()
    try:
        return await import_links(SqlLinkRepository(db), count)
    finally:
        await db.stop()


def load_seed(path: str | Path) -> list[dict]:
    """The links of a seed file written by this module."""
    links = json.loads(Path(path).read_text())["links"]
    if not links:
        raise ValueError(f"{path}: the seed file has no links")
    return links


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.shortener.seed", description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True, help="base URL of the shortener, e.g. http://127.0.0.1:8080")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--out", required=True, type=Path, help="JSON file to write the links to")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    if args.count < 1 or args.concurrency < 1:
        parser.error("--count and --concurrency must be at least 1")

    host = args.host.rstrip("/")
    links = asyncio.run(seed(host, args.count, args.concurrency))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"host": host, "created_at": datetime.now(timezone.utc).isoformat(),
                                    "links": links}))
    if len(links) < MIN_CREATED_RATIO * args.count:
        print(f"seed failed: only {len(links)} of {args.count} links were created", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
