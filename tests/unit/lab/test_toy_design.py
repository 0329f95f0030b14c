"""The "add a design" walkthrough (docs/architecture.md), followed by a toy design that lives only in
tests/toy_design: the engine lists it, plans its stack, runs its commands' checks and its plugin
satisfies the contract, and nothing in services/ was touched for it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from services.lab.backends.local.prepare import prepare_caddy
from services.lab.bench import run_bench
from services.lab.cli import entry as cli
from services.lab.cli.parser import build_parser
from services.lab.config import REPO_ROOT, LabSettings
from services.lab.contract import DesignPlugin, LoadSpec
from services.lab.designs import names as design_names
from services.lab.designs import plugin_for, resolve
from services.lab.errors import LabCommandError
from services.lab.measure.load import generator_for
from services.lab.stack import plan_stack


@pytest.fixture
def toy(monkeypatch) -> DesignPlugin:
    monkeypatch.setenv("SDLAB_DESIGN_MODULES", "tests.toy_design.plugin")
    for knob in ("PORT", "INSTANCES", "WORKERS"):
        monkeypatch.delenv(f"SDLAB_TOY_{knob}", raising=False)
    return plugin_for("toy")


def test_the_engine_lists_the_toy_after_the_installed_designs(toy):
    assert design_names() == ["messaging", "shop", "shortener", "toy"]
    assert [d.name for d in resolve([])] == ["shortener", "messaging", "shop", "toy"]  # by public port
    parser = build_parser()
    assert "toy" in parser._subparsers._group_actions[0].choices  # `sdlab toy ...`
    assert cli.main(["toy", "anything"]) == 2  # a one-line "toy has no commands of its own"


def test_the_engine_plans_the_toy_stack_from_its_declaration(toy, tmp_path, monkeypatch):
    plan = plan_stack(LabSettings(home=tmp_path), resolve(["toy"]))
    assert [c.name for c in plan.apps] == ["toy-1"] and plan.infra == []  # it needs no part of the stack
    assert "tests.toy_design.app:create_app" in plan.apps[0].cmd  # run by uvicorn --factory
    assert plan.balancer.env["TOY_PORT"] == "8093" and plan.balancer.env["TOY_UPSTREAMS"] == plan.apps[0].address
    monkeypatch.setenv("SDLAB_TOY_PORT", "9193")
    monkeypatch.setenv("SDLAB_TOY_INSTANCES", "2")
    plan = plan_stack(LabSettings(home=tmp_path), resolve(["toy"]))
    assert plan.balancer.env["TOY_PORT"] == "9193" and [c.name for c in plan.apps] == ["toy-1", "toy-2"]
    prepare_caddy(tmp_path, resolve(["toy"]))
    assert (tmp_path / "caddy" / "sites" / "toy.caddy").resolve() == toy.design.caddy_site


def test_the_toy_plugin_satisfies_the_contract(toy, tmp_path):
    assert isinstance(toy, DesignPlugin) and toy.name == "toy" and toy.locustfile.exists()
    assert type(toy).seed is not DesignPlugin.seed and type(toy).verify is not DesignPlugin.verify
    summary = {"endpoints": {"/api/v1/notes": {"requests": 10, "failures": 1}}}
    assert toy.cost_unit(LoadSpec("toy"), summary) == ("request", 9)  # the contract's default
    assert toy.gauges(None) == [] and toy.experiments == () and toy.fault_actions == {}
    with pytest.raises(LabCommandError, match="no benchmark"):
        run_bench(LabSettings(home=tmp_path), "toy")
    with pytest.raises(LabCommandError, match="no k6 script"):
        generator_for(toy, LoadSpec("toy", generator="k6", rate=10), "http://x", tmp_path, {}, "127.0.0.1")
    driver = generator_for(toy, LoadSpec("toy", shape="step"), "http://x", tmp_path, {}, "127.0.0.1")
    assert driver.locustfiles()[0] == toy.locustfile


def test_the_toy_service_answers_as_the_engine_expects():
    from tests.toy_design.app import create_app

    with TestClient(create_app()) as client:
        assert client.get("/readyz").json()["status"] == "ready"
        note = client.post("/api/v1/notes", json={"text": "hi"})
        assert note.status_code == 201 and client.get(f"/api/v1/notes/{note.json()['id']}").json()["text"] == "hi"


def test_nothing_in_services_names_the_toy():
    assert [p for p in (REPO_ROOT / "services").rglob("*.py") if "toy_design" in p.read_text()] == []


def test_a_design_without_an_estimate_model_is_refused_in_one_line(toy, capsys):
    assert toy.estimate_model is None  # the contract's default
    assert cli.main(["estimate", "toy", "--rate", "10"]) == 2
    assert "design 'toy' has no estimate model" in capsys.readouterr().err
