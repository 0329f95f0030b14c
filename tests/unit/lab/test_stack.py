"""The stack definition, external overrides, CLI errors that need no running stack."""

from __future__ import annotations

import pytest

from services.lab import binaries
from services.lab.cli import entry as cli
from services.lab.config import LabSettings
from services.lab.designs import names as design_names
from services.lab.designs import resolve
from services.lab.errors import LabCommandError
from services.lab.stack import plan_stack


def _settings(**kw) -> LabSettings:
    return LabSettings(home="/tmp/sdlab-unit", **kw)


def test_default_plan_has_every_part_on_its_port():
    plan = plan_stack(_settings(), resolve([]))
    names = [c.name for c in plan.components]
    assert names == ["redis", "postgres-0", "postgres-1", "kafka", "shortener-1", "shortener-2",
                     "shortener-analytics-1", "messaging-1", "messaging-2", "messaging-gateway-1",
                     "messaging-gateway-2", "messaging-fanout-1", "shop-payments-1", "shop-1", "shop-2",
                     "shop-worker-1", "shop-fulfillment-1", "caddy"]
    ports = {c.name: c.port for c in plan.components}
    assert ports["redis"] == 6379 and ports["postgres-1"] == 5433 and ports["kafka"] == 9092
    assert ports["shortener-1"] == 8100 and ports["shortener-analytics-1"] == 8102 and ports["caddy"] == 8080
    caddy = plan.balancer
    assert caddy.env["SHORTENER_UPSTREAMS"] == "127.0.0.1:8100 127.0.0.1:8101"  # the worker is not balanced
    # A design's servers (messaging's WebSocket gateways) are balanced under a variable of their own.
    assert caddy.env["MESSAGING_UPSTREAMS"] == "127.0.0.1:8103 127.0.0.1:8104"
    assert caddy.env["MESSAGING_GATEWAY_UPSTREAMS"] == "127.0.0.1:8105 127.0.0.1:8106"
    gateway = next(c for c in plan.apps if c.name == "messaging-gateway-1")
    assert gateway.cmd[-5:] == ["messaging.gateway", "--host", "127.0.0.1", "--port", "8105"]
    # A design's internal services (the shop's payment stand-in) start first; every process of
    # the design gets their URL, and they are not balanced.
    shop = next(c for c in plan.apps if c.name == "shop-worker-1")
    assert ports["shop-payments-1"] == 8108 and shop.env["SHOP_PAYMENTS_URL"] == "http://127.0.0.1:8108"
    assert caddy.env["SHOP_UPSTREAMS"] == "127.0.0.1:8109 127.0.0.1:8110"
    app = plan.apps[0]
    assert app.env["SHORTENER_DATABASE_URLS"] == "postgresql://postgres@127.0.0.1:5432/postgres,postgresql://postgres@127.0.0.1:5433/postgres"
    assert app.env["SHORTENER_INSTANCE_ID"] == "shortener-1"
    assert app.env["SHORTENER_KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9092"


def test_shards_and_instances_are_configurable():
    plan = plan_stack(_settings(postgres_shards=4, shortener_instances=3, postgres_port=6000), resolve(["shortener"]))
    assert [c.port for c in plan.infra if c.kind == "postgres"] == [6000, 6001, 6002, 6003]
    assert len(plan.balancer.env["SHORTENER_UPSTREAMS"].split()) == 3


def test_existing_servers_replace_parts(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://cache.internal:6379/2")
    monkeypatch.setenv("DATABASE_URLS", "postgresql://a@db1/x,postgresql://a@db2/x")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    plan = plan_stack(LabSettings(home="/tmp/x"), resolve([]))
    assert [c.kind for c in plan.infra] == []
    assert [(p.name, p.url) for p in plan.external] == [
        ("redis", "redis://cache.internal:6379/2"),
        ("postgres-0", "postgresql://a@db1/x"),
        ("postgres-1", "postgresql://a@db2/x"),
        ("kafka", "broker:9092"),
    ]
    env = plan.apps[0].env
    assert env["SHORTENER_REDIS_URL"] == "redis://cache.internal:6379/2"
    assert env["SHORTENER_DATABASE_URLS"] == "postgresql://a@db1/x,postgresql://a@db2/x"
    assert env["SHORTENER_KAFKA_BOOTSTRAP_SERVERS"] == "broker:9092"


def test_unknown_design_is_a_clear_error():
    with pytest.raises(LabCommandError, match="unknown design 'chat'; choose from: shortener, messaging, shop"):
        resolve(["chat"])
    assert set(design_names()) == {"shortener", "messaging", "shop"}


def test_missing_binary_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setattr(binaries, "_package_dir", lambda package: None)
    monkeypatch.setenv("SDLAB_HOME", "/tmp/sdlab-missing-binary")
    assert cli.main(["up"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("sdlab: error: redis-server not found") and "make install" in err


def test_bad_setting_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("SDLAB_REDIS_PORT", "not-a-port")
    assert cli.main(["status"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "redis_port" in err and "SDLAB_" in err


def test_usage_errors_are_one_line(capsys):
    assert cli.main(["chaos"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("sdlab: error:")


def test_out_of_range_flags_are_one_line_errors(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SDLAB_HOME", str(tmp_path))
    for argv, flag in ((["up", "--instances", "0"], "--instances 0"), (["up", "--shards", "99"], "--shards 99")):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith(f"sdlab: error: {flag}: input should be"), err
    assert not (tmp_path / "state.json").exists(), "nothing was started"


def test_caddy_and_the_instances_take_their_idle_timeouts_from_one_setting():
    plan = plan_stack(_settings(upstream_keepalive_s=5), resolve(["shortener"]))
    assert plan.balancer.env["SDLAB_UPSTREAM_KEEPALIVE"] == "5s"
    for app in plan.apps:
        if "uvicorn" in app.cmd:
            assert app.cmd[app.cmd.index("--timeout-keep-alive") + 1] == "20"  # Caddy's + 15 s
    default = plan_stack(_settings(), resolve(["shortener"]))
    assert default.balancer.env["SDLAB_UPSTREAM_KEEPALIVE"] == "60s"
    assert {a.cmd[a.cmd.index("--timeout-keep-alive") + 1] for a in default.apps if "uvicorn" in a.cmd} == {"75"}
