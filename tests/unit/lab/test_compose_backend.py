"""Compose mode's backend on canned engine answers: the deployment read back as the lab's state,
statuses, container usage, service selection and experiment variants (the real run is in e2e)."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from services.lab.backends.compose import project as compose
from services.lab.backends.compose import stack as compose_stack
from services.lab.backends.selection import backend_for_up, select_backend
from services.lab.config import LabSettings
from services.lab.errors import LabCommandError

PS = [
    {"ID": "aaa", "Name": "lab-redis-1", "Service": "redis", "State": "running", "Health": "healthy", "Publishers": []},
    {"ID": "bbb", "Name": "lab-postgres-0-1", "Service": "postgres-0", "State": "running", "Health": "starting",
     "Publishers": []},
    {"ID": "ccc", "Name": "lab-shop-1-1", "Service": "shop-1", "State": "paused", "Health": "", "Publishers": []},
    {"ID": "ddd", "Name": "lab-shop-migrate-1", "Service": "shop-migrate", "State": "exited",
     "Status": "Exited (0) 2 minutes ago", "Publishers": []},
    {"ID": "eee", "Name": "lab-caddy-1", "Service": "caddy", "State": "running", "Health": "healthy",
     "Publishers": [{"URL": "127.0.0.1", "TargetPort": 8082, "PublishedPort": 18082, "Protocol": "tcp"}]},
    {"ID": "fff", "Name": "lab-shop-payments-1-1", "Service": "shop-payments-1", "State": "exited",
     "Status": "Exited (137) 5 seconds ago", "Publishers": []},
]


def _inspect(ids):
    found = {}
    for i, row in enumerate(PS):
        env = ["SHOP_PORT=8082", "PATH=/usr/bin"] if row["Service"] == "caddy" else ["SHOP_LOG_FORMAT=json"]
        found[row["ID"] + "0123"] = {"Id": row["ID"] + "0123", "State": {"Pid": 0}, "Config": {"Env": env},
                                     "NetworkSettings": {"Networks": {"lab_default": {"IPAddress": f"172.18.0.{i + 2}"}}}}
    return found


@pytest.fixture
def engine(monkeypatch):
    monkeypatch.setattr(compose, "containers", lambda dep: PS)
    monkeypatch.setattr(compose, "inspect", _inspect)


@pytest.fixture
def settings(tmp_path):
    return LabSettings(home=tmp_path / "lab")


def test_the_deployment_reads_back_as_the_labs_state(engine, settings):
    state, _ = compose.lab_state(settings, compose.Deployment("lab", ["f.yml"]))
    assert state.marker == "compose:lab"
    assert state.designs == ["shop"] and state.ports == {"shop": 18082}
    pg = state.components["postgres-0"]
    assert (pg.kind, pg.url) == ("postgres", "postgresql://postgres@172.18.0.3:5432/postgres")
    assert state.components["redis"].url == "redis://172.18.0.2:6379/0"
    app = state.components["shop-1"]
    assert (app.kind, app.design, app.url) == ("app", "shop", "http://172.18.0.4:8000")
    assert app.env["SHOP_LOG_FORMAT"] == "json"
    assert state.components["shop-migrate"].kind == "job"
    assert state.components["caddy"].url == "http://127.0.0.1:18082"


def test_statuses_follow_the_engine_and_hide_finished_migrations(engine, settings):
    _, rows = compose_stack.status(settings, compose.Deployment("lab", ["f.yml"]))
    by_name = {r.name: r for r in rows}
    assert "shop-migrate" not in by_name
    assert by_name["redis"].state == "ready"
    assert (by_name["postgres-0"].state, by_name["postgres-0"].detail) == ("unready", "starting")
    assert by_name["shop-1"].state == "paused"
    assert by_name["shop-payments-1"].state == "down" and "137" in by_name["shop-payments-1"].detail


def test_kinds_by_service_name():
    assert compose.kind_of("postgres-1") == ("postgres", None)
    assert compose.kind_of("messaging-gateway-2") == ("app", "messaging")
    assert compose.kind_of("shortener-migrate") == ("job", "shortener")
    assert compose.kind_of("toxiproxy") == ("toxiproxy", None)


def test_container_usage_parses_docker_stats(monkeypatch):
    monkeypatch.setattr(compose, "containers", lambda dep: PS)

    class Done:
        stdout = "\n".join(json.dumps(r) for r in (
            {"Name": "lab-redis-1", "CPUPerc": "12.50%", "MemUsage": "3.5MiB / 23.4GiB"},
            {"Name": "lab-caddy-1", "CPUPerc": "101.00%", "MemUsage": "1.5GiB / 23.4GiB"},
            {"Name": "someone-else", "CPUPerc": "50%", "MemUsage": "1MiB / 2GiB"}))

    monkeypatch.setattr(compose_stack.subprocess, "run", lambda *a, **k: Done())
    usage = compose_stack.container_usage(compose.Deployment("lab", ["f.yml"]))
    assert usage == {"redis": (12.5, 3.5), "caddy": (101.0, 1536.0)}


def test_up_runs_only_the_chosen_designs_and_the_shared_parts(monkeypatch, settings):
    calls = []
    listed = "redis\npostgres-0\nkafka\ncaddy\nshortener-1\nshortener-migrate\nmessaging-gateway-1\nshop-1\nshop-migrate\n"
    caddy = {"depends_on": {"shortener-1": {"condition": "service_healthy"}, "shop-1": {"condition": "service_healthy"},
                            "messaging-gateway-1": {"condition": "service_healthy"}},
             "environment": {"SHORTENER_PORT": "8080", "MESSAGING_PORT": "8081", "SHOP_PORT": "8082"},
             "healthcheck": {"test": ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/healthz"]}}

    def run(dep, *args, **kw):
        calls.append((dep, args))
        return json.dumps({"services": {"caddy": caddy}}) if "--format" in args else listed

    monkeypatch.setattr(compose, "run", run)
    dep = compose_stack.up(settings, ["shop"], standin=False, say=lambda _: None)
    up_args = calls[-1][1]
    assert up_args[:5] == ("up", "-d", "--build", "--wait", "--remove-orphans")
    assert set(up_args[5:]) == {"redis", "postgres-0", "kafka", "caddy", "shop-1", "shop-migrate"}
    assert compose.recorded(settings) == dep and dep.designs == ["shop"]
    # The balancer waits for the shop alone and checks its health on the shop's port.
    override = open(dep.files[-1]).read()
    assert "depends_on: !override" in override and "shortener-1" not in override and "shop-1" in override
    assert 'test: !override ["CMD", "wget", "-qO-", "http://127.0.0.1:8082/healthz"]' in override


def test_up_refuses_when_a_local_lab_holds_the_ports(settings):
    settings.state_dir.mkdir(parents=True)
    (settings.state_dir / "state.json").write_text(json.dumps(
        {"marker": "m", "designs": [], "started_at": 0, "components": {}}))
    with pytest.raises(LabCommandError, match="local lab runs"):
        compose_stack.up(settings, [], standin=False, say=lambda _: None)


def test_a_variant_is_an_env_override_and_a_recreate_of_the_designs_services(monkeypatch, settings):
    calls = []
    monkeypatch.setattr(compose, "run", lambda dep, *args, **kw: calls.append((dep, args)) or "redis\nshop-1\nshop-2\n")
    settings.state_dir.mkdir(parents=True)
    dep = compose.Deployment("lab", ["docker-compose.yml"], ["shop"])
    compose_stack.apply_variant(settings, dep, "shop", {"SHOP_STOCK_STRATEGY": "redis", "OTHER": "x"}, lambda _: None)
    recreate_dep, args = calls[-1]
    assert args == ("up", "-d", "--wait", "--no-deps", "--force-recreate", "shop-1", "shop-2")
    override = yaml.safe_load(open(recreate_dep.files[-1]))
    assert override == {"services": {s: {"environment": {"SHOP_STOCK_STRATEGY": "redis"}} for s in ("shop-1", "shop-2")}}
    compose_stack.apply_variant(settings, dep, "shop", {}, lambda _: None)
    assert calls[-1][0].files == ["docker-compose.yml"]  # back to the file's own settings
    assert not compose_stack.variant_path(settings).exists()


def test_compose_command_names_project_and_files(monkeypatch):
    monkeypatch.setattr(compose, "cli", lambda: ["docker-compose"])
    cmd = compose.command(compose.Deployment("p", ["/a.yml", "/b.yml"]), "ps")
    assert cmd[:3] == ["docker-compose", "-p", "p"] and cmd[-5:] == ["-f", "/a.yml", "-f", "/b.yml", "ps"]


def test_the_default_project_is_the_one_docker_compose_picks(monkeypatch):
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "My.Lab")
    assert compose.default_project() == "mylab"
    monkeypatch.delenv("COMPOSE_PROJECT_NAME")
    assert compose.default_project() == compose.REPO_ROOT.name.lower().replace(".", "")


def test_a_corrupt_record_says_how_to_recover(settings):
    settings.state_dir.mkdir(parents=True)
    compose.record_path(settings).write_text("{not json")
    with pytest.raises(LabCommandError, match="sdlab down --compose"):
        compose.recorded(settings)
    os.remove(compose.record_path(settings))
    assert compose.recorded(settings) is None


def test_settings_naming_peers_by_service_read_back_at_their_addresses(monkeypatch, settings):
    rows = [dict(PS[0]), dict(PS[1]), {**PS[2], "State": "running"}]
    monkeypatch.setattr(compose, "containers", lambda dep: rows)

    def inspect(ids):
        found = _inspect(ids)
        found["ccc0123"]["Config"]["Env"] = ["SHOP_DATABASE_URLS=postgresql://postgres@postgres-0:5432/postgres",
                                             "SHOP_REDIS_URL=redis://redis:6379/0", "SHOP_NOTE=redis-cache:1 xredis:2"]
        return found

    monkeypatch.setattr(compose, "inspect", inspect)
    state, _ = compose.lab_state(settings, compose.Deployment("lab", ["f.yml"]))
    env = state.components["shop-1"].env
    assert env["SHOP_DATABASE_URLS"] == "postgresql://postgres@172.18.0.3:5432/postgres"
    assert env["SHOP_REDIS_URL"] == "redis://172.18.0.2:6379/0"
    assert env["SHOP_NOTE"] == "redis-cache:1 xredis:2"  # only whole service names


def test_a_project_started_by_plain_docker_compose_is_found_and_recorded(engine, monkeypatch, settings):
    monkeypatch.setattr(compose.shutil, "which", lambda name: f"/usr/bin/{name}")
    backend = select_backend(settings)
    state = backend.state()
    assert backend.name == "compose"
    assert state.marker == f"compose:{compose.default_project()}" and state.designs == ["shop"]
    assert compose.recorded(settings).designs == ["shop"]
    _, rows = select_backend(settings).status()
    assert {r.name for r in rows} >= {"redis", "shop-1"}


def test_without_a_running_project_the_lab_says_how_to_start_one(monkeypatch, settings):
    monkeypatch.setattr(compose, "containers", lambda dep: [])
    monkeypatch.setattr(compose.shutil, "which", lambda name: f"/usr/bin/{name}")
    with pytest.raises(LabCommandError, match="sdlab up --compose"):
        select_backend(settings).state()
    assert compose.recorded(settings) is None


def test_local_only_operations_refuse_a_compose_deployment(settings):
    compose.save(settings, compose.Deployment("lab", ["f.yml"], ["shop"]))
    backend = select_backend(settings)
    with pytest.raises(LabCommandError, match="needs local mode"):
        backend.add_postgres(3)
    for capability in ("sizing", "local_stacks"):
        with pytest.raises(LabCommandError, match="compose"):
            backend.require(capability)
    with pytest.raises(LabCommandError, match="compose deployment is recorded"):
        backend_for_up(settings, compose=False)


def test_command_line_sizes_override_every_variants_load():
    from services.lab.experiments.experiment import Experiment, Variant
    from services.lab.experiments.runner import _spec
    from services.lab.measure.load import LoadSpec

    exp = Experiment("d.x", "t", "q", LoadSpec(design="d", duration_s=30, seed_count=2000), [], lambda r: None)
    variant = Variant("v", load={"seed_count": 500, "rate": 50})
    spec = _spec(exp, variant, {"duration_s": 5, "users": None, "seed_count": 200})
    assert (spec.duration_s, spec.seed_count, spec.rate, spec.users, spec.name) == (5, 200, 50, 50, "v")
    assert _spec(exp, variant, {"duration_s": None, "users": None, "seed_count": None}).seed_count == 500
