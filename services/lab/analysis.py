"""The analysis kit every design's load tests share: one definition each of a percentile, a run's
fault window, an endpoint's figures, a JSON-lines log and the ``ms`` / ``pct`` formatters.

A leaf: it imports nothing from ``services.lab``, so the designs' experiments, the generators and
the engine's reports can all use it without a cycle.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

# What an endpoint that saw no request reports: no latency, rather than a 0 ms one.
EMPTY_ENDPOINT: dict[str, Any] = {"requests": 0, "failures": 0, "rps": 0.0,
                                  "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile, q in 0-100: the smallest of ``values`` with at least q % of them at
    or below it (``values`` need not be sorted). Always a value that was measured, never one
    interpolated between two. None when there are no values; q = 0 gives the smallest."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q is in 0-100, got {q}")
    if not values:
        return None
    ordered = sorted(values)
    # q * n before the division keeps the rank exact for whole q (0.07 * 100 is 7.000000000000001).
    return ordered[max(0, math.ceil(q * len(ordered) / 100) - 1)]


def fault_window(summary: dict, component: str) -> tuple[float, float] | None:
    """(start, end) run seconds of the first fault window on ``component`` in a run's summary (an
    open one ends with the run), or None when the run had no fault on it."""
    for w in summary.get("fault_windows", []):
        if w["component"] == component:
            return w["start_s"], w["end_s"] if w.get("end_s") is not None else summary["duration_s"]
    return None


def endpoint(result: Any, name: str) -> dict:
    """One endpoint's figures (requests, failures, rps, p50/p95/p99/max ms) from a run result, or
    :data:`EMPTY_ENDPOINT` when the run had no request of that name. ``result`` is anything with a
    ``summary`` dict (a variant's or a load's result) or the summary itself."""
    summary = result if isinstance(result, dict) else result.summary
    return {**EMPTY_ENDPOINT, **summary.get("endpoints", {}).get(name, {})}


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file (blank lines skipped); none when the file does not exist
    (a generator that never started writes no log)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    """A figure for a report: ``-`` for None, floats to ``digits`` places, thousands separated."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value:,}{unit}"


def ms(value: float | None, digits: int = 0) -> str:
    """Milliseconds for a report: ``1,234 ms``; ``-`` for None."""
    return fmt(None if value is None else float(value), " ms", digits)


def pct(share: float | None, digits: int = 1) -> str:
    """A share (0-1) as a percentage: ``99.5%``; ``-`` for None."""
    return fmt(None if share is None else 100.0 * share, "%", digits)
