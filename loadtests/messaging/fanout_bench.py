"""Fan-out from one gateway into a 1,000-member group, against a bare ``websockets.broadcast()`` server.

Both are offered the same message rate, more than either can deliver on 2 cores, and both are
measured on the server side: frames written to sockets per second (the gateway's
``ws_deliveries_total``; the bare server counts its own). The readers (1,000 sockets held by
the benchmark, reading without parsing) are slower than either server on the same machine, so
counting on their side would measure them; the kernel's socket buffers absorb the difference
for the few seconds a run lasts. The bare server (``python -m loadtests.messaging.fanout_bench
--port P --members N --rate R --seconds S``) prints ``{"deliveries_per_s": ...}`` when done.
The ratio says what the design's per-recipient work (delivery cursor, send-buffer bound) and
its path (database, relay, Kafka) cost against the library's own loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from websockets.asyncio.client import connect
from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosed

FRAME = '{"type":"message","text":"' + "x" * 170 + '"}'


async def read_all(urls: list[str], ready: asyncio.Event, idle_s: float = 3.0) -> None:
    """Hold one socket per url (``ready`` once all are open) and read every frame unparsed; a
    socket is done when no frame came for ``idle_s`` after its first."""
    sockets = []
    for i in range(0, len(urls), 200):
        sockets += await asyncio.gather(*(connect(u, open_timeout=30, ping_interval=None, max_size=None)
                                          for u in urls[i:i + 200]))

    async def reader(ws) -> None:
        got_any = False
        try:
            while True:
                await asyncio.wait_for(ws.recv(decode=False), idle_s if got_any else 120)
                got_any = True
        except (asyncio.TimeoutError, ConnectionClosed):
            pass

    readers = [asyncio.ensure_future(reader(ws)) for ws in sockets]
    ready.set()
    await asyncio.gather(*readers)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


async def serve_broadcast(port: int, members: int, rate: float, seconds: float) -> None:
    clients: set = set()
    full = asyncio.Event()

    async def handler(ws) -> None:
        clients.add(ws)
        if len(clients) >= members:
            full.set()
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None):
        await full.wait()
        await asyncio.sleep(1.0)  # the readers start reading
        start, frames = time.monotonic(), 0
        for k in range(int(rate * seconds)):
            delay = start + k / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            broadcast(clients, FRAME)
            frames += len(clients)
        print(json.dumps({"deliveries_per_s": frames / (time.monotonic() - start)}), flush=True)
        await asyncio.sleep(3.0)  # let the last frames leave before closing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    asyncio.run(serve_broadcast(args.port, args.members, args.rate, args.seconds))


if __name__ == "__main__":
    main()
