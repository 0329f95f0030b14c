"""``sdlab top``: a live view of the running stack, refreshed every second.

Per component: its state, CPU% and memory, as its backend samples them (a local process's whole
tree; a container's figures from ``docker stats``); with replicas (``sdlab up --replicas N``), each
PostgreSQL member's role and replication lag in bytes and seconds, as ``sdlab status`` reads them. Per service
process: request rate, p50/p99 and error share from its own ``/metrics`` histograms. Then each
design's own gauges, from its plugin. This is how a user watches the bottleneck move
while ``sdlab load`` runs in another terminal.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field

import httpx
from rich.console import Group
from rich.live import Live
from rich.table import Table

from services.lab.backends.base import Backend, BudgetReader, ResourceSampler
from services.lab.budgets import memory as memory_budgets
from services.lab.designs import plugin_for
from services.lab.measure.metrics_window import MetricsWindow
from services.lab.state import LabState
from services.lab.ui import STATE_STYLE, console


@dataclass
class ComponentRow:
    name: str
    state: str
    pid: int | None
    cpu_percent: float | None  # 100 = one core
    rss_mib: float | None
    budget_cores: float | None = None  # its CPU budget; None: unlimited
    throttled: float | None = None  # share of its budget's periods the kernel stopped it (0-1)
    role: str | None = None  # a replicated PostgreSQL member: primary | replica (sync) ...
    lag_bytes: int | None = None
    lag_s: float | None = None
    memory_budget_bytes: int | None = None  # its memory limit; None: unlimited
    oom_kills: int | None = None  # processes of it the kernel killed at that limit


_REPLICATION_FIELDS = ("role", "lag_bytes", "lag_s")


@dataclass
class ServiceRow:
    name: str
    design: str
    rps: float | None
    p50_ms: float | None
    p99_ms: float | None
    errors: float | None
    in_flight: float | None


@dataclass
class Frame:
    seconds: float
    components: list[ComponentRow] = field(default_factory=list)
    services: list[ServiceRow] = field(default_factory=list)
    gauges: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


async def _scrape(state: LabState) -> dict[str, str]:
    apps = [c for c in state.components.values() if c.kind == "app"]
    async with httpx.AsyncClient(timeout=1.0) as client:
        async def one(c) -> tuple[str, str | None]:
            try:
                return c.name, (await client.get(f"{c.url}/metrics")).text
            except httpx.HTTPError:
                return c.name, None  # killed or paused: shown as "-"
        return {name: text for name, text in await asyncio.gather(*(one(c) for c in apps)) if text is not None}


def _gauges(state: LabState, window: MetricsWindow) -> dict[str, list[tuple[str, str]]]:
    found = {}
    for design in state.designs:
        names = {c.name for c in state.components.values() if c.design == design}
        own = MetricsWindow({k: v for k, v in window.before.items() if k in names},
                            {k: v for k, v in window.after.items() if k in names}, window.seconds)
        found[design] = plugin_for(design).gauges(own)
    return found


def frame(backend: Backend, usage: ResourceSampler, before: dict[str, str],
          started: float, budgets: BudgetReader | None = None) -> tuple[Frame, dict[str, str], float]:
    """A frame over the window since ``before`` was scraped at ``started``; returns it, the new scrape
    and when it was taken (the start of the next window)."""
    state, statuses = backend.status()
    after = asyncio.run(_scrape(state))
    scraped = time.monotonic()
    seconds = scraped - started
    window = MetricsWindow(before, after, seconds)
    used = usage.sample(state)
    throttling = budgets.sample() if budgets is not None else {}
    out = Frame(round(seconds, 2))
    for s in statuses:
        cpu, rss = used.get(s.name, (None, None))
        out.components.append(ComponentRow(s.name, s.state, s.pid, cpu, rss, s.budget_cores,
                                           throttling.get(s.name, {}).get("throttled"), s.role, s.lag_bytes,
                                           s.lag_s, s.memory_budget_bytes, s.oom_kills))
    for c in state.components.values():
        if c.kind == "app":
            http = window.http([c.name]) if c.name in after and c.name in before else {}
            out.services.append(ServiceRow(c.name, c.design or "", http.get("rps"), http.get("p50_ms"),
                                           http.get("p99_ms"), http.get("errors"), http.get("in_flight")))
    out.gauges = _gauges(state, window)
    return out, after, scraped


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _of_memory(c: ComponentRow) -> str:
    """The tree's RSS as a share of its memory budget: ``81 of 256 MiB``, with its OOM kills if any."""
    if c.memory_budget_bytes is None:
        return "-"
    share = None if c.rss_mib is None else 100 * c.rss_mib * 2**20 / c.memory_budget_bytes
    kills = f", {c.oom_kills} OOM kill(s)" if c.oom_kills else ""
    return f"{_num(share, '.0f')} of {memory_budgets.show(c.memory_budget_bytes)}{kills}"


def replicated(f: Frame) -> bool:
    return any(c.role is not None for c in f.components)


def as_dict(f: Frame) -> dict:
    """The frame ``--json`` prints: a stack without replicas has no replication fields."""
    out = asdict(f)
    if not replicated(f):
        for row in out["components"]:
            for name in _REPLICATION_FIELDS:
                del row[name]
    return out


def render(f: Frame) -> Group:
    parts = Table(title=f"System Design Lab: components (CPU: 100% = one core; window {f.seconds:.1f} s)",
                  title_justify="left")
    budgeted = any(c.budget_cores is not None for c in f.components)
    memory_budgeted = any(c.memory_budget_bytes is not None for c in f.components)
    with_replicas = replicated(f)
    columns = [("component", "left"), ("state", "left"), ("pid", "right"), ("CPU %", "right"), ("RSS MiB", "right")]
    columns += [("CPU % of budget", "right"), ("throttled %", "right")] if budgeted else []
    columns += [("RSS % of memory budget", "right")] if memory_budgeted else []
    columns += [("role", "left"), ("lag B", "right"), ("lag s", "right")] if with_replicas else []
    for col, justify in columns:
        parts.add_column(col, justify=justify)
    for c in f.components:
        style = STATE_STYLE.get(c.state, "")
        cells = [c.name, f"[{style}]{c.state}[/]", str(c.pid or "-"), _num(c.cpu_percent, ".0f"), _num(c.rss_mib, ".0f")]
        if budgeted:
            of_budget = (None if c.budget_cores is None or c.cpu_percent is None
                         else c.cpu_percent / c.budget_cores)
            cells += [_num(of_budget, ".0f") + ("" if c.budget_cores is None else f" of {c.budget_cores:g}"),
                      _num(None if c.throttled is None else 100 * c.throttled, ".0f")]
        if memory_budgeted:
            cells.append(_of_memory(c))
        if with_replicas:
            cells += [c.role or "-", _num(c.lag_bytes, ","), _num(c.lag_s, ".1f")]
        parts.add_row(*cells)
    services = Table(title="services (from each process's /metrics)", title_justify="left")
    for col in ("service", "req/s", "p50 ms", "p99 ms", "errors %", "in flight"):
        services.add_column(col, justify="left" if col == "service" else "right")
    for s in f.services:
        services.add_row(s.name, _num(s.rps, ",.0f"), _num(s.p50_ms, ".2f"), _num(s.p99_ms, ".2f"),
                         _num(None if s.errors is None else 100 * s.errors, ".2f"), _num(s.in_flight, ".0f"))
    tables = [parts, services]
    for design, rows in f.gauges.items():
        gauges = Table(title=f"{design}", title_justify="left", show_header=False)
        gauges.add_column("gauge")
        gauges.add_column("value", justify="right")
        for label, value in rows:
            gauges.add_row(label, value)
        tables.append(gauges)
    return Group(*tables)


def run_top(backend: Backend, *, once: bool = False, as_json: bool = False, interval_s: float = 1.0) -> None:
    state = backend.watched_state()
    usage = backend.usage()
    budgets = backend.budget_sampler(state)
    usage.sample(state)  # CPU% counts from here
    before = asyncio.run(_scrape(state))
    started = time.monotonic()
    if once:
        time.sleep(interval_s)
        f, _, _ = frame(backend, usage, before, started, budgets)
        if as_json:
            console.file.write(json.dumps(as_dict(f), indent=2) + "\n")
        else:
            console.print(render(f))
        return
    with Live(console=console, refresh_per_second=4, screen=False) as live:
        try:
            while True:
                time.sleep(interval_s)
                f, before, started = frame(backend, usage, before, started, budgets)
                live.update(render(f))
        except KeyboardInterrupt:
            return
