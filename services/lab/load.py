"""``sdlab load``: Locust headless against the running stack, with a live progress line.

Writes ``results/<timestamp>-<name>/``: Locust's CSVs and HTML report, a per-second timeline
(``timeline.jsonl``, with the CPU of every component and of the load generator itself), a
scrape of every instance's ``/metrics`` before and after, and ``summary.json``.
"""

from __future__ import annotations

import asyncio
import csv
import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from loadtests.curves import SHAPE_NAMES
from services.lab import metrics_scrape, procs
from services.lab.config import REPO_ROOT, LabSettings
from services.lab.errors import LabCommandError
from services.lab.faults import FaultRunner, FaultStep, parse_schedule, windows
from services.lab.machine import invoked_command, machine_spec
from services.lab.state import LabState, load_state
from services.lab.supervisor import require_state

SHAPES = SHAPE_NAMES


@dataclass
class LoadSpec:
    design: str
    name: str = "load"
    users: int = 50
    rate: float | None = None  # total requests/s to offer; None: closed loop, as fast as answers come
    duration_s: float = 30.0
    shape: str | None = None
    read_weight: int = 10
    write_weight: int = 1
    zipf_s: float = 1.1
    seed_count: int = 2000
    faults: str = ""
    warm_cache: bool = False  # read every seeded link once before the load (so all are cached)


@dataclass
class LoadResult:
    out_dir: Path
    summary: dict
    timeline: list[dict] = field(default_factory=list)


def results_dir(name: str, root: Path) -> Path:
    out = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    out.mkdir(parents=True, exist_ok=False)
    return out


def _design_module(design: str, module: str):
    try:
        return importlib.import_module(f"loadtests.{design}.{module}")
    except ModuleNotFoundError as exc:
        raise LabCommandError(f"design {design!r} has no load tests (loadtests/{design}/{module}.py)") from exc


def _seed(spec: LoadSpec, host: str, out: Path, say: Callable[[str], None]) -> Path:
    """Create the run's links (and, with ``warm_cache``, read each once); write ``seed.json`` once."""
    seed = _design_module(spec.design, "seed")
    started = time.monotonic()
    links = asyncio.run(seed.seed(host, spec.seed_count, progress=say))
    say(f"seeded {len(links)} links in {time.monotonic() - started:.1f}s")
    record: dict = {"host": host, "links": links}
    if spec.warm_cache:
        record["clicks_before"] = asyncio.run(seed.warm(host, links))  # clicks that are not the load's
        say(f"warmed the cache with {record['clicks_before']} links")
    path = out / "seed.json"
    path.write_text(json.dumps(record))
    return path


def _locust_cmd(spec: LoadSpec, host: str, out: Path) -> list[str]:
    locustfile = REPO_ROOT / "loadtests" / spec.design / "locustfile.py"
    cmd = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", host,
           "--csv", str(out / "locust"), "--html", str(out / "report.html"), "--only-summary",
           "--loglevel", "WARNING", "--stop-timeout", "5"]
    if spec.shape is None:
        cmd += ["-u", str(spec.users), "-r", str(spec.users), "-t", f"{int(spec.duration_s)}s"]
    return cmd


def _locust_env(spec: LoadSpec, seed_file: Path, out: Path) -> dict[str, str]:
    env = {
        "SDLAB_SEED_FILE": str(seed_file), "SDLAB_ACK_LOG": str(out / "acks.jsonl"),
        "SDLAB_TIMELINE": str(out / "timeline-raw.jsonl"), "SDLAB_USERS": str(spec.users),
        "SDLAB_SPAWN_RATE": str(spec.users), "SDLAB_DURATION_S": str(spec.duration_s),
        "SDLAB_READ_WEIGHT": str(spec.read_weight), "SDLAB_WRITE_WEIGHT": str(spec.write_weight),
        "SDLAB_ZIPF_S": str(spec.zipf_s), "PYTHONPATH": str(REPO_ROOT),
    }
    if spec.rate:
        env["SDLAB_RATE"] = str(spec.rate)
    if spec.shape:
        env["SDLAB_SHAPE"] = spec.shape
    return env


class CpuSampler:
    """CPU% per component (its whole process tree) and of the load generator, once a second."""

    def __init__(self, state: LabState, generator: psutil.Process) -> None:
        self.procs: dict[str, psutil.Process] = {"load-generator": generator}
        self._cache: dict[int, psutil.Process] = {}
        self.refresh(state)

    def refresh(self, state: LabState | None) -> None:
        """Follow components that a fault restarted (they have a new pid)."""
        for name, c in (state.components.items() if state else ()):
            known = self.procs.get(name)
            if known is None or known.pid != c.pid:
                proc = c.ref.process()
                if proc is not None:
                    self.procs[name] = proc
                    for p in procs.process_tree(proc):
                        self._cache.setdefault(p.pid, p)
                        try:
                            p.cpu_percent(None)
                        except psutil.Error:
                            pass

    def sample(self) -> dict[str, float]:
        out = {}
        for name, proc in self.procs.items():
            total = 0.0
            for p in procs.process_tree(proc):
                known = self._cache.setdefault(p.pid, p)
                try:
                    total += known.cpu_percent(None)
                except psutil.Error:
                    pass
            out[name] = round(total, 1)
        return out


def _read_new(path: Path, offset: int) -> tuple[list[dict], int]:
    if not path.exists():
        return [], offset
    with open(path) as fh:
        fh.seek(offset)
        data = fh.read()
    complete = data[: data.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()], offset + len(complete)


def _progress(t: float, seconds: list[dict], cpu: dict[str, float]) -> str:
    last = seconds[-1] if seconds else {}
    reqs, fails = last.get("requests", 0), last.get("failures", 0)
    fail_pct = 100.0 * fails / reqs if reqs else 0.0
    p50, p99 = last.get("p50_ms"), last.get("p99_ms")
    lat = f"p50 {p50:6.1f}ms p99 {p99:7.1f}ms" if p50 is not None else "p50      - p99       -"
    return (f"[{t:5.0f}s] users {last.get('users', 0):4d}  rps {reqs:6d}  {lat}  fail {fail_pct:5.1f}%  "
            f"generator cpu {cpu.get('load-generator', 0):3.0f}%")


def _locust_stats(out: Path) -> dict[str, dict]:
    path = out / "locust_stats.csv"
    if not path.exists():
        return {}
    stats = {}
    with open(path) as fh:
        for row in csv.DictReader(fh):
            stats[row["Name"]] = {
                "requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                "rps": float(row["Requests/s"]), "p50_ms": float(row["50%"] or 0), "p95_ms": float(row["95%"] or 0),
                "p99_ms": float(row["99%"] or 0), "max_ms": float(row["Max Response Time"] or 0),
            }
    return stats


def _fill(seconds: list[dict], duration_s: float) -> list[dict]:
    """One row per second from the start, zero where nothing completed (a hang shows as a gap)."""
    by_t = {s["t"]: s for s in seconds}
    rows = []
    for i in range(int(duration_s)):  # the last, partial second would read as a drop
        row = by_t.get(i, {"requests": 0, "failures": 0, "p50_ms": None, "p99_ms": None, "users": None, "by_name": {}})
        rows.append({**row, "t": i})
    return rows


def run_load(
    settings: LabSettings,
    spec: LoadSpec,
    *,
    say: Callable[[str], None] = print,
    apply_fault: Callable[[FaultStep], str] | None = None,
    out: Path | None = None,
) -> LoadResult:
    state = require_state(settings)
    if spec.design not in state.designs:
        raise LabCommandError(f"design {spec.design!r} is not running; start it with `sdlab up {spec.design}`")
    if spec.shape is not None and spec.shape not in SHAPES:
        raise LabCommandError(f"unknown shape {spec.shape!r}; choose from: {', '.join(SHAPES)}")
    steps = parse_schedule(spec.faults, spec.duration_s) if spec.faults else []
    host = f"http://{settings.host}:{state.ports[spec.design]}"
    out = out or results_dir(spec.name, settings.results)
    out.mkdir(parents=True, exist_ok=True)
    say(f"results: {out}")
    seed_file = _seed(spec, host, out, say)
    before = metrics_scrape.scrape(state, spec.design, out / "metrics", "before")

    log = open(out / "locust.log", "w")
    # One start instant for the timeline (wall clock, in the Locust process) and the faults (monotonic).
    t0_wall, t0 = time.time(), time.monotonic()
    proc = subprocess.Popen(_locust_cmd(spec, host, out), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **_locust_env(spec, seed_file, out), "SDLAB_T0": repr(t0_wall)})
    sampler = CpuSampler(state, psutil.Process(proc.pid))
    runner = None
    if steps:
        if apply_fault is None:
            from services.lab.chaos import local_chaos

            def apply_fault(step: FaultStep) -> str:
                return local_chaos(settings, step.action, step.component)

        runner = FaultRunner(steps, apply_fault, on_event=say)
        runner.start(t0)
    seconds: list[dict] = []
    cpu_rows: list[dict] = []
    offset, last_print = 0, 0.0
    interactive = sys.stdout.isatty()
    try:
        while proc.poll() is None:
            time.sleep(1.0)
            sampler.refresh(load_state(settings.state_dir))
            cpu = sampler.sample()
            cpu_rows.append({"t": int(time.time() - t0_wall), **cpu})
            new, offset = _read_new(out / "timeline-raw.jsonl", offset)
            seconds += new
            elapsed = time.monotonic() - t0
            line = _progress(elapsed, seconds, cpu)
            if interactive:
                sys.stdout.write("\r" + line)
                sys.stdout.flush()
            elif elapsed - last_print >= 5:
                say(line)
                last_print = elapsed
    except KeyboardInterrupt:
        proc.terminate()
        raise
    finally:
        if interactive:
            sys.stdout.write("\n")
        proc.wait(timeout=60)
        log.close()
    new, offset = _read_new(out / "timeline-raw.jsonl", offset)
    seconds += new
    elapsed = time.monotonic() - t0
    after = metrics_scrape.scrape(state, spec.design, out / "metrics", "after")
    timeline = _fill(seconds, elapsed)
    cpu_by_t = {row["t"]: row for row in cpu_rows}
    for row in timeline:
        row["cpu"] = {k: v for k, v in cpu_by_t.get(row["t"], {}).items() if k != "t"}
    (out / "timeline.jsonl").write_text("".join(json.dumps(r) + "\n" for r in timeline))
    if proc.returncode not in (0, 1):  # Locust exits 1 when any request failed: that is data, not a crash
        raise LabCommandError(f"Locust exited with {proc.returncode}; see {out / 'locust.log'}")
    summary = _summarize(spec, out, timeline, seconds, elapsed, before, after, runner)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return LoadResult(out, summary, timeline)


def _counts(seconds: list[dict]) -> dict[str, dict[str, int]]:
    """Requests and failures per endpoint from the per-second timeline: Locust's final CSV is
    written before its last requests complete and misses them."""
    counts: dict[str, dict[str, int]] = {}
    for row in seconds:
        for name, (n, failed, *_rest) in row.get("by_name", {}).items():
            c = counts.setdefault(name, {"requests": 0, "failures": 0})
            c["requests"] += n
            c["failures"] += failed
    return counts


def _summarize(spec: LoadSpec, out: Path, timeline: list[dict], seconds: list[dict], elapsed: float,
               before, after, runner) -> dict:
    stats = _locust_stats(out)
    for name, counted in _counts(seconds).items():
        stats.setdefault(name, {}).update(counted)
    total = stats.get("Aggregated", {})
    total.update(requests=sum(s["requests"] for s in seconds), failures=sum(s["failures"] for s in seconds))
    gen_cpu = [r["cpu"].get("load-generator", 0) for r in timeline if r.get("cpu")]
    achieved = total["requests"] / elapsed if elapsed else 0
    server = metrics_scrape.delta(before, after)
    summary = {
        "name": spec.name,
        "spec": asdict(spec),
        "machine": machine_spec(),
        "command": invoked_command(),
        "duration_s": round(elapsed, 1),
        "offered": f"{spec.rate:.0f} req/s" if spec.rate else f"closed loop, {spec.users} users",
        "offered_rps": spec.rate,
        "achieved_rps": round(achieved, 1),
        "generator_cpu_avg": round(sum(gen_cpu) / len(gen_cpu), 1) if gen_cpu else None,
        "generator_cpu_max": max(gen_cpu) if gen_cpu else None,
        "requests": total.get("requests", 0),
        "failures": total.get("failures", 0),
        "p50_ms": total.get("p50_ms"),
        "p95_ms": total.get("p95_ms"),
        "p99_ms": total.get("p99_ms"),
        "endpoints": {k: v for k, v in stats.items() if k != "Aggregated"},
        "server": server,
        "instances_scraped": sorted(after),
    }
    if runner is not None:
        summary["faults"] = [{"at_s": round(t, 1), "action": s.action, "component": s.component} for t, s in runner.log]
        summary["fault_windows"] = [asdict(w) for w in windows(runner.log)]
        summary["fault_errors"] = runner.errors
    return summary
