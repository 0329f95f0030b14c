"""``sdlab load DESIGN --target URL``: a load run at a deployment the lab did not start.

The same generators, seed file and ``summary.json`` as :mod:`services.lab.measure.load`, through the target's
public API only: no stack is started or required, and none is looked for. What needs the lab's own
stack (each instance's ``/metrics``, the CPU of every component, PostgreSQL's counters) is skipped,
and so are the design's checks that need more than the API (its ``direct_checks``); each is named
with a one-line reason in the summary, the report and the output. The checks that read acknowledged
writes back through the API run as on the lab's stack.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from services.lab.config import REPO_ROOT, LabSettings
from services.lab.contract import (
    LoadResult,
    LoadSpec,
    RunContext,
    Skipped,
    Verification,
)
from services.lab.designs import plugin_for
from services.lab.errors import LabCommandError
from services.lab.measure.cpu import CpuSampler
from services.lab.measure.generator_watch import watch_generator
from services.lab.measure.load import (
    check_spec,
    generator_env,
    generator_for,
    results_dir,
    verify_in,
    write_seed,
)
from services.lab.measure.run_summary import fill, summarize

# What a load run measures on the lab's own stack and cannot at a target, and why.
TARGET_SKIPS = (
    Skipped("server metrics (each instance's /metrics, before and after)",
            "the instances behind the target's balancer are not reachable one by one"),
    Skipped("per-component CPU and memory timeline, CPU budgets and bottleneck",
            "the lab samples only the processes it started; the load generator's CPU is kept"),
    Skipped("cost per operation", "needs every component's CPU time and each PostgreSQL server's statement count"),
    Skipped("table sizes", "needs direct PostgreSQL access"),
)
FAULTS_REFUSED = ("--faults needs a stack the lab started (its chaos acts on its own processes); "
                  "break a deployment with its own tools (e.g. kubectl delete pod) while the load runs")


def check_target(url: str) -> str:
    """The deployment's base URL, checked (http or https, a host); without a trailing slash."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise LabCommandError(f"--target wants the deployment's base URL, like http://HOST:PORT, not {url!r}")
    return url.rstrip("/")


def check_target_spec(spec: LoadSpec) -> None:
    """Refuse what a target run cannot do, before anything runs or is written."""
    check_spec(spec)
    if spec.faults:
        raise LabCommandError(FAULTS_REFUSED)


def run_target_load(settings: LabSettings, spec: LoadSpec, target: str, *, say: Callable[[str], None] = print,
                    out: Path | None = None) -> LoadResult:
    """Seed through the target's API, load it, summarize what the generator saw."""
    target = check_target(target)
    plugin = plugin_for(spec.design)
    check_target_spec(spec)
    out = out or results_dir(spec.name, settings.results)
    out.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(settings, None, spec.design, out, say, target=target)
    driver = generator_for(plugin, spec, target, out, generator_env(spec, out), settings.host)
    say(f"results: {out}")
    say(f"target: {target} (no lab stack here: {len(TARGET_SKIPS)} measurements skipped, see the report)")
    driver.env["SDLAB_SEED_FILE"] = str(write_seed(plugin, ctx, spec, None))

    t0_wall, t0 = time.time(), time.monotonic()
    proc = driver.start(t0_wall, REPO_ROOT)
    sampler = CpuSampler(None, psutil.Process(proc.pid))  # the load generator only
    watched = watch_generator(driver, proc, sampler, t0_wall, t0, say)
    seconds, elapsed = watched.seconds, watched.elapsed
    timeline = fill(seconds, elapsed)
    for row in timeline:
        row.update(watched.readings.get(row["t"], {"cpu": {}, "machine_cpu": None}))
    (out / "timeline.jsonl").write_text("".join(json.dumps(r) + "\n" for r in timeline))
    summary = summarize(spec, driver, timeline, seconds, elapsed, {}, {}, None)
    summary["started_at"] = t0_wall
    summary["target"] = target
    summary["skipped"] = [asdict(s) for s in TARGET_SKIPS]
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return LoadResult(out, summary, timeline)


def verify_target(settings: LabSettings, result: LoadResult, target: str, *,
                  say: Callable[[str], None] = print) -> Verification:
    """The design's checks through the target's API; those that need more are skipped and named."""
    ctx = RunContext(settings, None, result.summary["spec"]["design"], result.out_dir, say, target=check_target(target))
    return verify_in(ctx, result)
