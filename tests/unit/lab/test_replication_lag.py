"""Replication lag in bytes and seconds (``sdlab --replicas N``): the one reading from Patroni's REST API,
and how ``sdlab status``, ``sdlab top`` and a run's timeline carry it (Patroni and the stack faked)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone

import httpx
from rich.console import Console

from services.lab import top
from services.lab.replication.status import (
    LagSampler,
    MemberLag,
    lag_seconds,
    read,
    replica_lags,
)
from services.lab.state import ComponentStatus, LabState, RunningComponent
from services.lab.ui import lag_text

NOW = datetime(2026, 12, 7, 18, 0, 0, tzinfo=timezone.utc)


def _xlog(received: int, replayed: int, replayed_at: datetime | None) -> dict:
    # As Patroni's /patroni writes it: json.dumps(default=str) turns the timestamp into str(datetime).
    return json.loads(json.dumps({"state": "running", "role": "replica", "xlog": {
        "received_location": received, "replayed_location": replayed,
        "replayed_timestamp": replayed_at, "paused": False}}, default=str))


def test_a_replica_that_replayed_all_it_received_has_no_lag_however_old_its_last_commit():
    assert lag_seconds(_xlog(5000, 5000, NOW - timedelta(hours=1)), NOW) == 0.0


def test_a_replica_behind_lags_by_the_age_of_its_last_replayed_commit():
    assert lag_seconds(_xlog(9000, 5000, NOW - timedelta(seconds=2.5)), NOW) == 2.5


def test_unknown_seconds_are_none_not_zero():
    assert lag_seconds({"state": "running", "role": "primary", "xlog": {"location": 123}}, NOW) is None
    assert lag_seconds({"state": "stopped", "role": "replica"}, NOW) is None
    assert lag_seconds(_xlog(9000, 5000, None), NOW) is None  # behind, but nothing replayed since it started


def _patroni(behind_s: float) -> httpx.MockTransport:
    """Shard 0 with postgres-0 leading and postgres-0-1 behind by 8 KiB, its last replayed commit ``behind_s`` old."""
    cluster = {"members": [
        {"name": "postgres-0", "role": "leader", "state": "running", "api_url": "http://127.0.0.1:8008/patroni"},
        {"name": "postgres-0-1", "role": "sync_standby", "state": "streaming", "lag": 8192,
         "api_url": "http://127.0.0.1:8018/patroni"},
    ]}
    asked = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        if request.url.path == "/cluster":
            return httpx.Response(200, json=cluster)
        if request.url.port == 8018:
            at = datetime.now(timezone.utc) - timedelta(seconds=behind_s)
            return httpx.Response(200, text=json.dumps(_xlog(20000, 11808, at), default=str))
        return httpx.Response(200, json={"state": "running", "role": "primary", "xlog": {"location": 20000}})

    transport = httpx.MockTransport(answer)
    transport.asked = asked
    return transport


def test_one_reading_gives_roles_bytes_and_seconds_asking_only_replicas_for_seconds():
    transport = _patroni(behind_s=3.0)
    found = asyncio.run(read(["127.0.0.1:8008", "127.0.0.1:8018"], transport=transport))
    assert found["postgres-0"] == MemberLag("primary", None, None)
    replica = found["postgres-0-1"]
    assert (replica.role, replica.lag_bytes) == ("replica (sync)", 8192)
    assert 3.0 <= replica.lag_s < 5.0
    assert [u for u in transport.asked if u.endswith("/patroni")] == ["http://127.0.0.1:8018/patroni"]


def test_members_that_do_not_answer_give_nothing():
    down = httpx.MockTransport(lambda request: (_ for _ in ()).throw(httpx.ConnectError("refused")))
    assert asyncio.run(read(["127.0.0.1:8008"], transport=down)) == {}
    assert asyncio.run(read([])) == {}


def test_a_timeline_second_lists_replicas_only():
    found = {"postgres-0": MemberLag("primary"), "postgres-0-1": MemberLag("replica", 0, 0.0),
             "postgres-1-1": MemberLag("replica (sync)", 4096, 0.4)}
    assert replica_lags(found) == {"postgres-0-1": {"role": "replica", "lag_bytes": 0, "lag_s": 0.0},
                                   "postgres-1-1": {"role": "replica (sync)", "lag_bytes": 4096, "lag_s": 0.4}}


def _member(name: str, rest_port: int | None) -> RunningComponent:
    env = {} if rest_port is None else {
        "PATRONI_CONFIGURATION": json.dumps({"restapi": {"listen": f"127.0.0.1:{rest_port}"}})}
    return RunningComponent(name=name, kind="postgres", address="127.0.0.1:1", url="", cmd=["x"], env=env, user=None,
                            stop_signal=15, design=None, data_dir=None, pid=1, create_time=0.0, log="x.log")


def _state(tmp_path, *members: RunningComponent) -> LabState:
    return LabState(home=tmp_path, marker="m", designs=[], components={m.name: m for m in members})


def test_the_sampler_keys_each_reading_by_the_runs_second(tmp_path):
    asked = []

    async def reader(addresses, timeout_s):
        asked.append(addresses)
        return {"postgres-0": MemberLag("primary"), "postgres-0-1": MemberLag("replica", 128, 0.2)}

    sampler = LagSampler(_state(tmp_path, _member("postgres-0", 8008), _member("postgres-0-1", 8018)),
                         t0_wall=time.time(), interval_s=0.05, reader=reader)
    assert sampler.active
    sampler.start()
    deadline = time.monotonic() + 5
    while not sampler.rows and time.monotonic() < deadline:
        time.sleep(0.01)
    sampler.stop()
    assert asked[0] == ["127.0.0.1:8008", "127.0.0.1:8018"]
    assert sampler.rows[0] == {"postgres-0-1": {"role": "replica", "lag_bytes": 128, "lag_s": 0.2}}
    count = len(asked)
    time.sleep(0.15)
    assert len(asked) == count  # stopped


def test_without_replicas_the_sampler_does_nothing(tmp_path):
    sampler = LagSampler(_state(tmp_path, _member("postgres-0", None)), t0_wall=time.time(), reader=None)
    assert not sampler.active
    sampler.start()
    sampler.stop()
    assert sampler.rows == {}


def test_status_prints_bytes_then_seconds():
    assert lag_text(4096, 0.25) == "4,096 B / 0.2 s"
    assert lag_text(4096, None) == "4,096 B"
    assert lag_text(None, None) == "-"


class _Usage:
    def sample(self, state):
        return {}


class _Backend:
    def __init__(self, tmp_path, rows):
        self.state, self.rows = _state(tmp_path), rows

    def status(self):
        return self.state, self.rows


def _top(tmp_path, rows) -> tuple[top.Frame, str]:
    f, _, _ = top.frame(_Backend(tmp_path, rows), _Usage(), {}, time.monotonic())
    console = Console(record=True, width=200)
    console.print(top.render(f))
    return f, console.export_text()


def test_top_carries_each_members_role_and_lag_from_status(tmp_path):
    rows = [ComponentStatus("postgres-0", "postgres", 10, "a", "ready", role="primary"),
            ComponentStatus("postgres-0-1", "postgres", 11, "b", "ready", role="replica (sync)", lag_bytes=12288,
                            lag_s=1.25)]
    f, text = _top(tmp_path, rows)
    assert (f.components[1].role, f.components[1].lag_bytes, f.components[1].lag_s) == ("replica (sync)", 12288, 1.25)
    assert "lag B" in text and "lag s" in text
    line = next(x for x in text.splitlines() if "postgres-0-1" in x)
    assert "replica (sync)" in line and "12,288" in line and "1.2" in line
    assert top.as_dict(f)["components"][1]["lag_s"] == 1.25


def test_top_without_replicas_shows_nothing_new(tmp_path):
    f, text = _top(tmp_path, [ComponentStatus("postgres-0", "postgres", 10, "a", "ready")])
    assert "role" not in text and "lag" not in text
    assert not {"role", "lag_bytes", "lag_s"} & set(top.as_dict(f)["components"][0])
