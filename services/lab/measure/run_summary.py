"""What one load run reports: ``summary.json`` (:class:`services.lab.contract.RunSummary`), the
per-second timeline filled to the run's length, and the live progress line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict

from services.lab.contract import LoadSpec
from services.lab.machine import invoked_command, machine_spec
from services.lab.measure import metrics_scrape
from services.lab.measure.faults import windows

CLOSED_LOOP_NOTE = ("Locust is closed-loop: a user waits for each answer, so a slow server lowers the load it gets "
                    "(coordinated omission), and at low rates Locust's own scheduling dominates its latencies. "
                    "Quote latencies from open-loop (k6) runs.")
OPEN_LOOP_NOTE = ("The load ran open-loop: requests started on schedule whether or not earlier ones had finished; "
                  "those the generator could not start are counted as dropped.")
GENERATOR_LABELS = {"k6": "k6, open loop", "locust": "Locust, closed loop",
                    "script": "the design's own generator, open loop"}


def generator_label(summary: dict) -> str:
    return GENERATOR_LABELS.get(summary.get("generator", ""), str(summary.get("generator")))


def progress_line(t: float, seconds: list[dict], cpu: dict[str, float]) -> str:
    last = seconds[-1] if seconds else {}
    reqs, fails = last.get("requests", 0), last.get("failures", 0)
    fail_pct = 100.0 * fails / reqs if reqs else 0.0
    p50, p99 = last.get("p50_ms"), last.get("p99_ms")
    lat = f"p50 {p50:6.1f}ms p99 {p99:7.1f}ms" if p50 is not None else "p50      - p99       -"
    dropped = f"  dropped {last['dropped']:4d}" if last.get("dropped") else ""
    return (f"[{t:5.0f}s] users {last.get('users') or 0:4d}  rps {reqs:6d}  {lat}  fail {fail_pct:5.1f}%{dropped}  "
            f"generator cpu {cpu.get('load-generator', 0):3.0f}%")


class LiveLine:
    """A run's progress line: redrawn in place on a terminal, else printed every 5 seconds."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say, self.interactive, self.printed_at = say, sys.stdout.isatty(), 0.0

    def show(self, elapsed: float, seconds: list[dict], cpu: dict[str, float]) -> None:
        line = progress_line(elapsed, seconds, cpu)
        if self.interactive:
            sys.stdout.write("\r" + line)
            sys.stdout.flush()
        elif elapsed - self.printed_at >= 5:
            self.say(line)
            self.printed_at = elapsed

    def close(self) -> None:
        if self.interactive:
            sys.stdout.write("\n")


def fill(seconds: list[dict], duration_s: float) -> list[dict]:
    """One row per second from the start, zero where nothing completed (a hang shows as a gap)."""
    by_t = {s["t"]: s for s in seconds}
    rows = []
    for i in range(int(duration_s)):  # the last, partial second would read as a drop
        row = by_t.get(i, {"requests": 0, "failures": 0, "p50_ms": None, "p99_ms": None, "users": None, "by_name": {}})
        rows.append({**row, "t": i})
    return rows


def summarize(spec: LoadSpec, driver, timeline: list[dict], seconds: list[dict], elapsed: float,
              before, after, runner) -> dict:
    totals = driver.totals(seconds)
    total = totals["total"]
    gen_cpu = [r["cpu"].get("load-generator", 0) for r in timeline if r.get("cpu")]
    # k6 reports its own rate over the scenario; Locust's run time is the wall time of the process.
    achieved = total.get("rps") if spec.open_loop else (total["requests"] / elapsed if elapsed else 0)
    summary: dict = {  # a RunSummary once run_load adds cost_per_op and started_at
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
