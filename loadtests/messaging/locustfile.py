"""Locust load for messaging: each simulated user is a seeded user holding one WebSocket.

    SDLAB_SEED_FILE=results/.../seed.json locust -f loadtests/messaging/locustfile.py --host http://127.0.0.1:8081

A user sends into its conversations on a fixed schedule (``SDLAB_RATE`` messages/s over
``SDLAB_USERS`` users; default 1 per user per second) without waiting for acks, and reads
everything on a greenlet of its own (``websocket-client`` under gevent: asyncio ``websockets``
does not run under Locust). Reported request types: ``ws send→ack`` and ``ws send→deliver``,
both timed from the send's *scheduled* instant, and ``ws reconnect``. Locust's scheduling still
adds its own latency at low rates: quote the open-loop generator (``sdlab load messaging --open``).
Acks go to ``SDLAB_ACK_LOG`` and each reader's positions to ``readers.json`` beside it, so the
same checks run after a Locust run.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from pathlib import Path

import gevent
import websocket
from locust import User, constant, events, task

from loadtests.messaging.frames import Position, scheduled_of, text_for
from loadtests.messaging.samples import ACK, DELIVER, RECONNECT
from loadtests.messaging.seed import load_seed

RATE = float(os.environ.get("SDLAB_RATE", "0") or 0)
USERS = int(os.environ.get("SDLAB_USERS", "50"))
PER_USER_RATE = RATE / USERS if RATE > 0 else 1.0
GROUP_SHARE = float(os.environ.get("SDLAB_OPT_GROUP_SHARE", "0.1"))

_seed: dict = {}
_next_user = itertools.count()
_ack_log = None
_reports: list[dict] = []
RUN = f"{random.getrandbits(32):08x}"


def _load() -> dict:
    if not _seed:
        path = os.environ.get("SDLAB_SEED_FILE")
        if not path:
            raise RuntimeError("SDLAB_SEED_FILE is not set: seed first (sdlab load messaging does)")
        _seed.update(load_seed(path))
    return _seed


def _log(record: dict) -> None:
    global _ack_log
    path = os.environ.get("SDLAB_ACK_LOG")
    if path:
        if _ack_log is None:
            _ack_log = open(path, "a", buffering=1)
        _ack_log.write(json.dumps(record) + "\n")


@events.quitting.add_listener
def _write_readers(**_kw) -> None:
    path = os.environ.get("SDLAB_ACK_LOG")
    if path and _reports:
        (Path(path).parent / "readers.json").write_text(json.dumps(_reports))


class ChatUser(User):
    wait_time = constant(0)  # the task sleeps until its next scheduled send

    def on_start(self) -> None:
        seed = _load()
        me = seed["users"][next(_next_user) % len(seed["users"])]
        self.user, self.url = me["user"], f"{seed['ws_url']}?token={me['token']}"
        mine = [c for c in seed["conversations"] if self.user in c["members"]]
        self.pairs = [c for c in mine if c["kind"] == "pair"]
        self.groups = [c for c in mine if c["kind"] == "group"]
        self.positions = {c["id"]: Position(c["last_seq"]) for c in mine}
        self.pending: dict[str, tuple[str, float]] = {}  # client_msg_id -> (frame, scheduled)
        self.reconnects, self.serial = 0, 0
        self.due = time.time() + random.random() / PER_USER_RATE  # spread the users' schedules
        self.ws = None
        self._connect()
        self.reader = gevent.spawn(self._read)

    def on_stop(self) -> None:
        gevent.sleep(2.0)  # let the last acks and deliveries arrive
        self.reader.kill()
        if self.ws is not None:
            self.ws.close()
        _reports.append({"user": self.user, "reconnects": self.reconnects, "slow": False,
                         "unacked": len(self.pending), "positions": {c: p.row() for c, p in self.positions.items()}})

    def _connect(self) -> None:
        self.ws = websocket.create_connection(self.url, timeout=10, enable_multithread=True)
        self.ws.settimeout(None)
        self.ws.send(json.dumps({"type": "resume", "positions": {c: p.last for c, p in self.positions.items()}}))
        for frame, _ in list(self.pending.values()):  # resend what was never acked (the server dedupes)
            self.ws.send(frame)

    def _fire(self, name: str, started: float, failed: str | None = None) -> None:
        self.environment.events.request.fire(
            request_type="WS", name=name, response_time=(time.time() - started) * 1000, response_length=0,
            exception=Exception(failed) if failed else None, context={})

    def _read(self) -> None:
        while True:
            try:
                raw = self.ws.recv()
            except (websocket.WebSocketException, OSError):
                lost = time.time()
                self.reconnects += 1
                while True:
                    try:
                        self._connect()
                        break
                    except (websocket.WebSocketException, OSError):
                        gevent.sleep(0.2)
                self.lost_at = lost
                continue
            self._on_frame(json.loads(raw))

    def _on_frame(self, frame: dict) -> None:
        kind = frame.get("type")
        if kind == "ack":
            entry = self.pending.pop(frame["client_msg_id"], None)
            if entry is not None:
                self._fire(ACK, entry[1])
                _log({"event": "acknowledged", "conversation_id": frame["conversation_id"],
                      "client_msg_id": frame["client_msg_id"], "seq": frame["seq"],
                      "message_id": frame["message_id"], "sender": self.user})
        elif kind == "message":
            position = self.positions.get(frame["conversation_id"])
            if position is not None and position.take(frame["seq"]):
                scheduled = scheduled_of(frame.get("text", ""), RUN)
                if scheduled is not None:
                    self._fire(DELIVER, scheduled)
        elif kind == "error" and "client_msg_id" in frame:
            entry = self.pending.pop(frame["client_msg_id"], None)
            if entry is not None:
                self._fire(ACK, entry[1], failed=frame["code"])
                _log({"event": "rejected", "conversation_id": frame["conversation_id"],
                      "client_msg_id": frame["client_msg_id"], "code": frame["code"], "sender": self.user})
        elif kind == "resumed" and getattr(self, "lost_at", None):
            self._fire(RECONNECT, self.lost_at)
            self.lost_at = None

    @task
    def send(self) -> None:
        """Send when the schedule says, acked or not (open loop per user)."""
        delay = self.due - time.time()
        if delay > 0:
            gevent.sleep(delay)
        scheduled, self.due = self.due, self.due + 1.0 / PER_USER_RATE
        pool = self.groups if self.groups and (not self.pairs or random.random() < GROUP_SHARE) else self.pairs
        if not pool:
            return
        conversation = random.choice(pool)
        self.serial += 1
        client_msg_id = f"{RUN}-{self.user}-{self.serial}"
        frame = json.dumps({"type": "send", "conversation_id": conversation["id"], "client_msg_id": client_msg_id,
                            "text": text_for(RUN, scheduled, self.serial, 100)})
        self.pending[client_msg_id] = (frame, scheduled)
        _log({"event": "attempted", "conversation_id": conversation["id"], "client_msg_id": client_msg_id,
              "sender": self.user})
        try:
            self.ws.send(frame)
        except (websocket.WebSocketException, OSError):
            pass  # the reader reconnects and resends everything pending
