"""docker-compose.yml is valid under the Compose Specification's JSON schema.

Compose mode cannot run on our machines (no engine by default), so the file must at least be
valid. The schema is vendored beside this test (see compose_spec.README for where it comes from).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema_rs
import pytest
import yaml

from services.lab.backends.compose.stack import budget_override
from services.lab.budgets.memory import resolve as memory_resolve
from services.lab.budgets.rules import resolve
from services.lab.config import REPO_ROOT

SCHEMA = json.loads((Path(__file__).parent / "compose_spec.json").read_text())
VALIDATOR = jsonschema_rs.validator_for(SCHEMA)
# yaml.safe_load resolves anchors and merge keys (<<) as Compose does.
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def _errors(document: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in VALIDATOR.iter_errors(document)]


def test_the_compose_file_is_valid():
    assert _errors(COMPOSE) == []


def _broken_interval(doc: dict) -> None:
    doc["services"]["redis"]["healthcheck"]["interval"] = 5


def _unknown_top_level(doc: dict) -> None:
    doc["servics"] = {}


def _misspelled_service_key(doc: dict) -> None:
    doc["services"]["caddy"]["imagee"] = "caddy:2"


def _port_as_a_map(doc: dict) -> None:
    doc["services"]["caddy"]["ports"] = {"8080": 8080}


@pytest.mark.parametrize("break_it", [_broken_interval, _unknown_top_level, _misspelled_service_key, _port_as_a_map])
def test_the_schema_rejects_a_broken_copy(break_it):
    broken = copy.deepcopy(COMPOSE)
    break_it(broken)
    assert _errors(broken), f"{break_it.__name__} was accepted"


def test_the_budget_override_is_valid_compose_and_sets_cpus():
    resolved = resolve({"postgres": 0.05, "caddy": 0.5}, COMPOSE["services"], 2)
    override = yaml.safe_load(budget_override(resolved))
    assert override == {"services": {"caddy": {"cpus": 0.5}, "postgres-0": {"cpus": 0.05}, "postgres-1": {"cpus": 0.05}}}
    assert _errors(override) == []


def test_memory_budgets_join_the_same_override_as_mem_limit_with_swap_held_to_it():
    services = COMPOSE["services"]
    limits = memory_resolve({"postgres-1": 256 * 2**20, "shortener": 512 * 2**20}, services, 64 * 2**30)
    override = yaml.safe_load(budget_override(resolve({"postgres": 0.05}, services, 2), limits))
    assert override["services"]["postgres-0"] == {"cpus": 0.05}
    assert override["services"]["postgres-1"] == {"cpus": 0.05, "mem_limit": 256 * 2**20, "memswap_limit": 256 * 2**20}
    shortener = [s for s in services if s.startswith("shortener-")]
    assert shortener and all(override["services"][s] == {"mem_limit": 512 * 2**20, "memswap_limit": 512 * 2**20}
                             for s in shortener)
    assert _errors(override) == []
    assert _errors({"services": {"redis": {"mem_limit": [256]}}}), "the schema checks mem_limit"
