"""The local backend's supervisor: start, watch and stop the stack's processes (``up``, ``down``, ``status``)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from services.lab import lab_secrets, procs
from services.lab.backends.local import throttle
from services.lab.backends.local.prepare import prepare, prepare_caddy
from services.lab.backends.local.probes import try_probe
from services.lab.budgets import local as local_budgets
from services.lab.budgets import memory as memory_budgets
from services.lab.budgets import rules as budgets
from services.lab.config import REPO_ROOT, LabSettings
from services.lab.contract import Design
from services.lab.designs import resolve
from services.lab.errors import LabCommandError
from services.lab.progress import EventSink, quiet
from services.lab.replication import members as replicated_stack
from services.lab.stack import Component, StackPlan, plan_stack, postgres_component
from services.lab.state import (
    LabState,
    RunningComponent,
    exclusive,
    load_state,
)


def _port_setting(component: Component) -> str:
    return {
        "redis": "SDLAB_REDIS_PORT",
        "postgres": "SDLAB_POSTGRES_PORT",
        "kafka": "SDLAB_KAFKA_PORT",
        "etcd": "SDLAB_ETCD_PORT",
        "app": "SDLAB_APP_PORT",
    }.get(component.kind, f"SDLAB_{(component.design or '').upper()}_PORT")


def _check_ports_free(plan: StackPlan, balancer_ports: dict[str, int], host: str) -> None:
    wanted = [(c.name, c.port, _port_setting(c)) for c in plan.infra + plan.apps]
    wanted += replicated_stack.side_ports(plan.infra)
    wanted += [(f"caddy ({d})", p, f"SDLAB_{d.upper()}_PORT") for d, p in balancer_ports.items()]
    for name, port, setting in wanted:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # As servers do: connections of an earlier run in TIME_WAIT do not hold the port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                raise LabCommandError(
                    f"port {port} for {name} is already in use; stop what holds it or pick another with {setting}=<port>"
                ) from None


def _child_env(state: LabState, component: Component | RunningComponent) -> dict[str, str]:
    return {**os.environ, **component.env, procs.MARKER_ENV: state.marker}


def start_component(state: LabState, component: Component, on_event: EventSink) -> RunningComponent:
    log = state.home / "logs" / f"{component.name}.log"
    on_event(component.name, "starting", component.address)
    cmd, user = local_budgets.command(state, component.name, component.cmd, component.user)
    ref = procs.spawn(cmd, log_path=log, env=_child_env(state, component), cwd=REPO_ROOT, user=user)
    running = RunningComponent(**component.to_dict(), pid=ref.pid, create_time=ref.create_time, log=str(log))
    state.components[component.name] = running
    state.save()  # written at once: a crash of `up` from here on still lets `down` find it
    return running


def _log_tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, "rb") as fh:
            return "\n".join(fh.read().decode(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


async def wait_ready(components: list[RunningComponent], timeout_s: float, on_event: EventSink) -> None:
    async def one(c: RunningComponent) -> None:
        start = time.monotonic()
        reason = "not probed yet"
        while time.monotonic() - start < timeout_s:
            if not c.ref.alive():
                raise LabCommandError(
                    f"{c.name} exited while starting; see `sdlab logs {c.name}`. Last lines:\n{_log_tail(c.log)}"
                )
            state, reason = await try_probe(c.kind, c.address, c.url)
            if state == "ready":
                on_event(c.name, "ready", f"{time.monotonic() - start:.1f}s")
                return
            on_event(c.name, "waiting", reason)
            await asyncio.sleep(0.1)
        raise LabCommandError(f"{c.name} not ready after {timeout_s:.0f}s ({reason}); see `sdlab logs {c.name}`")

    await asyncio.gather(*(one(c) for c in components))


def _migrate(design: Design, env: dict[str, str], state: LabState, on_event: EventSink) -> None:
    if design.migrate_module is None:
        return
    name = f"{design.name}-migrate"
    on_event(name, "starting", "schema")
    log = state.home / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "ab") as out:
        result = subprocess.run(
            [sys.executable, "-m", design.migrate_module],
            env={**os.environ, **env, procs.MARKER_ENV: state.marker},
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=120,
        )
    if result.returncode != 0:
        raise LabCommandError(f"schema migration for {design.name} failed; see {log}. Last lines:\n{_log_tail(str(log))}")
    on_event(name, "ready", f"{time.monotonic() - start:.1f}s")


def up(
    settings: LabSettings,
    design_names: list[str],
    on_event: EventSink = quiet,
    app_env: dict[str, str] | None = None,
    budget: dict[str, float] | None = None,
    memory: dict[str, int] | None = None,
) -> LabState:
    """Start the stack and return once every component is ready (like ``docker compose up -d``); ``budget``
    (NAME=cores) and ``memory`` (NAME=bytes), over SDLAB_BUDGETS and SDLAB_MEMORY_BUDGETS, put parts in cgroups."""
    designs = resolve(design_names)
    home = settings.state_dir
    with exclusive(home):
        existing = load_state(home)
        plan = plan_stack(settings, designs, app_env, lab_secrets.ensure(home, designs))
        if existing is not None and existing.any_alive():
            wanted = {c.name for c in plan.components}
            if set(existing.components) == wanted and all(c.ref.alive() for c in existing.components.values()):
                return existing  # already up as asked: like compose, nothing to do
            raise LabCommandError(
                f"a lab is already running from {home} ({', '.join(existing.designs) or 'no designs'}); "
                "run `sdlab down` first"
            )
        procs.kill_marked(str(home))  # leftovers of a crashed run that never wrote its state
        ports = {d.name: settings.design_port(d) for d in designs}
        _check_ports_free(plan, ports, settings.host)
        state = LabState(home=home, marker=str(home), designs=[d.name for d in designs], ports=ports)
        state.external = [vars(e) for e in plan.external]
        local_budgets.apply(state, budgets.merge(budgets.parse(settings.budgets), budget),
                            [c.name for c in plan.components],
                            budgets.merge(memory_budgets.parse(settings.memory_budgets), memory))
        state.save()
        try:
            for component in plan.infra:
                prepare(component, home)
            for stage in replicated_stack.start_stages(plan.infra):
                started = [start_component(state, c, on_event) for c in stage]
                asyncio.run(wait_ready(started, settings.ready_timeout_s, on_event))
            for design in designs:
                _migrate(design, plan.design_env[design.name], state, on_event)
            apps = [start_component(state, c, on_event) for c in plan.apps]
            asyncio.run(wait_ready(apps, settings.ready_timeout_s, on_event))
            if plan.balancer is not None:
                # Started last: connections refused by instances still starting would count as
                # passive failures and keep them out of the pool for fail_duration.
                prepare_caddy(home, designs)
                balancer = start_component(state, plan.balancer, on_event)
                asyncio.run(wait_ready([balancer], settings.ready_timeout_s, on_event))
        except BaseException:
            _stop_all(state, on_event)  # like compose: a failed `up` leaves nothing running
            raise
        return state


def add_postgres(settings: LabSettings, total: int, on_event: EventSink = quiet) -> list[str]:
    """Grow the running lab to ``total`` PostgreSQL servers (started as at ``up``: initdb, then the
    server, then a readiness wait); returns every server's URL, in shard order. Servers are only
    ever added: moving a design's data onto them is the design's business (a command of its own)."""
    home = settings.state_dir
    with exclusive(home):
        state = require_state(settings)
        present = sorted((c for c in state.components.values() if c.kind == "postgres"),
                         key=lambda c: int(c.name.rsplit("-", 1)[1]))
        if not present:
            raise LabCommandError("this lab uses existing PostgreSQL servers (DATABASE_URLS); add servers there")
        if any(replicated_stack.is_patroni(c.env) for c in present):
            raise LabCommandError("adding shards to a lab with replicas is not supported yet; "
                                  "start it with as many as needed (`sdlab up --shards N --replicas R`)")
        added = []
        for shard in range(len(present), total):
            component = postgres_component(settings, shard)
            prepare(component, home)
            added.append(start_component(state, component, on_event))
        if added:
            asyncio.run(wait_ready(added, settings.ready_timeout_s, on_event))
        return [c.url for c in present] + [c.url for c in added]


def _stop_all(state: LabState, on_event: EventSink) -> list[str]:
    tiers = [
        [c for c in state.components.values() if c.kind == "caddy"],
        [c for c in state.components.values() if c.kind == "app"],
        [c for c in state.components.values() if c.kind not in ("caddy", "app", "etcd")],
        # Last: Patroni members without their DCS would retry it (retry_timeout) before stopping.
        [c for c in state.components.values() if c.kind == "etcd"],
    ]
    stopped: list[str] = []
    throttle.end_all(state.home)  # first: a throttler would stop a component again while it shuts down

    def stop_one(c: RunningComponent) -> None:
        procs.stop(c.ref, c.stop_signal)
        on_event(c.name, "stopped", "")
        stopped.append(c.name)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for tier in tiers:
            list(pool.map(stop_one, tier))
    procs.kill_marked(state.marker)
    local_budgets.release(state.home)
    state.path.unlink(missing_ok=True)
    return stopped


def down_if_running(settings: LabSettings, say: Callable[[str], None], why: str) -> None:
    """Experiments and the benchmark start stacks of their own: stop a running lab first, saying so."""
    if load_state(settings.state_dir) is not None:
        say(f"stopping the running lab: {why}")
        down(settings)


def down(settings: LabSettings, on_event: EventSink = quiet) -> list[str]:
    """Stop everything the lab started in this home, even after a crash of ``up``."""
    home = settings.state_dir
    with exclusive(home):
        state = load_state(home)
        if state is None:
            swept = procs.kill_marked(str(home))
            local_budgets.release(home)
            return [f"{swept} stray process(es)"] if swept else []
        return _stop_all(state, on_event)


def experiment_home(settings: LabSettings) -> Path:
    """Where experiments run their stacks (on fresh data, beside the user's own lab)."""
    return settings.state_dir / "experiment"


def watched_state(settings: LabSettings) -> LabState:
    """The lab to watch (``status``, ``top``): this home's, or else that of an experiment running
    from it (experiments run their stacks in ``<home>/experiment``, on fresh data)."""
    state = load_state(settings.state_dir)
    if state is None:
        state = load_state(experiment_home(settings))
    if state is None:
        return require_state(settings)
    return state


def require_state(settings: LabSettings) -> LabState:
    """The lab's local processes, which must run."""
    state = load_state(settings.state_dir)
    if state is None:
        raise LabCommandError(f"the lab is not running (no state in {settings.state_dir}); start it with `sdlab up` "
                               "(or `sdlab up --compose`)")
    return state
