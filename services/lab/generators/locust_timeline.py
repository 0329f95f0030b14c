"""A per-second timeline written by the Locust process (``SDLAB_TIMELINE``): one JSON line a second.

Locust's own CSV history smooths percentiles over a window; a chart of a fault needs what
happened in each second. Cost per request: an append and an add.
"""

from __future__ import annotations

import json
import os
import time

from locust import events

from services.lab.analysis import percentile

_state: dict = {}


def _flush(upto: int) -> None:
    out = _state.get("out")
    buckets = _state["buckets"]
    for second in sorted(s for s in buckets if s < upto):
        b = buckets.pop(second)
        lat = sorted(b["latencies"])

        def pct(q: float) -> float | None:
            value = percentile(lat, q)
            return None if value is None else round(value, 3)

        line = {"t": second, "requests": b["requests"], "failures": b["failures"], "p50_ms": pct(50),
                "p99_ms": pct(99), "max_ms": round(lat[-1], 3) if lat else None, "users": b["users"],
                "by_name": b["by_name"]}
        if out is not None:
            out.write(json.dumps(line) + "\n")
    if out is not None:
        out.flush()


@events.init.add_listener
def _init(environment, **_kwargs) -> None:
    path = os.environ.get("SDLAB_TIMELINE")
    if not path:
        return
    # Seconds count from the engine's start instant, the same clock its fault schedule uses.
    t0 = float(os.environ.get("SDLAB_T0", time.time()))
    _state.update(out=open(path, "a", buffering=1), buckets={}, env=environment, current=0, t0=t0)

    @environment.events.request.add_listener
    def _on_request(name, response_time, exception, **_kw) -> None:
        second = int(time.time() - t0)
        if second != _state["current"]:
            _flush(second)
            _state["current"] = second
        b = _state["buckets"].get(second)
        if b is None:
            runner = environment.runner
            b = _state["buckets"][second] = {"requests": 0, "failures": 0, "latencies": [], "by_name": {},
                                             "users": runner.user_count if runner else 0}
        b["requests"] += 1
        b["latencies"].append(response_time)
        per = b["by_name"].setdefault(name, [0, 0, 0.0])  # requests, failures, max latency (ms)
        per[0] += 1
        if response_time > per[2]:
            per[2] = round(response_time, 1)
        if exception is not None:
            b["failures"] += 1
            per[1] += 1

    @environment.events.quitting.add_listener
    def _on_quit(**_kw) -> None:
        _flush(int(time.time() - t0) + 10)
