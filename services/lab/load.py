"""``sdlab load``: one load run against the running stack, with a live progress line.

Three generators, one output: Locust (closed loop, simulated users: user behaviour), k6 (open
loop at an arrival rate: the latencies to quote), or a design's own open-loop generator where k6
drives its protocol poorly (:mod:`services.lab.script_driver`). Either way the run writes
``results/<timestamp>-<name>/`` with a per-second timeline (``timeline.jsonl``, with the CPU and memory of
every component and of the load generator), a scrape of every service's ``/metrics`` before and
after, the generator's own output, and ``summary.json`` with the same fields.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from services.lab import bottleneck, metrics_scrape
from services.lab.config import REPO_ROOT, LabSettings
from services.lab.cost import CostMeter, cost_per_op
from services.lab.cpu import CpuSampler
from services.lab.designs import plugin_for
from services.lab.errors import LabCommandError
from services.lab.faults import FaultRunner, FaultStep, parse_schedule, windows
from services.lab.k6_driver import K6Driver, rate_stages
from services.lab.local_budgets import BudgetSampler
from services.lab.locust_driver import SHAPES as LOCUST_SHAPES, LocustDriver
from services.lab.machine import invoked_command, machine_spec
from services.lab.plugin import RunContext, Verification
from services.lab.script_driver import ScriptDriver
from services.lab.state import load_state
from services.lab.supervisor import require_state

GENERATORS = ("locust", "k6", "script")
CLOSED_LOOP_NOTE = ("Locust is closed-loop: a user waits for each answer, so a slow server lowers the load it gets "
                    "(coordinated omission), and at low rates Locust's own scheduling dominates its latencies. "
                    "Quote latencies from open-loop (k6) runs.")
OPEN_LOOP_NOTE = ("The load ran open-loop: requests started on schedule whether or not earlier ones had finished; "
                  "those the generator could not start are counted as dropped.")
GENERATOR_LABELS = {"k6": "k6, open loop", "locust": "Locust, closed loop",
                    "script": "the design's own generator, open loop"}


def generator_label(summary: dict) -> str:
    return GENERATOR_LABELS.get(summary.get("generator", ""), str(summary.get("generator")))


@dataclass
class LoadSpec:
    design: str
    name: str = "load"
    # "locust": closed loop, ``users`` simulated users; "k6" or "script" (the design's own
    # generator): open loop at ``rate``.
    generator: str = "locust"
    users: int = 50
    rate: float | None = None  # requests/s to offer; Locust: paced users (None: as fast as answers come)
    duration_s: float = 30.0
    shape: str | None = None
    read_weight: int = 10
    write_weight: int = 1
    zipf_s: float = 1.1  # popularity skew of the seeded items
    seed_count: int = 2000  # items the design's seeder creates before the run
    faults: str = ""
    warm: bool = False  # read every seeded item once before the load (so every one is warm)
    # Open loop: the most requests in flight; past it k6 drops iterations (counted) instead of
    # queueing them, which bounds a run offered more than the service can take. None: ~rate.
    max_vus: int | None = None
    # Design-specific knobs (group sizes, who stops reading, ...), passed to the seeder and to
    # the generators as SDLAB_OPT_<KEY>; the engine does not read them.
    options: dict[str, str] = field(default_factory=dict)

    @property
    def open_loop(self) -> bool:
        return self.generator != "locust"


@dataclass
class LoadResult:
    out_dir: Path
    summary: dict
    timeline: list[dict] = field(default_factory=list)


def results_dir(name: str, root: Path) -> Path:
    out = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    out.mkdir(parents=True, exist_ok=False)
    return out


def _seed(plugin, ctx: RunContext, spec: LoadSpec, previous: Path | None) -> Path:
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


def _driver(plugin, spec: LoadSpec, host: str, out: Path, env: dict[str, str], bind: str):
    if spec.generator == "k6":
        if spec.max_vus:
            env = {**env, "SDLAB_MAX_VUS": str(spec.max_vus)}
        return K6Driver(plugin.k6_script, host, out, env, rate=spec.rate or 0, duration_s=spec.duration_s,
                        shape=spec.shape, bind=bind)
    if spec.generator == "script":
        if not getattr(plugin, "script_module", None):
            raise LabCommandError(f"design {spec.design!r} has no open-loop generator of its own; use k6")
        return ScriptDriver(plugin.script_module, host, out, env, rate=spec.rate or 0, duration_s=spec.duration_s,
                            shape=spec.shape)
    if spec.generator == "locust":
        return LocustDriver(plugin.locustfile, host, out, env, users=spec.users, rate=spec.rate,
                            duration_s=spec.duration_s, shape=spec.shape)
    raise AssertionError(spec.generator)  # check_spec refused it


def progress_line(t: float, seconds: list[dict], cpu: dict[str, float]) -> str:
    last = seconds[-1] if seconds else {}
    reqs, fails = last.get("requests", 0), last.get("failures", 0)
    fail_pct = 100.0 * fails / reqs if reqs else 0.0
    p50, p99 = last.get("p50_ms"), last.get("p99_ms")
    lat = f"p50 {p50:6.1f}ms p99 {p99:7.1f}ms" if p50 is not None else "p50      - p99       -"
    dropped = f"  dropped {last['dropped']:4d}" if last.get("dropped") else ""
    return (f"[{t:5.0f}s] users {last.get('users') or 0:4d}  rps {reqs:6d}  {lat}  fail {fail_pct:5.1f}%{dropped}  "
            f"generator cpu {cpu.get('load-generator', 0):3.0f}%")


def fill(seconds: list[dict], duration_s: float) -> list[dict]:
    """One row per second from the start, zero where nothing completed (a hang shows as a gap)."""
    by_t = {s["t"]: s for s in seconds}
    rows = []
    for i in range(int(duration_s)):  # the last, partial second would read as a drop
        row = by_t.get(i, {"requests": 0, "failures": 0, "p50_ms": None, "p99_ms": None, "users": None, "by_name": {}})
        rows.append({**row, "t": i})
    return rows


TAIL_S = 1.0  # after the generator ends, the stack's trailing work still counts


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
) -> LoadResult:
    """Seed, load, sample, summarize. ``seed_file``: the seed of the run before on the same stack, reused."""
    state = require_state(settings)
    if spec.design not in state.designs:
        raise LabCommandError(f"design {spec.design!r} is not running; start it with `sdlab up {spec.design}`")
    plugin = plugin_for(spec.design)
    check_spec(spec)
    design_actions = getattr(plugin, "fault_actions", {})
    steps = parse_schedule(spec.faults, spec.duration_s, design_actions) if spec.faults else []
    out = out or results_dir(spec.name, settings.results)
    out.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(settings, state, spec.design, out, say)
    host = ctx.base_url
    env = {"SDLAB_ACK_LOG": str(out / "acks.jsonl"), "SDLAB_READ_WEIGHT": str(spec.read_weight),
           "SDLAB_WRITE_WEIGHT": str(spec.write_weight), "SDLAB_ZIPF_S": str(spec.zipf_s), "PYTHONPATH": str(REPO_ROOT),
           **{f"SDLAB_OPT_{key.upper()}": str(value) for key, value in spec.options.items()}}
    driver = _driver(plugin, spec, host, out, env, settings.host)  # validates the spec before seeding
    say(f"results: {out}")
    driver.env["SDLAB_SEED_FILE"] = str(_seed(plugin, ctx, spec, seed_file))
    before = metrics_scrape.scrape(state, spec.design, out / "metrics", "before")
    meter = CostMeter(state)
    idle = _idle(meter, settings.cost_idle_s)

    # One start instant for the timeline (wall clock) and the faults (monotonic).
    t0_wall, t0 = time.time(), time.monotonic()
    run_start = meter.read()
    proc = driver.start(t0_wall, REPO_ROOT)
    sampler = CpuSampler(state, psutil.Process(proc.pid))
    budget_sampler = BudgetSampler(state)
    runner = None
    if steps:
        if apply_fault is None:
            from services.lab.chaos import local_chaos
            from services.lab.compose import recorded
            from services.lab.compose_stack import chaos as compose_chaos

            deployment = recorded(settings)

            def apply_fault(step: FaultStep) -> str:
                if step.action in design_actions:  # the design's own (its argument in place of a component)
                    return design_actions[step.action](ctx, step.component)
                if deployment is not None:
                    return compose_chaos(deployment, step.action, step.component)
                return local_chaos(settings, step.action, step.component, argument=step.argument)

        runner = FaultRunner(steps, apply_fault, on_event=say)
        runner.start(t0)
    seconds: list[dict] = []
    cpu_rows: list[dict] = []
    rss_rows: dict[int, dict[str, float]] = {}
    machine_rows: dict[int, float | None] = {}
    budget_rows: dict[int, dict] = {}
    last_print = 0.0
    interactive = sys.stdout.isatty()
    marks: dict = {}  # the generator's checkpoints (its operations' start and end): the stack's readings then
    try:
        while proc.poll() is None:
            for _ in range(10):
                time.sleep(0.1)
                name = driver.pending_checkpoint()
                if name is not None:
                    marks[name] = meter.read()
                    driver.release(name)
            if not state.marker.startswith("compose:"):
                now_state = load_state(settings.state_dir)
                sampler.refresh(now_state)
                meter.refresh(now_state)
            elif len(cpu_rows) % 5 == 4:  # containers a fault restarted: asking the engine costs ~0.1 s
                now_state = require_state(settings)
                sampler.refresh(now_state)
                meter.refresh(now_state)
            cpu = sampler.sample()
            cpu_rows.append({"t": int(time.time() - t0_wall), **cpu})
            rss_rows[cpu_rows[-1]["t"]] = sampler.rss_mib
            machine_rows[cpu_rows[-1]["t"]] = sampler.machine_percent
            budget_rows[cpu_rows[-1]["t"]] = budget_sampler.sample()
            seconds += driver.take()
            elapsed = time.monotonic() - t0
            line = progress_line(elapsed, seconds, cpu)
            if interactive:
                sys.stdout.write("\r" + line)
                sys.stdout.flush()
            elif elapsed - last_print >= 5:
                say(line)
                last_print = elapsed
    except BaseException:
        proc.terminate()  # interrupted: stop the generator, keep no half-written summary
        proc.wait(timeout=30)
        raise
    finally:
        if interactive:
            sys.stdout.write("\n")
    seconds += driver.finish()
    elapsed = time.monotonic() - t0
    # The work a run leaves behind (an outbox relayed, a consumer's last batch) is its cost too.
    time.sleep(TAIL_S)
    if not state.marker.startswith("compose:"):
        meter.refresh(load_state(settings.state_dir) or state)
    run_end = meter.read()
    after = metrics_scrape.scrape(state, spec.design, out / "metrics", "after")
    timeline = fill(seconds, elapsed)
    cpu_by_t = {row["t"]: row for row in cpu_rows}
    for row in timeline:
        row["cpu"] = {k: v for k, v in cpu_by_t.get(row["t"], {}).items() if k != "t"}
        row["rss_mib"] = rss_rows.get(row["t"], {})
        row["machine_cpu"] = machine_rows.get(row["t"])  # % of all cores, every process on the machine
        if state.budgets:  # per budgeted component: cores used, share of its periods throttled
            row["budget"] = budget_rows.get(row["t"], {})
    (out / "timeline.jsonl").write_text("".join(json.dumps(r) + "\n" for r in timeline))
    summary = summarize(spec, driver, timeline, seconds, elapsed, before, after, runner)
    op, ops = plugin.cost_unit(spec, summary)
    window = (marks.get("start", run_start), marks.get("end", run_end))
    summary["cost_per_op"] = cost_per_op(idle, window, op, ops, meter.unavailable)
    summary["budgets"] = dict(state.budgets)
    summary["bottleneck"] = bottleneck.name(bottleneck.usage_over(timeline, state.budgets),
                                            bottleneck.machine_share(timeline))
    # The wall-clock instant of t=0 (of the timeline and the fault times), to place what the
    # generator itself logged with its own timestamps (acks.jsonl) on the same axis.
    summary["started_at"] = t0_wall
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return LoadResult(out, summary, timeline)


def verify(settings: LabSettings, result: LoadResult, *, say: Callable[[str], None] = print) -> Verification:
    """The design's checks after a run (lost acknowledged writes, invariants), kept in the summary."""
    state = require_state(settings)
    design = result.summary["spec"]["design"]
    ctx = RunContext(settings, state, design, result.out_dir, say)
    verification = plugin_for(design).verify(ctx, result)
    result.summary["loss"] = verification.figures
    result.summary["checks"] = [asdict(c) for c in verification.checks]
    (result.out_dir / "summary.json").write_text(json.dumps(result.summary, indent=2, default=str))
    for check in verification.checks:
        say(f"  [{'x' if check.passed else ' '}] {check.description}" + (f" ({check.detail})" if check.detail else ""))
    return verification


def summarize(spec: LoadSpec, driver, timeline: list[dict], seconds: list[dict], elapsed: float,
              before, after, runner) -> dict:
    totals = driver.totals(seconds)
    total = totals["total"]
    gen_cpu = [r["cpu"].get("load-generator", 0) for r in timeline if r.get("cpu")]
    # k6 reports its own rate over the scenario; Locust's run time is the wall time of the process.
    achieved = total.get("rps") if spec.open_loop else (total["requests"] / elapsed if elapsed else 0)
    summary = {
        "name": spec.name,
        "spec": asdict(spec),
        "machine": machine_spec(),
        "command": invoked_command(),
        "generator": driver.kind,
        "loop": "open" if spec.open_loop else "closed",
        "latency_note": OPEN_LOOP_NOTE if spec.open_loop else CLOSED_LOOP_NOTE,
        "duration_s": round(elapsed, 1),
        "offered": driver.offered,
        "offered_rps": spec.rate,
        "achieved_rps": round(achieved or 0, 1),
        "generator_cpu_avg": round(sum(gen_cpu) / len(gen_cpu), 1) if gen_cpu else None,
        "generator_cpu_max": max(gen_cpu) if gen_cpu else None,
        "requests": total.get("requests", 0),
        "failures": total.get("failures", 0),
        "p50_ms": total.get("p50_ms"),
        "p95_ms": total.get("p95_ms"),
        "p99_ms": total.get("p99_ms"),
        "endpoints": totals["endpoints"],
        "server": metrics_scrape.delta(before, after),
        "instances_scraped": sorted(after),
    }
    if spec.open_loop:
        summary["dropped_iterations"] = totals.get("dropped_iterations", 0)
        summary["vus_max"] = totals.get("vus_max")
        if totals.get("timeline_error"):
            summary["timeline_error"] = totals["timeline_error"]
    if runner is not None:
        summary["faults"] = [{"at_s": round(t, 1), "action": s.action, "component": s.component} for t, s in runner.log]
        summary["fault_windows"] = [asdict(w) for w in windows(runner.log)]
        summary["fault_errors"] = runner.errors
    return summary
