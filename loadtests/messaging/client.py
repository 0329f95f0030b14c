"""One load-test user's WebSocket: sends handed to it on schedule, reads everything, resumes after a loss.

It speaks the protocol of docs/messaging.md as a real client should: every send keeps its
``client_msg_id`` until acked and is sent again after a reconnect (the server acks a resend
without storing it twice); after a reconnect it sends ``resume`` with the last seq it holds of
each conversation. Per conversation it keeps what the reader check needs: where it started,
the last seq received, and how many arrived, twice, or out of order.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from loadtests.messaging.frames import Position, scheduled_of
from loadtests.messaging.samples import ACK, DELIVER, DELIVER_SLOW, RECONNECT, Samples

SLOW_READER_RCVBUF = 4096  # a reader that stops reading must back up to the gateway soon, not after MBs


class UserClient:
    def __init__(self, user: str, token: str, url: str, positions: dict[str, int], samples: Samples,
                 log: Callable[[dict], None], run: str, *, slow: bool = False,
                 on_delivered: Callable[[str], None] = lambda message_id: None) -> None:
        self.user, self.url = user, f"{url}?token={token}"
        self.positions = {conv: Position(seq) for conv, seq in positions.items()}
        self.samples, self.log, self.run_tag = samples, log, run
        self.slow = slow
        self.on_delivered = on_delivered
        self.pending: dict[str, tuple[str, bytes, float]] = {}  # client_msg_id -> (conversation, frame, scheduled)
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.reading = asyncio.Event()
        self.reading.set()
        self.connected = asyncio.Event()
        self.resumed = asyncio.Event()  # the first resume answered: the client is in steady state
        self.stopping = False
        self.reconnects = 0
        self._lost_at: float | None = None
        self._ws: ClientConnection | None = None

    # -- sending ----------------------------------------------------------------------------------

    def send(self, conversation_id: str, client_msg_id: str, text: str, scheduled: float) -> None:
        frame = json.dumps({"type": "send", "conversation_id": conversation_id, "client_msg_id": client_msg_id,
                            "text": text}).encode()
        self.pending[client_msg_id] = (conversation_id, frame, scheduled)
        self.log({"event": "attempted", "conversation_id": conversation_id, "client_msg_id": client_msg_id,
                  "sender": self.user})
        self.queue.put_nowait(client_msg_id)

    async def _write(self, ws: ClientConnection) -> None:
        while True:
            client_msg_id = await self.queue.get()
            entry = self.pending.get(client_msg_id)
            if entry is not None:  # acked meanwhile (a resend of an answered send)
                await ws.send(entry[1], text=True)

    # -- reading ----------------------------------------------------------------------------------

    def _on_frame(self, raw: str | bytes) -> None:
        now = time.time()
        frame = json.loads(raw)
        kind = frame.get("type")
        if kind == "message":
            position = self.positions.get(frame["conversation_id"])
            if position is not None and position.take(frame["seq"]):
                scheduled = scheduled_of(frame.get("text", ""), self.run_tag)
                if scheduled is not None:
                    self.samples.add(DELIVER_SLOW if self.slow else DELIVER, (now - scheduled) * 1000)
                    self.on_delivered(frame["message_id"])
        elif kind == "ack":
            entry = self.pending.pop(frame["client_msg_id"], None)
            if entry is not None:
                self.samples.add(ACK, (now - entry[2]) * 1000)
                self.log({"event": "acknowledged", "conversation_id": frame["conversation_id"],
                          "client_msg_id": frame["client_msg_id"], "seq": frame["seq"],
                          "message_id": frame["message_id"], "sender": self.user})
        elif kind == "error" and "client_msg_id" in frame:
            if self.pending.pop(frame["client_msg_id"], None) is not None:
                self.samples.add(ACK, None, failed=True)
                self.log({"event": "rejected", "conversation_id": frame["conversation_id"],
                          "client_msg_id": frame["client_msg_id"], "code": frame["code"], "sender": self.user})
        elif kind == "resumed":
            self.resumed.set()
            if self._lost_at is not None:
                self.samples.add(RECONNECT, (now - self._lost_at) * 1000)
                self._lost_at = None

    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            if not self.reading.is_set():
                await self.reading.wait()
            self._on_frame(raw)

    # -- the connection's life --------------------------------------------------------------------

    async def _open(self) -> ClientConnection:
        options = {"open_timeout": 10, "close_timeout": 1, "max_queue": 16}
        if self.slow:
            # A small receive window, so that a reader that stops reading fills the gateway's
            # send buffer within seconds (with the kernel's default it could absorb megabytes).
            parts = urlsplit(self.url)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_READER_RCVBUF)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
            options["sock"] = sock
        return await connect(self.url, **options)

    async def run(self) -> None:
        """Connect, resume and serve until ``close()``; reconnect after every loss."""
        backoff = 0.05
        while not self.stopping:
            try:
                ws = await self._open()
            except (OSError, InvalidHandshake, asyncio.TimeoutError):
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, 1.0)
                continue
            backoff = 0.05
            self._ws = ws
            await self._session(ws)
            self._ws = None
            self.connected.clear()
            self.samples.connected -= 1
            if not self.stopping:
                self.reconnects += 1
                # A reader that stopped reading is a frozen app: it notices the loss, and comes
                # back, only when it reads again.
                await self.reading.wait()
                self._lost_at = self._lost_at or time.time()

    async def _session(self, ws: ClientConnection) -> None:
        self.connected.set()
        self.samples.connected += 1
        # Resume from what this client holds, then resend every unacked send (in schedule order).
        try:
            await ws.send(json.dumps({"type": "resume",
                                      "positions": {c: p.last for c, p in self.positions.items()}}))
        except ConnectionClosed:
            return  # closed at once (1013: the gateway could not record the route): reconnect

        self.queue = asyncio.Queue()
        for client_msg_id in self.pending:
            self.queue.put_nowait(client_msg_id)
        tasks = [asyncio.create_task(self._read(ws)), asyncio.create_task(self._write(ws))]
        try:
            # The reader ends when the connection does; the writer fails on a closed connection.
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await ws.close()

    async def close(self) -> None:
        self.stopping = True
        self.reading.set()
        if self._ws is not None:
            await self._ws.close()

    def report(self) -> dict:
        return {"user": self.user, "reconnects": self.reconnects, "slow": self.slow,
                "unacked": len(self.pending), "positions": {c: p.row() for c, p in self.positions.items()}}
