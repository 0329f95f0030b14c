"""Closed-loop load with Locust: simulated users, each waiting for its answer before the next request.

Locust drives user behaviour. Its latencies are closed-loop: a slow server lowers the load it
gets (coordinated omission), and at low rates Locust's own scheduling dominates what it
measures. Every report that shows them says so; latency claims come from open-loop runs.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from services.lab.errors import LabCommandError
from services.lab.generators.base import TIMELINE_FILE, LoadDriver
from services.lab.generators.curves import SHAPE_NAMES as SHAPES


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


HERE = Path(__file__).resolve().parent
# Loaded beside every design's locustfile: the per-second timeline, and the run's shape when it has one.
TIMELINE_ADDON = HERE / "locust_timeline.py"
SHAPE_ADDON = HERE / "locust_shape.py"


class LocustDriver(LoadDriver):
    kind = "locust"
    log_name = "locust.log"

    def __init__(self, locustfile: Path, host: str, out: Path, env: dict[str, str], *, users: int,
                 rate: float | None, duration_s: float, shape: str | None) -> None:
        if shape is not None and shape not in SHAPES:
            raise LabCommandError(f"unknown closed-loop shape {shape!r}; choose from: {', '.join(SHAPES)}")
        super().__init__(out, {**env, "SDLAB_TIMELINE": str(out / TIMELINE_FILE), "SDLAB_USERS": str(users),
                               "SDLAB_SPAWN_RATE": str(users), "SDLAB_DURATION_S": str(duration_s)})
        self.locustfile, self.host = locustfile, host
        self.users, self.rate, self.duration_s, self.shape = users, rate, duration_s, shape
        if rate:
            self.env["SDLAB_RATE"] = str(rate)
        if shape:
            self.env["SDLAB_SHAPE"] = shape

    @property
    def offered(self) -> str:
        return f"{self.rate:.0f} req/s closed loop, {self.users} users" if self.rate else f"closed loop, {self.users} users"

    def locustfiles(self) -> list[Path]:
        """The design's behaviour, the engine's timeline, and the shape that then drives users and time."""
        return [self.locustfile, TIMELINE_ADDON] + ([SHAPE_ADDON] if self.shape else [])

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "locust", "-f", ",".join(map(str, self.locustfiles())), "--headless",
               "--host", self.host, "--csv", str(self.out / "locust"), "--html", str(self.out / "report.html"),
               "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "5"]
        if self.shape is None:  # a shape sets users and ends the run itself (Locust ignores -u/-r/-t then)
            cmd += ["-u", str(self.users), "-r", str(self.users), "-t", f"{int(self.duration_s)}s"]
        return cmd

    def finish(self) -> list[dict]:
        code = self._ended(timeout_s=60)
        if code not in (0, 1):  # Locust exits 1 when any request failed: that is data, not a crash
            raise LabCommandError(f"Locust exited with {code}; see {self.out / self.log_name}")
        return self.take()

    def totals(self, rows: list[dict]) -> dict:
        stats = locust_stats(self.out / "locust_stats.csv")
        for name, counted in counts(rows).items():
            stats.setdefault(name, {}).update(counted)
        total = stats.pop("Aggregated", {})
        total.update(requests=sum(r["requests"] for r in rows), failures=sum(r["failures"] for r in rows))
        return {"total": total, "endpoints": stats}
