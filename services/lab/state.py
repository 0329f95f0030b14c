"""The state file (``.lab/state.json``): what the lab started, so any later command can find it."""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from services.lab.errors import LabCommandError
from services.lab.procs import ProcessRef


@dataclass
class RunningComponent:
    name: str
    kind: str
    address: str
    url: str
    cmd: list[str]
    env: dict[str, str]
    user: str | None
    stop_signal: int
    design: str | None
    data_dir: str | None
    pid: int
    create_time: float
    log: str

    @property
    def ref(self) -> ProcessRef:
        return ProcessRef(self.pid, self.create_time)


@dataclass
class ComponentStatus:
    """A component as ``status`` found it."""

    name: str
    kind: str
    pid: int | None
    address: str
    state: str  # ready | degraded | unready | paused | down | external | external-down
    detail: str = ""
    budget_cores: float | None = None  # its CPU budget (sdlab up --budget); None: unlimited
    memory_budget_bytes: int | None = None  # its memory limit (sdlab up --memory); None: unlimited
    oom_kills: int | None = None  # processes the kernel killed at that limit (None: no memory budget)
    role: str | None = None  # a replicated PostgreSQL member: primary | replica (sync) ...
    lag_bytes: int | None = None  # a replica's replication lag, as Patroni reports it
    lag_s: float | None = None  # the same in seconds (services/lab/replication_status.lag_seconds)


@dataclass
class LabState:
    home: Path
    marker: str
    designs: list[str]
    started_at: float = field(default_factory=time.time)
    components: dict[str, RunningComponent] = field(default_factory=dict)
    external: list[dict[str, str]] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)  # public port per design
    # Compose mode: service name -> the address the host reaches it at (not saved: read back each time).
    aliases: dict[str, str] = field(default_factory=dict)
    # CPU budgets: as asked (names, kinds or prefixes) and as given (cores per component).
    budget_spec: dict[str, float] = field(default_factory=dict)
    budgets: dict[str, float] = field(default_factory=dict)
    # Memory budgets, the same way: as asked and as given (bytes per component).
    memory_spec: dict[str, int] = field(default_factory=dict)
    memory_budgets: dict[str, int] = field(default_factory=dict)
    cgroup_tag: str | None = None

    def dialable(self, text: str) -> str:
        """``text`` (a URL, a list of them) with peers named as the services name them
        (``postgres-0:5432``) put at addresses this host can dial. Local mode: unchanged."""
        if not self.aliases:
            return text
        names = "|".join(map(re.escape, sorted(self.aliases, key=len, reverse=True)))
        return re.sub(rf"(?<![\w.-])({names}):(\d+)", lambda m: f"{self.aliases[m.group(1)]}:{m.group(2)}", text)

    @property
    def path(self) -> Path:
        return state_path(self.home)

    def save(self) -> None:
        data = {
            "marker": self.marker,
            "designs": self.designs,
            "started_at": self.started_at,
            "components": {n: vars(c) for n, c in self.components.items()},
            "external": self.external,
            "ports": self.ports,
            "budget_spec": self.budget_spec,
            "budgets": self.budgets,
            "memory_spec": self.memory_spec,
            "memory_budgets": self.memory_budgets,
            "cgroup_tag": self.cgroup_tag,
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        # Private: the components' environments hold the home's secrets (services.lab.lab_secrets).
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(json.dumps(data, indent=2))
        os.replace(tmp, self.path)  # atomic: a crash never leaves half a state file

    def any_alive(self) -> bool:
        return any(c.ref.alive() for c in self.components.values())


def state_path(home: Path) -> Path:
    return home / "state.json"


def load_state(home: Path) -> LabState | None:
    path = state_path(home)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LabCommandError(f"cannot read {path} ({exc}); run `sdlab down` to clean up") from exc
    return LabState(
        home=home,
        marker=data["marker"],
        designs=data["designs"],
        started_at=data["started_at"],
        components={n: RunningComponent(**c) for n, c in data["components"].items()},
        external=data.get("external", []),
        ports=data.get("ports", {}),
        budget_spec=data.get("budget_spec", {}),
        budgets=data.get("budgets", {}),
        memory_spec=data.get("memory_spec", {}),
        memory_budgets=data.get("memory_budgets", {}),
        cgroup_tag=data.get("cgroup_tag"),
    )


@contextmanager
def exclusive(home: Path) -> Iterator[None]:
    """One state-changing command at a time per lab home."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise LabCommandError(f"another sdlab command is changing the lab in {home}; wait for it to finish") from exc
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
