"""Compose mode's streaming replicas (``sdlab up --compose --replicas N``): the override made from the
deployment's configuration, on the official images and the stand-ins, its URLs, sync replication,
the roles ``status`` shows, and the one-line refusals (the real run is in e2e)."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from services.clients.read_routing import member_urls
from services.lab.backends.compose import project as compose
from services.lab.backends.compose import replicas as compose_replicas
from services.lab.backends.compose import replication_status as status
from services.lab.backends.compose import stack as compose_stack
from services.lab.backends.compose.replication_status import ServerAnswer, roles_of
from services.lab.cli import entry as cli
from services.lab.config import REPO_ROOT, LabSettings
from services.lab.errors import LabCommandError
from services.lab.state import ComponentStatus, LabState, RunningComponent
from services.settings import split_urls
from tests.unit.lab.test_compose_schema import _errors

# yaml.safe_load resolves anchors and merge keys as `docker compose config` does.
OFFICIAL = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def _standin() -> dict:
    """The stand-in run's configuration where it matters here: the built image, the apps' direct URLs."""
    config = copy.deepcopy(OFFICIAL)
    services = config["services"]
    services["postgres-0"].update(image="sdlab-standin-postgres:local", build={"context": "."})
    services["postgres-1"].update(image="sdlab-standin-postgres:local", pull_policy="never")
    services["shop-1"]["environment"]["SHOP_DATABASE_URLS"] = (
        "postgresql://postgres@postgres-0:5432/postgres,postgresql://postgres@postgres-1:5432/postgres")
    return config


def test_each_server_gets_a_replica_service_that_copies_it_then_runs_its_command():
    services = compose_replicas.override(OFFICIAL, 1, "async")["services"]
    assert {s for s in services if s.startswith("postgres-")} == {"postgres-0", "postgres-1", "postgres-0-1",
                                                                  "postgres-1-1"}
    for shard in (0, 1):
        primary, replica = OFFICIAL["services"][f"postgres-{shard}"], services[f"postgres-{shard}-1"]
        assert replica["image"] == "postgres:18" and "pull_policy" not in replica
        assert replica["entrypoint"] == ["/bin/sh", compose_replicas.SCRIPT_IN_CONTAINER]
        assert replica["command"][: len(primary["command"])] == primary["command"]
        assert f"hba_file={compose_replicas.HBA_IN_CONTAINER}" in replica["command"]
        assert replica["environment"]["PRIMARY_HOST"] == f"postgres-{shard}"
        assert replica["environment"]["REPLICA_NAME"] == f"postgres-{shard}-1"
        assert replica["depends_on"] == {f"postgres-{shard}": {"condition": "service_healthy"}}
        assert replica["healthcheck"] == primary["healthcheck"] and replica["user"] == "postgres"
        mounts = {v.split(":")[1]: v.split(":")[0] for v in replica["volumes"]}
        assert mounts["/var/lib/postgresql"] == f"postgres-{shard}-1-data"
        assert Path(mounts[compose_replicas.SCRIPT_IN_CONTAINER]).is_file()
        assert "pg_basebackup" in Path(mounts[compose_replicas.SCRIPT_IN_CONTAINER]).read_text()
        # The primary lets replication connections in.
        assert f"hba_file={compose_replicas.HBA_IN_CONTAINER}" in services[f"postgres-{shard}"]["command"]
        hba = Path(services[f"postgres-{shard}"]["volumes"][0].split(":")[0]).read_text()
        assert any(line.split()[:2] == ["host", "replication"] for line in hba.splitlines() if line.strip())
    assert set(compose_replicas.override(OFFICIAL, 1, "async")["volumes"]) == {"postgres-0-1-data", "postgres-1-1-data"}


def test_the_stand_in_replicas_run_the_image_built_here():
    services = compose_replicas.override(_standin(), 2, "async")["services"]
    for name in ("postgres-0-1", "postgres-0-2", "postgres-1-1", "postgres-1-2"):
        assert services[name]["image"] == "sdlab-standin-postgres:local" and services[name]["pull_policy"] == "never"
    hosts = split_urls(services["shop-1"]["environment"]["SHOP_DATABASE_URLS"])
    assert hosts[0] == ("postgresql://postgres@postgres-0:5432,postgres-0-1:5432,postgres-0-2:5432/postgres"
                        "?target_session_attrs=read-write")


def test_the_apps_urls_list_primary_then_replica_and_bind_writes_to_the_primary():
    services = compose_replicas.override(OFFICIAL, 1, "async")["services"]
    for app, key in (("shortener-1", "SHORTENER_DATABASE_URLS"), ("messaging-gateway-1", "MESSAGING_DATABASE_URLS"),
                     ("shop-1", "SHOP_DATABASE_URLS"), ("shop-migrate", "SHOP_DATABASE_URLS")):
        urls = split_urls(services[app]["environment"][key])
        assert len(urls) == 2, urls
        for shard, (url, proxy) in enumerate(zip(urls, ("toxiproxy:15432", "toxiproxy:15433"), strict=True)):
            assert url.endswith("?target_session_attrs=read-write")
            members = member_urls(url)  # how the read routing finds the replicas
            assert [m.split("@")[1].split("/")[0] for m in members] == [proxy, f"postgres-{shard}-1:5432"]
    assert "environment" not in services.get("caddy", {})


def test_everything_that_waits_for_a_server_waits_for_its_replicas_too():
    services = compose_replicas.override(OFFICIAL, 1, "sync")["services"]
    assert set(services["shop-1"]["depends_on"]) == {"postgres-0-1", "postgres-1-1"}
    assert set(services["messaging-migrate"]["depends_on"]) == {"postgres-0-1"}  # it waits for postgres-0 only
    assert all(v == {"condition": "service_healthy"} for v in services["shop-migrate"]["depends_on"].values())


@pytest.mark.parametrize("replicas, standbys", [(1, 'FIRST 1 ("postgres-1-1")'),
                                                (2, 'FIRST 1 ("postgres-1-1", "postgres-1-2")')])
def test_sync_makes_the_primary_wait_for_its_replicas(replicas, standbys):
    command = compose_replicas.override(OFFICIAL, replicas, "sync")["services"]["postgres-1"]["command"]
    assert f"synchronous_standby_names={standbys}" in command and "synchronous_commit=on" in command
    assert command[command.index(f"synchronous_standby_names={standbys}") - 1] == "-c"
    replica = compose_replicas.override(OFFICIAL, replicas, "sync")["services"]["postgres-1-1"]["command"]
    assert not any("synchronous" in a for a in replica)
    async_primary = compose_replicas.override(OFFICIAL, replicas, "async")["services"]["postgres-1"]["command"]
    assert not any("synchronous" in a for a in async_primary)


def test_the_override_is_valid_compose():
    assert _errors(yaml.safe_load(compose_replicas.override_yaml(OFFICIAL, 2, "sync"))) == []


def test_the_replica_script_is_valid_sh():
    assert subprocess.run(["sh", "-n", str(compose_replicas.REPLICA_SCRIPT)]).returncode == 0


def test_up_with_replicas_adds_the_override_and_starts_the_replicas(monkeypatch, tmp_path):
    settings = LabSettings(home=tmp_path / "lab", postgres_replicas=1, postgres_replication="sync")
    calls = []

    def run(dep, *args, **kw):
        calls.append(args)
        if "--format" in args:
            return json.dumps(OFFICIAL)
        extra = "postgres-0-1\npostgres-1-1\n" if any("compose.replicas.yml" in f for f in dep.files) else ""
        return "redis\npostgres-0\npostgres-1\nkafka\ncaddy\nshop-1\nshop-migrate\n" + extra

    monkeypatch.setattr(compose, "run", run)
    dep = compose_stack.up(settings, ["shop"], standin=False, say=lambda _: None)
    replicas_file = settings.state_dir / "compose.replicas.yml"
    assert str(replicas_file) in dep.files
    assert {"postgres-0-1", "postgres-1-1"} <= set(calls[-1])
    assert 'synchronous_standby_names=FIRST 1 ("postgres-0-1")' in replicas_file.read_text()
    compose_stack.down(settings, dep, volumes=True)
    assert not replicas_file.exists()


def test_up_without_replicas_leaves_no_override(monkeypatch, tmp_path):
    settings = LabSettings(home=tmp_path / "lab")
    monkeypatch.setattr(compose, "run", lambda dep, *a, **k: json.dumps(OFFICIAL) if "--format" in a else "redis\n")
    dep = compose_stack.up(settings, ["shortener", "messaging", "shop"], standin=False, say=lambda _: None)
    assert not any(f.endswith("compose.replicas.yml") for f in dep.files)


def test_replica_containers_are_postgres_servers():
    assert compose.kind_of("postgres-0-1") == ("postgres", None)
    assert compose.kind_of("postgres-1") == ("postgres", None)


def test_roles_and_lag_from_the_servers_answers():
    answers = {
        "postgres-0": ServerAnswer(False, [{"application_name": "postgres-0-1", "sync_state": "sync", "lag": 0}]),
        "postgres-0-1": ServerAnswer(True, [], 0.0),
        "postgres-1": ServerAnswer(False, [{"application_name": "postgres-1-1", "sync_state": "async", "lag": 8192}]),
        "postgres-1-1": ServerAnswer(True, [], 1.25),
        "postgres-1-2": ServerAnswer(True, []),  # copied, but not streaming
        "postgres-2": ServerAnswer(None, []),  # did not answer
    }
    assert roles_of(answers) == {"postgres-0": ("primary", None, None), "postgres-0-1": ("replica (sync)", 0, 0.0),
                                 "postgres-1": ("primary", None, None), "postgres-1-1": ("replica", 8192, 1.25),
                                 "postgres-1-2": ("replica (not streaming)", None, None)}


@pytest.mark.parametrize("argv, says", [
    (["up", "shop", "--compose", "--replication", "sync"], "--replication sync needs a replica"),
    (["up", "shop", "--compose", "--replicas", "3"], "--replicas 3: at most 2"),
])
def test_bad_replication_in_compose_mode_is_refused_in_one_line(argv, says, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SDLAB_HOME", str(tmp_path))
    monkeypatch.setattr(compose, "run", lambda *a, **k: pytest.fail("docker compose ran"))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and says in err, err


def test_switchover_in_compose_mode_says_it_needs_local_mode():
    with pytest.raises(LabCommandError, match="switchover needs local mode"):
        compose_stack.chaos(compose.Deployment("lab", ["f.yml"]), "switchover", "postgres-0")


def test_status_asks_the_servers_only_when_the_deployment_has_replicas(monkeypatch, tmp_path):
    asked = []

    async def ask_all(urls, timeout_s):
        asked.append(sorted(urls))
        return {"postgres-0": ServerAnswer(False, [{"application_name": "postgres-0-1", "sync_state": "async",
                                                     "lag": 512}]),
                "postgres-0-1": ServerAnswer(True, [], 0.5)}

    monkeypatch.setattr(status, "_ask_all", ask_all)

    def lab(*names):
        state = LabState(home=tmp_path, marker="compose:lab", designs=[])
        for n in names:
            state.components[n] = RunningComponent(name=n, kind="postgres", address="10.0.0.2:5432",
                                                   url="postgresql://postgres@10.0.0.2:5432/postgres", cmd=[], env={},
                                                   user=None, stop_signal=15, design=None, data_dir=None, pid=0,
                                                   create_time=0.0, log="")
        return state, [ComponentStatus(n, "postgres", None, "", "ready") for n in names]

    state, rows = lab("postgres-0")
    status.annotate(state, rows)
    assert asked == [] and rows[0].role is None
    state, rows = lab("postgres-0", "postgres-0-1")
    status.annotate(state, rows)
    assert asked == [["postgres-0", "postgres-0-1"]]
    assert [(r.role, r.lag_bytes, r.lag_s) for r in rows] == [("primary", None, None), ("replica", 512, 0.5)]
