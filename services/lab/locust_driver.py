"""Closed-loop load with Locust: simulated users, each waiting for its answer before the next request.

Locust drives user behaviour. Its latencies are closed-loop: a slow server lowers the load it
gets (coordinated omission), and at low rates Locust's own scheduling dominates what it
measures. Every report that shows them says so; latency claims come from open-loop runs.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from loadtests.curves import SHAPE_NAMES as SHAPES
from services.lab.errors import LabCommandError


def read_new(path: Path, offset: int) -> tuple[list[dict], int]:
    """Complete JSON lines appended to ``path`` since ``offset``."""
    if not path.exists():
        return [], offset
    with open(path) as fh:
        fh.seek(offset)
        data = fh.read()
    complete = data[: data.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()], offset + len(complete)


def _ms(value: str | None) -> float:
    """A CSV latency cell: Locust writes "N/A" for an endpoint (or a run) without requests."""
    try:
        return float(value or 0)
    except ValueError:
        return 0.0


def locust_stats(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    stats = {}
    with open(path) as fh:
        for row in csv.DictReader(fh):
            stats[row["Name"]] = {
                "requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                "rps": _ms(row["Requests/s"]), "p50_ms": _ms(row["50%"]), "p95_ms": _ms(row["95%"]),
                "p99_ms": _ms(row["99%"]), "max_ms": _ms(row["Max Response Time"]),
            }
    return stats


def counts(rows: list[dict]) -> dict[str, dict[str, int]]:
    """Requests and failures per endpoint from the per-second timeline: Locust's final CSV is
    written before its last requests complete and misses them."""
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        for name, (n, failed, *_rest) in row.get("by_name", {}).items():
            c = out.setdefault(name, {"requests": 0, "failures": 0})
            c["requests"] += n
            c["failures"] += failed
    return out


class LocustDriver:
    kind = "locust"

    def pending_checkpoint(self) -> str | None:
        """None: this generator has no phases to mark (see :class:`services.lab.script_driver.ScriptDriver`)."""
        return None

    def release(self, name: str) -> None:
        raise AssertionError(f"no checkpoint {name!r} was pending")

    def __init__(self, locustfile: Path, host: str, out: Path, env: dict[str, str], *, users: int,
                 rate: float | None, duration_s: float, shape: str | None) -> None:
        if shape is not None and shape not in SHAPES:
            raise LabCommandError(f"unknown closed-loop shape {shape!r}; choose from: {', '.join(SHAPES)}")
        self.locustfile, self.host, self.out = locustfile, host, out
        self.users, self.rate, self.duration_s, self.shape = users, rate, duration_s, shape
        self.env = {**env, "SDLAB_TIMELINE": str(out / "timeline-raw.jsonl"), "SDLAB_USERS": str(users),
                    "SDLAB_SPAWN_RATE": str(users), "SDLAB_DURATION_S": str(duration_s)}
        if rate:
            self.env["SDLAB_RATE"] = str(rate)
        if shape:
            self.env["SDLAB_SHAPE"] = shape
        self.proc: subprocess.Popen | None = None
        self._offset = 0

    @property
    def offered(self) -> str:
        return f"{self.rate:.0f} req/s closed loop, {self.users} users" if self.rate else f"closed loop, {self.users} users"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "locust", "-f", str(self.locustfile), "--headless", "--host", self.host,
               "--csv", str(self.out / "locust"), "--html", str(self.out / "report.html"), "--only-summary",
               "--loglevel", "WARNING", "--stop-timeout", "5"]
        if self.shape is None:
            cmd += ["-u", str(self.users), "-r", str(self.users), "-t", f"{int(self.duration_s)}s"]
        return cmd

    def start(self, t0_wall: float, cwd: Path) -> subprocess.Popen:
        self.log = open(self.out / "locust.log", "w")
        self.proc = subprocess.Popen(self.command(), cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **self.env, "SDLAB_T0": repr(t0_wall)})
        return self.proc

    def take(self) -> list[dict]:
        rows, self._offset = read_new(self.out / "timeline-raw.jsonl", self._offset)
        return rows

    def finish(self) -> list[dict]:
        assert self.proc is not None
        self.proc.wait(timeout=60)
        self.log.close()
        if self.proc.returncode not in (0, 1):  # Locust exits 1 when any request failed: that is data, not a crash
            raise LabCommandError(f"Locust exited with {self.proc.returncode}; see {self.out / 'locust.log'}")
        return self.take()

    def totals(self, rows: list[dict]) -> dict:
        stats = locust_stats(self.out / "locust_stats.csv")
        for name, counted in counts(rows).items():
            stats.setdefault(name, {}).update(counted)
        total = stats.pop("Aggregated", {})
        total.update(requests=sum(r["requests"] for r in rows), failures=sum(r["failures"] for r in rows))
        return {"total": total, "endpoints": stats}
