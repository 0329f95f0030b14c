"""The gateway's one mapping from an error to its frame, on both paths that refuse: a resume and a frame."""

from __future__ import annotations

from types import SimpleNamespace

from messaging.domain import Resume
from messaging.metrics import GatewayStats
from messaging.ports import StoreUnavailable
from messaging.ws import Connection, Hub, resume
from services.errors import Forbidden


class RecordingHub(Hub):
    def __init__(self, service) -> None:
        super().__init__(service, GatewayStats(), buffer_bytes=1 << 20)
        self.frames: list[dict] = []

    def send_frame(self, conn, frame: dict) -> None:
        self.frames.append(frame)


class Memberships:
    def __init__(self, failures: dict[str, Exception]) -> None:
        self.failures = failures

    async def check(self, user: str, conversation_id: str) -> None:
        raise self.failures[conversation_id]


async def test_a_resume_refused_by_a_down_store_or_a_rule_gets_one_error_frame_each():
    service = SimpleNamespace(settings=SimpleNamespace(replay_concurrency=1),
                              memberships=Memberships({"c1": StoreUnavailable("timed out"),
                                                       "c2": Forbidden("not a member", code="forbidden")}))
    hub = RecordingHub(service)
    conn = Connection(ws=None, user="ann")
    await resume(hub, conn, Resume(positions={"c1": 3, "c2": 0}))
    down, refused, resumed = hub.frames
    assert down == {"type": "error", "code": "unavailable", "retry_after": 1.0,
                    "message": "history is unavailable (timed out); resume again"}
    assert refused == {"type": "error", "code": "forbidden", "message": "not a member"}
    assert resumed["type"] == "resumed"
    assert dict(hub.stats.errors) == {"unavailable": 1, "forbidden": 1}
