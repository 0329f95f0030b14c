"""WebSocket entrypoint: one client connection, its frames, and delivery to this gateway's sockets.

Each connection's outbound queue is its socket's write buffer, capped at
``send_buffer_bytes``: frames are written without waiting (as ``websockets.broadcast`` does),
and a connection whose buffer overflows is a reader that stopped reading; it is closed with
4008 and resumes when it comes back. Nothing is awaited per recipient, so one slow reader
never slows another.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import orjson
from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from messaging.domain import (
    MarkRead,
    Resume,
    SendMessage,
    error_frame,
    message_frame,
    parse_frame,
    resumed_frame,
)
from messaging.metrics import GatewayStats
from messaging.resume import DeliveryCursor, Verdict
from messaging.service import MessagingService
from messaging.ports import StoreUnavailable
from services.errors import LabError, Unavailable
from services.logging import get_logger

log = get_logger(__name__)
SLOW_CONSUMER = 4008  # documented in docs/messaging.md: reconnect and resume
SERVICE_RESTART = 1012  # the gateway lost its routes (presumed dead): reconnect and resume
TRY_AGAIN_LATER = 1013  # the route to a new connection could not be recorded: reconnect shortly
MAX_REPLAYS = 3


class Connection:
    __slots__ = ("ws", "user", "cursor", "closing", "gaps")

    def __init__(self, ws: ServerConnection, user: str) -> None:
        self.ws = ws
        self.user = user
        self.cursor = DeliveryCursor()
        self.closing = False
        self.gaps: set[str] = set()  # conversations whose gap waits to fill live (see Hub.repair)


class Hub:
    """This gateway's connections by user, and the delivery of frames to them."""

    def __init__(self, service: MessagingService, stats: GatewayStats, buffer_bytes: int, lag_seconds=None) -> None:
        self.service = service
        # Replays wait their turn here rather than at the database pool, where a reconnect storm
        # would time them out (and close them, and start the storm again). Sends keep the rest.
        self.replays = asyncio.Semaphore(service.settings.replay_concurrency)
        self.lag_seconds = lag_seconds  # a histogram's child, or None (unit tests)
        self.stats = stats
        self.buffer_bytes = buffer_bytes
        self.by_user: dict[str, set[Connection]] = {}
        self._tasks: set[asyncio.Task] = set()

    def add(self, conn: Connection) -> bool:
        """True when it is the user's first connection on this gateway."""
        conns = self.by_user.setdefault(conn.user, set())
        conns.add(conn)
        self.stats.connections += 1
        self.stats.connections_opened += 1
        return len(conns) == 1

    def remove(self, conn: Connection) -> bool:
        """True when it was the user's last connection on this gateway."""
        conns = self.by_user.get(conn.user)
        if conns is None or conn not in conns:
            return False
        conns.discard(conn)
        self.stats.connections -= 1
        if not conns:
            del self.by_user[conn.user]
            return True
        return False

    def start(self, conn: Connection, resuming: set[str] | frozenset[str] = frozenset()) -> None:
        """The client spoke (or kept quiet past the grace): deliver what waited for it."""
        for data in conn.cursor.start(resuming):
            self.push(conn, data)

    async def start_after(self, conn: Connection, grace_s: float) -> None:
        await asyncio.sleep(grace_s)
        if conn.cursor.awaiting:
            self.start(conn)

    def close(self, conn: Connection, code: int, reason: str) -> None:
        """Close without waiting; nothing more is pushed to the connection meanwhile."""
        if not conn.closing:
            conn.closing = True
            self.spawn(conn.ws.close(code, reason))

    def close_all(self) -> None:
        """Close every connection so its client reconnects and resumes (see Heartbeat)."""
        for conns in list(self.by_user.values()):
            for conn in list(conns):
                self.close(conn, SERVICE_RESTART, "gateway presumed dead; reconnect and resume")

    def push(self, conn: Connection, data: bytes) -> None:
        self.push_many((conn,), data)

    def push_many(self, conns, data: bytes) -> None:
        """One frame to many connections in one ``broadcast`` (it encodes the frame once); those
        whose buffer passed the bound are cut instead."""
        ready = []
        for conn in conns:
            ws = conn.ws
            if conn.closing or ws.protocol.state is not State.OPEN:
                continue
            if ws.transport.get_write_buffer_size() > self.buffer_bytes:
                self.stats.slow_disconnects += 1
                self.close(conn, SLOW_CONSUMER, "slow consumer: send buffer full; reconnect and resume")
                continue
            ready.append(ws)
        if ready:
            broadcast(ready, data, text=True)
            self.stats.deliveries += len(ready)

    async def _send_waiting(self, conn: Connection, data: bytes) -> None:
        """A replayed frame: waits while the socket's buffer drains. A replay sends a backlog at once,
        and pushed like live frames it would trip the slow-reader bound of a client that is reading,
        cut it, and replay again on its return (measured: ten cuts per reader, none progressing)."""
        if conn.closing or conn.ws.protocol.state is not State.OPEN:
            return
        try:
            await conn.ws.send(data, text=True)
        except ConnectionClosed:
            return
        self.stats.deliveries += 1

    def send_frame(self, conn: Connection, frame: dict) -> None:
        self.push(conn, orjson.dumps(frame))

    def refuse(self, conn: Connection, exc: LabError, answering: SendMessage | None = None) -> None:
        """The one mapping from an error to its frame: code, message and, when it says to wait, how long."""
        self.stats.errors[exc.code] += 1
        self.send_frame(conn, error_frame(exc.code, exc.message, getattr(exc, "retry_after_s", None), answering))

    def deliver(self, users: list[str], frame: dict) -> None:
        """A record from this gateway's delivery topic: the frame to each user's connections here."""
        self.stats.records += 1
        data = orjson.dumps(frame)
        if frame.get("type") != "message":
            self.push_many([conn for user in users for conn in self.by_user.get(user, ())], data)
            return
        conversation_id, seq = frame["conversation_id"], frame["seq"]
        if self.lag_seconds is not None:
            self.lag_seconds.observe(time.time() - datetime.fromisoformat(frame["sent_at"]).timestamp())
        sending = []
        for user in users:
            for conn in self.by_user.get(user, ()):
                verdict = conn.cursor.offer(conversation_id, seq, data)
                if verdict is Verdict.SEND:
                    sending.append(conn)
                elif verdict is Verdict.DROP:
                    self.stats.duplicates_dropped += 1
                elif verdict is Verdict.REPAIR:
                    conn.gaps.add(conversation_id)
                    self.spawn(self.repair(conn, conversation_id))
                elif conversation_id in conn.gaps:  # held behind a gap: did this one fill it?
                    ready, gap = conn.cursor.end_replay(conversation_id)
                    if not gap:
                        conn.gaps.discard(conversation_id)
                    for held in ready:
                        self.push(conn, held)
        self.push_many(sending, data)

    async def repair(self, conn: Connection, conversation_id: str) -> None:
        """A gap before a live message: most are messages still on their way by another path (one
        gateway delivers its own members from memory, another's arrive through Kafka a few
        milliseconds later), so the gap gets ``gap_grace_s`` to fill from the live stream, held in
        order meanwhile; only what is still missing then is read from the database."""
        await asyncio.sleep(self.service.settings.gap_grace_s)
        if conn.closing or conversation_id not in conn.gaps:
            return  # a resume's replay took the conversation over meanwhile
        conn.gaps.discard(conversation_id)
        ready, gap = conn.cursor.end_replay(conversation_id)
        for data in ready:
            self.push(conn, data)
        if gap:
            self.stats.gap_repairs += 1
            await self.replay(conn, conversation_id, conn.cursor.last[conversation_id], begun=True)

    async def replay(self, conn: Connection, conversation_id: str, after_seq: int, *, begun: bool = False) -> None:
        """Send what the database has after ``after_seq``, then what arrived live meanwhile, once each, in order."""
        cursor = conn.cursor
        conn.gaps.discard(conversation_id)  # this replay fills what a gap waited for
        backfill_to = None if begun else cursor.backfill(conversation_id, after_seq)
        after = cursor.last.get(conversation_id, after_seq) if begun else cursor.begin_replay(conversation_id, after_seq)
        try:
            if backfill_to is not None:
                await self._send_history(conn, conversation_id, after_seq, upto=backfill_to)
            for _ in range(MAX_REPLAYS):
                await self._send_history(conn, conversation_id, after)
                held, gap = cursor.end_replay(conversation_id)
                for data in held:
                    self.push(conn, data)
                if not gap:
                    return
                after = cursor.begin_replay(conversation_id, cursor.last[conversation_id])
        except StoreUnavailable as exc:
            # Pushing what arrived live would skip the seqs the database could not give (out of
            # order): drop them and close; the client reconnects and resumes from what it holds.
            cursor.held.pop(conversation_id, None)
            log.warning("replay_failed", user=conn.user, error=str(exc)[:200])
            self.close(conn, TRY_AGAIN_LATER, "history unavailable; reconnect and resume")
        finally:
            # Whatever happened, nothing stays held: the client's next resume fills what is missing.
            for data in cursor.give_up_gap(conversation_id):
                self.push(conn, data)

    async def _send_history(self, conn: Connection, conversation_id: str, after: int, upto: int | None = None) -> None:
        """Stored messages after ``after``; with ``upto``, exactly (after, upto]: a backfill the
        cursor does not track, since everything past it was sent already."""
        page_size = self.service.settings.history_page
        while True:
            page = await self.service.messages.history(conversation_id, after, page_size)
            for message in page:
                if upto is not None:
                    if message.seq > upto:
                        return
                elif not conn.cursor.replayed(conversation_id, message.seq):
                    continue
                await self._send_waiting(conn, orjson.dumps(message_frame(message)))
                self.stats.replayed += 1
            if len(page) < page_size:
                return
            after = page[-1].seq

    def spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("gateway_task_failed", error=repr(task.exception())[:200])


async def serve_connection(hub: Hub, conn: Connection, ack_seconds) -> None:
    """Read the client's frames until it goes; each gets its answer or an error frame."""
    service = hub.service
    try:
        async for raw in conn.ws:
            started = time.perf_counter()
            command = None
            try:
                try:
                    command = parse_frame(raw)
                finally:
                    if conn.cursor.awaiting:
                        hub.start(conn, set(command.positions) if isinstance(command, Resume) else frozenset())
                if isinstance(command, SendMessage):
                    hub.stats.frames_in["send"] += 1
                    hub.send_frame(conn, await service.send(conn.user, command))
                    ack_seconds.observe(time.perf_counter() - started)
                elif isinstance(command, Resume):
                    hub.stats.frames_in["resume"] += 1
                    await resume(hub, conn, command)
                elif isinstance(command, MarkRead):
                    hub.stats.frames_in["read"] += 1
                    await service.read(conn.user, command)
            except LabError as exc:
                hub.refuse(conn, exc, command if isinstance(command, SendMessage) else None)
            except ConnectionClosed:
                raise
            except Exception:  # a bug must cost one frame its answer, never the connection
                log.exception("frame_failed", user=conn.user)
                hub.refuse(conn, LabError("internal error; see the gateway log", code="internal_error"),
                           command if isinstance(command, SendMessage) else None)
    except ConnectionClosed:
        pass


async def resume(hub: Hub, conn: Connection, command: Resume) -> None:
    for conversation_id, last_seq in command.positions.items():
        async with hub.replays:
            try:
                await hub.service.memberships.check(conn.user, conversation_id)
            except LabError as exc:
                if isinstance(exc, StoreUnavailable):  # what a resume lacks is the history
                    exc = Unavailable(f"history is unavailable ({exc}); resume again", code="unavailable")
                hub.refuse(conn, exc)
                # Not replayed: what was held for it goes out now, or it would wait forever.
                for data in conn.cursor.give_up_gap(conversation_id):
                    hub.push(conn, data)
                continue
            await hub.replay(conn, conversation_id, last_seq)
    positions = {c: conn.cursor.last.get(c, p) for c, p in command.positions.items()}
    hub.send_frame(conn, resumed_frame(positions))
