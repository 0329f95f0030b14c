"""One consistency test for both deployments: the Helm chart runs the components docker-compose.yml runs,
with the same env names, commands, migrations and images, and both stay within the designs' settings."""

from __future__ import annotations

import json
import re

import yaml

from services.lab.budgets.rules import kind_of
from services.lab.config import REPO_ROOT
from services.lab.designs import names as design_names
from tests.unit.deploy import chart_rules as rules

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
# The chart's edge is an Ingress instead of Caddy; Toxiproxy (the lab's chaos), Prometheus and Grafana stay local.
COMPOSE_ONLY = {"caddy", "toxiproxy", "prometheus", "grafana"}


def _image_cmd() -> list[str]:
    """The Dockerfile's CMD: what a compose service without a command runs."""
    text = (REPO_ROOT / "deploy" / "Dockerfile").read_text().replace("\\\n", " ")
    return json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))


def _target(command: list[str]) -> str:
    """What a command runs: the app factory (uvicorn) or the module (python -m)."""
    return command[command.index("-m") + 1] if "-m" in command else command[1]


def _design(service: str) -> str | None:
    return next((d for d in design_names() if service == d or service.startswith(f"{d}-")), None)


def test_the_chart_and_docker_compose_yml_run_the_same_components_the_same_way():
    objs = rules.render()
    workloads = {rules.component_of(w): w for w in rules.of_kind(objs, *rules.WORKLOADS)}
    services = {name: s for name, s in COMPOSE.items() if name not in COMPOSE_ONLY}
    apps = {name: s for name, s in services.items() if _design(name) and not name.endswith("-migrate")}

    # Components, by the lab's names: shortener-1..3 are the chart's shortener, postgres-0..1 its shards.
    assert {kind_of(name) for name in services if not name.endswith("-migrate")} == set(workloads)
    assert workloads["postgres"]["spec"]["replicas"] == sum(1 for n in services if kind_of(n) == "postgres")
    assert rules.of_kind(objs, "Ingress"), "the chart's edge stands where compose's caddy does"

    # Both set only names the design's settings class has.
    compose_env = {name: set(s.get("environment", {})) for name, s in services.items() if _design(name)}
    stray = {var for name, env in compose_env.items()
             for var in env if var.removeprefix(f"{_design(name).upper()}_").lower()
             not in rules.settings_class(_design(name)).model_fields}
    assert stray == set()
    assert rules.env_problems(objs) == []

    for name, service in apps.items():
        pod = rules.pod_spec(workloads[kind_of(name)])
        container = pod["containers"][0]
        assert {v["name"] for v in container["env"]} == compose_env[name], name
        assert _target(container["command"]) == _target(service.get("command") or _image_cmd()), name
        assert "/readyz" in " ".join(service["healthcheck"]["test"]) and \
            container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        migrate = COMPOSE[f"{_design(name)}-migrate"]
        init = {c["name"]: c for c in pod["initContainers"]}["migrate"]
        assert init["command"] == migrate["command"], name
        assert {v["name"] for v in init["env"]} == compose_env[f"{_design(name)}-migrate"]

    for part in ("redis", "postgres", "kafka"):
        compose_image = next(s["image"] for n, s in services.items() if kind_of(n) == part)
        assert rules.pod_spec(workloads[part])["containers"][0]["image"] == compose_image, part
