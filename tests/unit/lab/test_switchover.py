"""Choosing a switchover's candidate from Patroni's /cluster answer, and the refusals (the
switchover itself runs against real Patroni in tests/integration/test_replicas.py)."""

from __future__ import annotations

import httpx
import pytest

from services.lab.cli import entry as cli
from services.lab.config import LabSettings
from services.lab.errors import LabCommandError
from services.lab.replication import members as replicated_stack
from services.lab.replication import switchover as switchover_module
from services.lab.replication.switchover import plan, switchover
from services.lab.state import LabState, RunningComponent


def _cluster(*members):
    return {"members": [dict(zip(("name", "role", "state", "lag"), m)) for m in members]}


def test_the_replica_furthest_along_is_the_candidate():
    cluster = _cluster(("postgres-0", "leader", "running", None), ("postgres-0-1", "replica", "streaming", 4096),
                       ("postgres-0-2", "sync_standby", "streaming", 0))
    assert plan(cluster, "postgres-0") == ("postgres-0", "postgres-0-2")


def test_no_healthy_replica_is_one_line_naming_the_members():
    cluster = _cluster(("postgres-0-1", "leader", "running", None), ("postgres-0", "replica", "stopped", None))
    with pytest.raises(LabCommandError, match=r"no healthy replica .*postgres-0 \(replica, stopped\)"):
        plan(cluster, "postgres-0")


def test_no_leader_is_refused():
    with pytest.raises(LabCommandError, match="has no primary right now"):
        plan(_cluster(("postgres-0-1", "replica", "streaming", 0)), "postgres-0")


def _state(tmp_path, *names):
    components = {n: RunningComponent(name=n, kind=n.split("-")[0], address="127.0.0.1:1", url="", cmd=["x"], env={},
                                      user=None, stop_signal=15, design=None, data_dir=None, pid=1, create_time=0.0,
                                      log="x.log") for n in names}
    return LabState(home=tmp_path, marker="m", designs=[], components=components)


def test_a_lab_without_replicas_is_told_how_to_get_them(tmp_path):
    state = _state(tmp_path, "postgres-0", "redis")
    with pytest.raises(LabCommandError, match=r"has no replicas .*sdlab up --replicas 1"):
        switchover(state, "postgres-0")
    with pytest.raises(LabCommandError, match="takes a PostgreSQL shard"):
        switchover(state, "redis")


def test_a_shard_without_a_healthy_replica_is_refused_in_one_line_before_patroni_is_asked(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SDLAB_HOME", str(tmp_path))
    settings = LabSettings(postgres_replicas=1, postgres_shards=1)
    state = LabState(home=settings.state_dir, marker=str(settings.state_dir), designs=["shortener"])
    for member in replicated_stack.shard_members(settings, 0):
        state.components[member.name] = RunningComponent(**member.to_dict(), pid=1, create_time=0.0, log="")
    state.save()
    # The replica is still copying its data from the primary: nothing to hand the role to.
    cluster = {"members": [{"name": "postgres-0", "role": "leader", "state": "running"},
                           {"name": "postgres-0-1", "role": "replica", "state": "creating replica"}]}
    monkeypatch.setattr(switchover_module, "_cluster", lambda client, addresses: cluster)
    monkeypatch.setattr(httpx.Client, "post", lambda *a, **kw: pytest.fail("asked Patroni to switch over"))
    assert cli.main(["chaos", "switchover", "postgres-0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err == ("sdlab: error: postgres-0 has no healthy replica to switch over to (members: postgres-0 "
                   "(leader, running), postgres-0-1 (replica, creating replica))")
