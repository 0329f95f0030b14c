"""``sdlab load``: one load run against the running stack, with a live progress line.

Three generators, one output: Locust (closed loop, simulated users: user behaviour), k6 (open
loop at an arrival rate: the latencies to quote), or a design's own open-loop generator where k6
drives its protocol poorly (:mod:`services.lab.generators.script_driver`). Either way the run writes
``results/<timestamp>-<name>/`` with a per-second timeline (``timeline.jsonl``, with the CPU and memory of
every component and of the load generator, and with replicas each replica's lag), a scrape of every
service's ``/metrics`` before and after, the generator's own output, and ``summary.json`` with the
same fields.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import psutil

from services.lab.backends.base import Backend, BudgetReader
from services.lab.backends.selection import select_backend
from services.lab.budgets import bottleneck
from services.lab.config import REPO_ROOT, LabSettings
from services.lab.contract import (
    DesignPlugin,
    LoadResult,
    LoadSpec,
    RunContext,
    Skipped,
    Verification,
)
from services.lab.designs import plugin_for
from services.lab.errors import LabCommandError
from services.lab.generators.k6_driver import K6Driver, rate_stages
from services.lab.generators.locust_driver import SHAPES as LOCUST_SHAPES
from services.lab.generators.locust_driver import LocustDriver
from services.lab.generators.script_driver import ScriptDriver
from services.lab.measure import metrics_scrape, table_sizes
from services.lab.measure.cost import CostMeter, cost_per_op
from services.lab.measure.cpu import CpuSampler
from services.lab.measure.faults import FaultRunner, FaultStep, parse_schedule
from services.lab.measure.generator_watch import watch_generator
from services.lab.measure.run_summary import fill, summarize
from services.lab.replication.status import LagSampler

GENERATORS = ("locust", "k6", "script")


def results_dir(name: str, root: Path) -> Path:
    out = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    out.mkdir(parents=True, exist_ok=False)
    return out


def write_seed(plugin: DesignPlugin, ctx: RunContext, spec: LoadSpec, previous: Path | None) -> Path:
    """Seed through the design's plugin and keep the record as ``seed.json``; returns its path."""
    started = time.monotonic()
    record = plugin.seed(ctx, spec, json.loads(previous.read_text()) if previous else None)
    if previous is None:
        ctx.say(f"seeded {spec.seed_count} item(s) in {time.monotonic() - started:.1f}s")
    path = ctx.out_dir / "seed.json"
    path.write_text(json.dumps(record))
    return path


def check_spec(spec: LoadSpec) -> None:
    """Refuse a bad spec before anything runs or is written."""
    if spec.generator not in GENERATORS:
        raise LabCommandError(f"unknown load generator {spec.generator!r}; choose from: {', '.join(GENERATORS)}")
    if spec.open_loop:
        if not spec.rate or spec.rate <= 0:
            raise LabCommandError("open-loop load needs an arrival rate: --rate REQUESTS_PER_S")
        rate_stages(spec.shape or "steady", spec.rate, spec.duration_s)
    elif spec.shape is not None and spec.shape not in LOCUST_SHAPES:
        raise LabCommandError(f"unknown closed-loop shape {spec.shape!r}; choose from: {', '.join(LOCUST_SHAPES)}")


def generator_env(spec: LoadSpec, out: Path) -> dict[str, str]:
    """What every generator reads: where to log acks, the request mix, the design's own knobs."""
    return {"SDLAB_ACK_LOG": str(out / "acks.jsonl"), "SDLAB_READ_WEIGHT": str(spec.read_weight),
            "SDLAB_WRITE_WEIGHT": str(spec.write_weight), "SDLAB_ZIPF_S": str(spec.zipf_s), "PYTHONPATH": str(REPO_ROOT),
            **{f"SDLAB_OPT_{key.upper()}": str(value) for key, value in spec.options.items()}}


def generator_for(plugin: DesignPlugin, spec: LoadSpec, host: str, out: Path, env: dict[str, str], bind: str):
    """The driver of the spec's generator, aimed at ``host``."""
    if spec.max_vus and spec.open_loop:  # k6's and a design's own open-loop generator honour it alike
        env = {**env, "SDLAB_MAX_VUS": str(spec.max_vus)}
    if spec.generator == "k6":
        if plugin.k6_script is None:
            raise LabCommandError(f"design {spec.design!r} has no k6 script; run it closed-loop (Locust)")
        return K6Driver(plugin.k6_script, host, out, env, rate=spec.rate or 0, duration_s=spec.duration_s,
                        shape=spec.shape, bind=bind)
    if spec.generator == "script":
        if plugin.script_module is None:
            raise LabCommandError(f"design {spec.design!r} has no open-loop generator of its own; use k6")
        return ScriptDriver(plugin.script_module, host, out, env, rate=spec.rate or 0, duration_s=spec.duration_s,
                            shape=spec.shape)
    if spec.generator == "locust":
        return LocustDriver(plugin.locustfile, host, out, env, users=spec.users, rate=spec.rate,
                            duration_s=spec.duration_s, shape=spec.shape)
    raise AssertionError(spec.generator)  # check_spec refused it


TAIL_S = 1.0  # after the generator ends, the stack's trailing work still counts


class StackReadings:
    """The lab's stack read beside the generator (:class:`~services.lab.measure.generator_watch.StackSamplers`):
    the cost meter at the generator's checkpoints, each second's memory and CPU budgets, and every
    ``refresh_every_s`` seconds the components found again (those a fault restarted have new pids)."""

    def __init__(self, backend: Backend, sampler: CpuSampler, meter: CostMeter, budgets: BudgetReader) -> None:
        self.backend, self.sampler, self.meter, self.budgets = backend, sampler, meter, budgets
        self.marks: dict = {}  # the generator's checkpoints (its operations' start and end): the stack's readings then
        self.rss_mib: dict[int, dict[str, float]] = {}
        self.budget: dict[int, dict] = {}

    def checkpoint(self, name: str) -> None:
        self.marks[name] = self.meter.read()

    def before_sample(self, tick: int) -> None:
        if tick % self.backend.refresh_every_s == self.backend.refresh_every_s - 1:
            now_state = self.backend.find_state()
            self.sampler.refresh(now_state)
            self.meter.refresh(now_state)

    def after_sample(self, t: int) -> None:
        self.rss_mib[t] = self.sampler.rss_mib
        self.budget[t] = self.budgets.sample()


def _idle(meter: CostMeter, seconds: float) -> list:
    """Readings a second apart for ``seconds`` before the load: the background to subtract."""
    time.sleep(1.0)  # what seeding set off settles first
    readings = [meter.read()]
    for _ in range(max(1, round(seconds))):
        time.sleep(1.0)
        readings.append(meter.read())
    return readings


def run_load(
    settings: LabSettings,
    spec: LoadSpec,
    *,
    say: Callable[[str], None] = print,
    apply_fault: Callable[[FaultStep], str] | None = None,
    out: Path | None = None,
    seed_file: Path | None = None,
    backend: Backend | None = None,
) -> LoadResult:
    """Seed, load, sample, summarize. ``seed_file``: the seed of the run before on the same stack, reused;
    ``backend``: the one the command picked (else picked here)."""
    backend = backend or select_backend(settings)
    state = backend.state()
    if spec.design not in state.designs:
        raise LabCommandError(f"design {spec.design!r} is not running; start it with `sdlab up {spec.design}`")
    plugin = plugin_for(spec.design)
    check_spec(spec)
    design_actions = plugin.fault_actions
    steps = parse_schedule(spec.faults, spec.duration_s, design_actions) if spec.faults else []
    out = out or results_dir(spec.name, settings.results)
    out.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(settings, state, spec.design, out, say)
    host = ctx.base_url
    # Validates the spec before seeding.
    driver = generator_for(plugin, spec, host, out, generator_env(spec, out), settings.host)
    say(f"results: {out}")
    driver.env["SDLAB_SEED_FILE"] = str(write_seed(plugin, ctx, spec, seed_file))
    before = metrics_scrape.scrape(state, spec.design, out / "metrics", "before")
    meter = CostMeter(state)
    idle = _idle(meter, settings.cost_idle_s)

    # One start instant for the timeline (wall clock) and the faults (monotonic).
    t0_wall, t0 = time.time(), time.monotonic()
    run_start = meter.read()
    proc = driver.start(t0_wall, REPO_ROOT)
    sampler = CpuSampler(state, psutil.Process(proc.pid))
    budget_sampler = backend.budget_sampler(state)
    lag_sampler = LagSampler(state, t0_wall)
    runner = None
    if steps:
        if apply_fault is None:
            def apply_fault(step: FaultStep) -> str:
                if step.action in design_actions:  # the design's own (its argument in place of a component)
                    return design_actions[step.action](ctx, step.component)
                return backend.chaos(step.action, step.component, argument=step.argument)

        runner = FaultRunner(steps, apply_fault, on_event=say)
        runner.start(t0)
    stack = StackReadings(backend, sampler, meter, budget_sampler)
    lag_sampler.start()
    try:
        watched = watch_generator(driver, proc, sampler, t0_wall, t0, say, stack)
    finally:
        lag_sampler.stop()
    seconds, elapsed = watched.seconds, watched.elapsed
    # The work a run leaves behind (an outbox relayed, a consumer's last batch) is its cost too.
    time.sleep(TAIL_S)
    meter.refresh(backend.find_state() or state)
    run_end = meter.read()
    after = metrics_scrape.scrape(state, spec.design, out / "metrics", "after")
    timeline = fill(seconds, elapsed)
    for row in timeline:
        reading = watched.readings.get(row["t"], {})
        row["cpu"] = reading.get("cpu", {})
        row["rss_mib"] = stack.rss_mib.get(row["t"], {})
        row["machine_cpu"] = reading.get("machine_cpu")  # % of all cores, every process on the machine
        if state.budgets:  # per budgeted component: cores used, share of its periods throttled
            row["budget"] = stack.budget.get(row["t"], {})
        if lag_sampler.active:  # per replica: its role and replication lag in bytes and seconds
            row["replication"] = lag_sampler.rows.get(row["t"], {})
    (out / "timeline.jsonl").write_text("".join(json.dumps(r) + "\n" for r in timeline))
    summary = summarize(spec, driver, timeline, seconds, elapsed, before, after, runner)
    op, ops = plugin.cost_unit(spec, summary)
    window = (stack.marks.get("start", run_start), stack.marks.get("end", run_end))
    summary["cost_per_op"] = cost_per_op(idle, window, op, ops, meter.unavailable)
    summary["tables"] = table_sizes.measure(state)
    summary["budgets"] = dict(state.budgets)
    summary["memory_budgets"] = dict(state.memory_budgets)  # bytes; beside, not inside, the CPU record
    if state.memory_budgets:  # processes the kernel killed at a memory budget (since the stack started)
        summary["oom_kills"] = {row.name: row.oom_kills for row in backend.status()[1] if row.oom_kills}
    summary["bottleneck"] = bottleneck.name(bottleneck.usage_over(timeline, state.budgets),
                                            bottleneck.machine_share(timeline))
    # The wall-clock instant of t=0 (of the timeline and the fault times), to place what the
    # generator itself logged with its own timestamps (acks.jsonl) on the same axis.
    summary["started_at"] = t0_wall
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return LoadResult(out, summary, timeline)


def verify(settings: LabSettings, result: LoadResult, *, say: Callable[[str], None] = print,
           backend: Backend | None = None) -> Verification:
    """The design's checks after a run (lost acknowledged writes, invariants), kept in the summary."""
    state = (backend or select_backend(settings)).state()
    design = result.summary["spec"]["design"]
    return verify_in(RunContext(settings, state, design, result.out_dir, say), result)


def verify_in(ctx: RunContext, result: LoadResult) -> Verification:
    """The design's checks in ``ctx`` (the lab's stack, or a target: then the checks that need more
    than its public API are skipped, each named with its reason), kept in the summary."""
    plugin = plugin_for(ctx.design)
    verification = plugin.verify(ctx, result)
    result.summary["loss"] = verification.figures
    result.summary["checks"] = [asdict(c) for c in verification.checks]
    skipped = [Skipped(description, reason) for description, reason in plugin.direct_checks.items()] \
        if ctx.target is not None else []
    if skipped:
        result.summary["skipped"] = result.summary.get("skipped", []) + [asdict(s) for s in skipped]
    (result.out_dir / "summary.json").write_text(json.dumps(result.summary, indent=2, default=str))
    for check in verification.checks:
        ctx.say(f"  [{'x' if check.passed else ' '}] {check.description}" + (f" ({check.detail})" if check.detail else ""))
    for s in skipped:
        ctx.say(f"  [-] {s.description}: skipped, {s.reason}")
    return verification
