"""Compose mode's actions: up, down, status, logs, chaos, container usage and experiment variants."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import psutil
import yaml

from services.lab import lab_secrets
from services.lab.backends.compose import project as compose_project
from services.lab.backends.compose import replicas as compose_replicas
from services.lab.backends.compose import (
    replication_status as compose_replication_status,
)
from services.lab.backends.compose import standin as standin_images
from services.lab.backends.compose.project import Deployment
from services.lab.budgets import memory as memory_rules
from services.lab.budgets import rules as budgets
from services.lab.config import LabSettings
from services.lab.designs import names as design_names
from services.lab.designs import resolve
from services.lab.errors import LabCommandError
from services.lab.state import ComponentStatus, load_state

VERBS = {"kill": ["kill", "-s", "SIGKILL"], "stop": ["stop"], "pause": ["pause"], "resume": ["unpause"],
         "restart": ["restart"]}


def services(dep: Deployment, designs: list[str]) -> list[str]:
    """The services to run for ``designs``: every shared part plus each chosen design's own."""
    listed = compose_project.run(dep, "config", "--services").split()
    others = [d for d in design_names() if d not in designs]
    return [s for s in listed if not any(s.startswith(f"{d}-") for d in others)]


def budget_override(resolved: dict[str, float], memory: dict[str, int] | None = None) -> str:
    """Compose's form of the lab's budgets: ``cpus:`` per service (a CFS quota, as in local mode) and
    ``mem_limit:`` with ``memswap_limit:`` equal (a hard limit that swap cannot get around)."""
    services: dict[str, dict] = {name: {"cpus": cores} for name, cores in resolved.items()}
    for name, size in (memory or {}).items():
        services.setdefault(name, {}).update(mem_limit=size, memswap_limit=size)
    return yaml.safe_dump({"services": dict(sorted(services.items()))})


def _budgets_for(settings: LabSettings, dep: Deployment, chosen: list[str], budget: dict[str, float] | None,
                 memory: dict[str, int] | None) -> None:
    spec = budgets.merge(budgets.parse(settings.budgets), budget)
    memory_spec = budgets.merge(memory_rules.parse(settings.memory_budgets), memory)
    path = settings.state_dir / "compose.budgets.yml"
    path.unlink(missing_ok=True)
    if not spec and not memory_spec:
        return
    resolved = budgets.resolve(spec, chosen, os.cpu_count() or 1) if spec else {}
    limits = memory_rules.resolve(memory_spec, chosen, psutil.virtual_memory().total) if memory_spec else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(budget_override(resolved, limits))
    dep.files.append(str(path))


def up(settings: LabSettings, designs: list[str], *, standin: bool, say: Callable[[str], None],
       budget: dict[str, float] | None = None, memory: dict[str, int] | None = None) -> Deployment:
    names = [d.name for d in resolve(designs)]
    if load_state(settings.state_dir) is not None:
        raise LabCommandError(f"a local lab runs from {settings.state_dir} (and holds the ports); "
                              "run `sdlab down` first")
    files = [str(compose_project.COMPOSE_FILE)]
    if standin:
        standin_images.ensure_base_image(say)
        files.append(str(standin_images.STANDIN_FILE))
    previous = compose_project.recorded(settings)
    project = previous.project if previous else compose_project.default_project()
    # Every design's: the compose file names them all, whichever designs run.
    lab_secrets.ensure(settings.state_dir, resolve([]))
    dep = Deployment(project, files, names, standin, env_file=str(lab_secrets.secrets_path(settings.state_dir)))
    _replicas_for(settings, dep)
    if set(names) != set(design_names()):
        dep.files.append(str(_balancer_for(settings, dep, names)))
    chosen = services(dep, names)
    _budgets_for(settings, dep, chosen, budget, memory)
    say(f"docker compose up -d --build --wait ({len(chosen)} services of {', '.join(names)}; project {project})")
    compose_project.save(settings, dep)  # first: a failed or interrupted up is still taken down by `sdlab down`
    compose_project.run(dep, "up", "-d", "--build", "--wait", "--remove-orphans", *chosen,
                timeout_s=compose_project.UP_TIMEOUT_S, stream=True)
    return dep


def _replicas_for(settings: LabSettings, dep: Deployment) -> None:
    """With ``--replicas N``: the override that adds N streaming replicas per server (:mod:`.compose_replicas`)."""
    path = settings.state_dir / "compose.replicas.yml"
    path.unlink(missing_ok=True)
    if not settings.postgres_replicas:
        return
    config = json.loads(compose_project.run(dep, "config", "--format", "json"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(compose_replicas.override_yaml(config, settings.postgres_replicas, settings.postgres_replication))
    dep.files.append(str(path))


def _balancer_for(settings: LabSettings, dep: Deployment, designs: list[str]) -> Path:
    """An override for a run of some designs only: the balancer waits for those designs' instances
    and checks its health on the first one's port (the file's own waits for every design)."""
    caddy = json.loads(compose_project.run(dep, "config", "--format", "json"))["services"]["caddy"]
    others = [d for d in design_names() if d not in designs]
    depends = {k: v for k, v in (caddy.get("depends_on") or {}).items()
               if not any(k.startswith(f"{d}-") for d in others)}
    ports = [str(caddy["environment"][f"{d.upper()}_PORT"]) for d in design_names()]
    test = [re.sub(rf":({'|'.join(ports)})/", f":{caddy['environment'][f'{designs[0].upper()}_PORT']}/", a)
            for a in caddy["healthcheck"]["test"]]
    depends_yaml = "".join(f"      {k}:\n        condition: {v.get('condition', 'service_started')}\n"
                           for k, v in depends.items())
    path = settings.state_dir / "compose.designs.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Compose's !override replaces what the files before set, where a plain key would merge into it.
    path.write_text("services:\n  caddy:\n    depends_on: !override\n" + depends_yaml
                    + f"    healthcheck:\n      test: !override {json.dumps(test)}\n")
    return path


def down(settings: LabSettings, dep: Deployment, *, volumes: bool) -> str:
    compose_project.run(dep, "down", "--remove-orphans", *(["--volumes"] if volumes else []), timeout_s=300)
    compose_project.record_path(settings).unlink(missing_ok=True)
    variant_path(settings).unlink(missing_ok=True)
    (settings.state_dir / "compose.designs.yml").unlink(missing_ok=True)
    (settings.state_dir / "compose.budgets.yml").unlink(missing_ok=True)
    (settings.state_dir / "compose.replicas.yml").unlink(missing_ok=True)
    return f"took down compose project {dep.project}" + (" and its volumes" if volumes else "")


def status_of(row: dict) -> tuple[str, str]:
    """(lab state, detail) of one container from ``docker compose ps``."""
    state, health = row.get("State", ""), row.get("Health", "")
    if state == "running":
        if health in ("", "healthy"):
            return "ready", health or "running (no healthcheck)"
        return "unready", health
    if state == "paused":
        return "paused", "docker pause"
    return "down", row.get("Status", state)


def status(settings: LabSettings, dep: Deployment):
    state, rows = compose_project.lab_state(settings, dep)
    out = []
    for row in rows:
        c = state.components[row["Service"]]
        if c.kind == "job" and row.get("State") == "exited" and "(0)" in row.get("Status", ""):
            continue  # a migration that finished
        lab_state, detail = status_of(row)
        out.append(ComponentStatus(c.name, c.kind, c.pid or None, c.address or row.get("Name", ""), lab_state, detail))
    compose_replication_status.annotate(state, out)
    return state, out


def logs(dep: Deployment, service: str, lines: int, follow: bool) -> None:
    cmd = compose_project.command(dep, "logs", "--no-color", "--tail", str(lines), *(["-f"] if follow else []), service)
    try:
        subprocess.run(cmd, check=False)
    except KeyboardInterrupt:
        pass


def chaos(dep: Deployment, action: str, service: str) -> str:
    if action == "switchover":
        raise LabCommandError("switchover needs local mode (`sdlab up --replicas N`, Patroni): compose replicas are "
                              "plain streaming replicas, and nothing promotes one, on request or on failure")
    if action not in VERBS:
        raise LabCommandError(f"{action} is local mode only; in compose mode choose from {', '.join(VERBS)} "
                              "(or a Toxiproxy toxic, e.g. `sdlab chaos toxic postgres-0 latency`)")
    known = compose_project.run(dep, "config", "--services").split()
    if service not in known:
        raise LabCommandError(f"unknown service {service!r}; choose from: {', '.join(known)}")
    compose_project.run(dep, *VERBS[action], service, timeout_s=120)
    return f"{action}: {service} (docker compose {' '.join(VERBS[action])} {service})"


def container_usage(dep: Deployment) -> dict[str, tuple[float, float]]:
    """CPU% (100 = one core) and memory MiB of each running service's container, from ``docker stats``
    (the engine samples twice, ~1-2 s apart, for the CPU figure)."""
    service_of = {r["Name"]: r["Service"] for r in compose_project.containers(dep) if r.get("State") == "running"}
    if not service_of:
        return {}
    done = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{json .}}", *service_of],
                          capture_output=True, text=True, timeout=60, check=False)
    out = {}
    for line in done.stdout.splitlines():
        row = json.loads(line)
        if row.get("Name") in service_of:
            out[service_of[row["Name"]]] = (_percent(row.get("CPUPerc")), _mib(row.get("MemUsage", "")))
    return out


def _percent(text: str | None) -> float:
    try:
        return round(float((text or "0").rstrip("%")), 1)
    except ValueError:
        return 0.0


_UNITS = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0, "kB": 1e3 / 2**20, "MB": 1e6 / 2**20,
          "GB": 1e9 / 2**20}


def _mib(usage: str) -> float:
    used = usage.split("/")[0].strip()
    for unit in sorted(_UNITS, key=len, reverse=True):
        if used.endswith(unit):
            try:
                return round(float(used[: -len(unit)]) * _UNITS[unit], 1)
            except ValueError:
                return 0.0
    return 0.0


def variant_path(settings: LabSettings) -> Path:
    return settings.state_dir / "compose.variant.yml"


def apply_variant(settings: LabSettings, dep: Deployment, design: str, app_env: dict[str, str],
                  say: Callable[[str], None]) -> None:
    """A variant in compose mode: its environment as an override file, then the design's services
    recreated with it (the shared parts, and their data, stay)."""
    prefix = f"{design.upper()}_"
    ours = [s for s in compose_project.run(dep, "config", "--services").split() if s.startswith(f"{design}-")]
    env = {k: v for k, v in app_env.items() if k.startswith(prefix)}
    path = variant_path(settings)
    files = list(dep.files)
    if env:
        path.write_text(yaml.safe_dump({"services": {s: {"environment": env} for s in ours}}))
        files.append(str(path))
    else:
        path.unlink(missing_ok=True)
    say(f"recreating {len(ours)} {design} service(s)" + (f" with {', '.join(f'{k}={v}' for k, v in env.items())}"
                                                         if env else " with the file's settings"))
    compose_project.run(Deployment(dep.project, files, dep.designs, dep.standin, dep.started_at, dep.env_file),
                "up", "-d", "--wait", "--no-deps", "--force-recreate", *ours, timeout_s=compose_project.UP_TIMEOUT_S)
