"""The engine's openings for a design's own operations: commands (`sdlab <design> <command>`),
fault-schedule actions, added PostgreSQL servers; and Locust's "N/A" cells."""

from __future__ import annotations

import pytest

from services.lab.cli import entry as cli
from services.lab.config import LabSettings
from services.lab.designs import resolve
from services.lab.errors import LabCommandError
from services.lab.generators.locust_driver import locust_stats
from services.lab.measure.faults import parse_schedule
from services.lab.stack import plan_stack


def test_a_design_action_is_accepted_only_where_the_design_offers_it():
    steps = parse_schedule("at 25% reshard 3; at 50% kill redis", 40, design_actions={"reshard"})
    assert [(s.at_s, s.action, s.component) for s in steps] == [(10.0, "reshard", "3"), (20.0, "kill", "redis")]
    with pytest.raises(LabCommandError, match="bad fault action 'reshard'"):
        parse_schedule("at 25% reshard 3", 40)


def test_a_design_command_parses_its_own_options(monkeypatch):
    from loadtests.shop import commands, plugin
    from services.lab.contract import DesignCommand

    ran = {}
    fake = DesignCommand("reshard", "help", commands._arguments, lambda settings, o, say: ran.update(vars(o)))
    monkeypatch.setattr(plugin.PLUGIN, "commands", [fake])
    assert cli.main(["shop", "reshard", "--to", "3"]) == 0
    assert ran["to"] == 3 and ran["rollback"] is False
    assert cli.main(["shop", "nonsense"]) == 2
    assert cli.main(["messaging", "anything"]) == 2  # a design without commands says so


def test_servers_added_to_a_home_are_started_again(tmp_path):
    for shard in range(3):
        (tmp_path / f"postgres-{shard}" / "data").mkdir(parents=True)
        (tmp_path / f"postgres-{shard}" / "data" / "PG_VERSION").write_text("18")
    plan = plan_stack(LabSettings(home=tmp_path, postgres_shards=2), resolve(["shop"]))
    assert [c.name for c in plan.infra if c.kind == "postgres"] == ["postgres-0", "postgres-1", "postgres-2"]
    assert plan.apps[0].env["SHOP_DATABASE_URLS"].count("postgresql://") == 3


def test_locust_writes_na_for_an_endpoint_without_requests(tmp_path):
    path = tmp_path / "stats.csv"
    path.write_text("Type,Name,Request Count,Failure Count,Requests/s,50%,95%,99%,Max Response Time\n"
                    ",Aggregated,0,0,0.0,N/A,N/A,N/A,0\n")
    assert locust_stats(path)["Aggregated"]["p99_ms"] == 0.0
