"""k6's per-second stream: the web dashboard's server-sent events, one aggregate row per 1-second period.

The dashboard names its metrics in ``metric`` events; every ``snapshot`` event (one period) is a
list of aggregates, one per metric known so far, in the metrics' alphabetical order, each
aggregate ordered as the ``param`` event's ``aggregates`` say for its type. The stream does not
carry tag submetrics, so the lab's k6 scripts record per-endpoint metrics of their own
(``loadtests/k6/lab.js``: ``lab_ep_<endpoint name as UTF-16 hex>_<requests|failures|duration>``).
"""

from __future__ import annotations

import json
import re
import threading
import time

import httpx


class DashboardStream:
    """Reads the stream on a thread of its own; the engine takes the rows every second."""

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
