"""Replicated PostgreSQL (``sdlab up --replicas N``): layout, Patroni's configuration, refusals, the apps' URLs."""

from __future__ import annotations

import json
import re

import pytest

from services.lab import machine
from services.lab.backends.local import supervisor
from services.lab.cli import entry as cli
from services.lab.config import LabSettings
from services.lab.designs import resolve
from services.lab.errors import LabCommandError
from services.lab.replication import layout as replication
from services.lab.replication import members as replicated_stack
from services.lab.replication.status import roles_of
from services.lab.stack import plan_stack
from services.lab.state import LabState, RunningComponent
from services.settings import split_urls


@pytest.fixture(autouse=True)
def _two_cores(monkeypatch):
    """The machine these plans must fit (3 servers a core): the same verdicts on any test host."""
    monkeypatch.setattr(machine, "size", lambda: (2, 24_000))


def _settings(**kw) -> LabSettings:
    return LabSettings(home="/tmp/sdlab-unit", **kw)


def test_without_replicas_the_plan_is_unchanged():
    plain = plan_stack(_settings(), resolve(["shortener"]))
    assert [c.name for c in plain.infra if c.kind in ("postgres", "etcd")] == ["postgres-0", "postgres-1"]
    assert all("PATRONI_CONFIGURATION" not in c.env for c in plain.infra)


def test_replicas_make_each_shard_a_patroni_cluster_with_the_dcs_first():
    plan = plan_stack(_settings(postgres_replicas=2), resolve(["shortener"]))
    members = {c.name: c.port for c in plan.infra if c.kind == "postgres"}
    # Member 0 keeps the shard's port; member m is 10*m above it.
    assert members == {"postgres-0": 5432, "postgres-0-1": 5442, "postgres-0-2": 5452,
                       "postgres-1": 5433, "postgres-1-1": 5443, "postgres-1-2": 5453}
    stages = [[c.name for c in group] for group in replicated_stack.start_stages(plan.infra)]
    assert stages[0] == ["etcd"]
    assert set(stages[1]) == {"redis", "postgres-0", "postgres-1", "kafka"}
    assert set(stages[2]) == {"postgres-0-1", "postgres-0-2", "postgres-1-1", "postgres-1-2"}
    urls = split_urls(plan.apps[0].env["SHORTENER_DATABASE_URLS"])
    assert urls == [
        "postgresql://postgres@127.0.0.1:5432,127.0.0.1:5442,127.0.0.1:5452/postgres?target_session_attrs=read-write",
        "postgresql://postgres@127.0.0.1:5433,127.0.0.1:5443,127.0.0.1:5453/postgres?target_session_attrs=read-write",
    ]


def test_every_port_a_replicated_part_takes_is_checked_before_up():
    plan = plan_stack(_settings(postgres_replicas=1, postgres_shards=1), resolve(["shortener"]))
    assert replicated_stack.side_ports(plan.infra) == [
        ("postgres-0 (Patroni REST API)", 8008, "SDLAB_PATRONI_PORT"),
        ("postgres-0-1 (Patroni REST API)", 8018, "SDLAB_PATRONI_PORT"),
        ("etcd (peer)", 2380, "SDLAB_ETCD_PORT"),
    ]


def test_a_members_patroni_configuration():
    member = replicated_stack.member_component(_settings(postgres_replicas=1, postgres_replication="sync"), 1, 1)
    config = json.loads(member.env["PATRONI_CONFIGURATION"])
    assert config["name"] == "postgres-1-1" and config["scope"] == "sdlab-postgres-1"
    assert config["restapi"]["listen"] == "127.0.0.1:8019"  # patroni_port + 10*member + shard
    assert replicated_stack.rest_address(member.env) == "127.0.0.1:8019"
    assert config["etcd3"]["hosts"] == "127.0.0.1:2379"
    assert config["postgresql"]["listen"] == "127.0.0.1:5443"
    assert config["postgresql"]["bin_dir"].endswith("pginstall/bin")
    assert config["postgresql"]["data_dir"].endswith("postgres-1-1-patroni/data")
    # The lab's own server settings go along (statements per operation need pg_stat_statements).
    assert config["postgresql"]["parameters"]["shared_preload_libraries"] == "pg_stat_statements"
    dcs = config["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is True and dcs["postgresql"]["use_pg_rewind"] is True
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"]) == (replication.TTL_S, replication.LOOP_WAIT_S,
                                                                    replication.RETRY_TIMEOUT_S)
    # Patroni's own rules: ttl >= 20 and loop_wait + 2 * retry_timeout <= ttl (else it changes them).
    assert dcs["ttl"] >= 20 and dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]
    assert "host replication all 127.0.0.1/32 trust" in config["postgresql"]["pg_hba"]
    async_member = replicated_stack.member_component(_settings(postgres_replicas=1), 0, 0)
    assert json.loads(async_member.env["PATRONI_CONFIGURATION"])["bootstrap"]["dcs"]["synchronous_mode"] is False


@pytest.mark.parametrize("replicas, mode, says", [
    (0, "sync", "--replication sync needs a replica"),
    (3, "async", "--replicas 3: at most 2"),
    (-1, "async", "--replicas -1"),
    (1, "quorum", "--replication quorum: choose async or sync"),
])
def test_bad_replication_is_refused_in_one_line(replicas, mode, says):
    with pytest.raises(LabCommandError, match=says):
        plan_stack(_settings(postgres_replicas=replicas, postgres_replication=mode), resolve(["shortener"]))


@pytest.mark.parametrize("shards, replicas, machine", [
    (2, 2, (2, 24_000)),  # 6 servers on 2 cores: the most
    (3, 1, (2, 24_000)),
    (8, 0, (1, 1_000)),  # no replicas: the shards alone are never refused here
    (1, 1, (8, 1_536)),  # 2 x 384 MiB in half of 1.5 GiB
])
def test_a_replication_the_machine_holds_is_accepted(shards, replicas, machine):
    replication.check(replicas, "async", shards, machine)


@pytest.mark.parametrize("shards, replicas, machine, says", [
    (4, 1, (2, 24_000), "--replicas 1 with 4 shard(s) is 8 PostgreSQL servers; this machine (2 cores, 23.4 GiB) "
                        "holds at most 6"),
    (2, 2, (1, 24_000), "is 6 PostgreSQL servers; this machine (1 cores, 23.4 GiB) holds at most 3"),
    (2, 1, (8, 2_048), "is 4 PostgreSQL servers; this machine (8 cores, 2.0 GiB) holds at most 2"),
])
def test_a_replica_count_the_machine_cannot_hold_is_refused_in_one_line(shards, replicas, machine, says):
    with pytest.raises(LabCommandError, match=re.escape(says)) as refused:
        replication.check(replicas, "sync", shards, machine)
    assert "\n" not in str(refused.value) and "fewer --replicas or --shards" in str(refused.value)


def test_replicas_refuse_existing_servers(monkeypatch):
    monkeypatch.setenv("DATABASE_URLS", "postgresql://a@db1/x")
    with pytest.raises(LabCommandError, match="unset DATABASE_URLS"):
        plan_stack(LabSettings(home="/tmp/x", postgres_replicas=1), resolve(["shortener"]))


@pytest.mark.parametrize("argv, says", [
    (["up", "shortener", "--replication", "sync"], "--replication sync needs a replica"),
    (["up", "shortener", "--replicas", "5"], "--replicas 5: at most 2"),
    (["up", "shortener", "--compose", "--replication", "sync"], "--replication sync needs a replica"),
    (["up", "shortener", "--shards", "4", "--replicas", "1"], "is 8 PostgreSQL servers; this machine (2 cores"),
])
def test_cli_refusals_are_one_line_and_start_nothing(argv, says, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SDLAB_HOME", str(tmp_path))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("sdlab: error:") and says in err, err
    assert not (tmp_path / "state.json").exists()


def test_member_names_parse_back():
    assert replication.parse_member("postgres-1-2") == (1, 2)
    assert replication.parse_member("postgres-3") == (3, 0)
    assert replication.parse_member("postgres-x") is None and replication.parse_member("redis") is None
    assert replication.is_shard_server("postgres-0") and not replication.is_shard_server("postgres-0-1")
    assert not replication.is_shard_server("postgres-0-patroni")


def test_roles_and_lag_from_patronis_cluster_answers():
    answer = {"members": [
        {"name": "postgres-0", "role": "leader", "state": "running", "lag": 0},
        {"name": "postgres-0-1", "role": "sync_standby", "state": "streaming", "lag": 4096},
        {"name": "postgres-0-2", "role": "replica", "state": "starting", "lag": "unknown"},
    ]}
    assert roles_of([{}, answer]) == {"postgres-0": ("primary", None), "postgres-0-1": ("replica (sync)", 4096),
                                      "postgres-0-2": ("replica", None)}


def test_adding_shards_to_a_replicated_lab_is_refused_in_one_line(tmp_path):
    settings = LabSettings(home=tmp_path, postgres_replicas=1, postgres_shards=1)
    state = LabState(home=settings.state_dir, marker=str(settings.state_dir), designs=["shop"])
    member = replicated_stack.member_component(settings, 0, 0)
    state.components[member.name] = RunningComponent(**member.to_dict(), pid=1, create_time=0.0, log="")
    state.save()
    with pytest.raises(LabCommandError, match="adding shards to a lab with replicas is not supported yet"):
        supervisor.add_postgres(settings, 3)
