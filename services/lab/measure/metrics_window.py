"""One window of a running stack's metrics: two scrapes of every service's ``/metrics``, seconds apart.

Counters become increases (a counter that went down belongs to a restarted process: it counts
from zero), gauges are read from the second scrape, and latency percentiles are estimated from
the increase of the ``http_request_duration_seconds`` histogram buckets, interpolating linearly
inside a bucket as Prometheus's ``histogram_quantile`` does.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, tuple[tuple[str, str], ...], float]  # name, sorted labels, value


def parse(text: str) -> list[Sample]:
    out: list[Sample] = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if not s.name.endswith("_created"):
                out.append((s.name, tuple(sorted(s.labels.items())), s.value))
    return out


def grown(first: float, last: float) -> float:
    """A counter's increase from ``first`` to ``last``; one that went down belongs to a restarted
    process, which counted from zero."""
    return last - first if last >= first else last


def _matches(labels: tuple[tuple[str, str], ...], wanted: dict[str, str]) -> bool:
    have = dict(labels)
    return all(have.get(k) == v for k, v in wanted.items())


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile from cumulative ``(upper bound, count)`` buckets, or None without observations."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound is all we know
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return None


@dataclass
class MetricsWindow:
    before: dict[str, str]  # component -> exposition text
    after: dict[str, str]
    seconds: float
    _parsed: dict = field(default_factory=dict, repr=False)

    def _samples(self, which: str, component: str) -> list[Sample]:
        key = (which, component)
        if key not in self._parsed:
            text = (self.before if which == "before" else self.after).get(component, "")
            self._parsed[key] = parse(text) if text else []
        return self._parsed[key]

    def components(self) -> list[str]:
        return sorted(self.after)

    def increase_by(self, name: str, label: str, components: Iterable[str] | None = None) -> dict[str, float]:
        """The increase of every sample named ``name``, summed per value of ``label``."""
        totals: dict[str, float] = defaultdict(float)
        for component in components if components is not None else self.after:
            start = {lab: value for n, lab, value in self._samples("before", component) if n == name}
            for n, lab, value in self._samples("after", component):
                if n == name:
                    totals[dict(lab).get(label, "")] += grown(start.get(lab, 0.0), value)
        return dict(totals)

    def increase(self, name: str, components: Iterable[str] | None = None, **labels: str) -> float:
        """Sum over ``components`` of the increase of every sample named ``name`` with ``labels``."""
        total = 0.0
        for component in components if components is not None else self.after:
            start = {lab: value for n, lab, value in self._samples("before", component) if n == name}
            for n, lab, value in self._samples("after", component):
                if n == name and _matches(lab, labels):
                    total += grown(start.get(lab, 0.0), value)
        return total

    def rate(self, name: str, components: Iterable[str] | None = None, **labels: str) -> float:
        return self.increase(name, components, **labels) / self.seconds if self.seconds > 0 else 0.0

    def gauge(self, name: str, components: Iterable[str] | None = None, **labels: str) -> float | None:
        """Sum of the gauge's latest values, or None when no component exports it."""
        values = [value for component in (components if components is not None else self.after)
                  for n, lab, value in self._samples("after", component) if n == name and _matches(lab, labels)]
        return sum(values) if values else None

    def latency_ms(self, q: float, components: Iterable[str] | None = None,
                   histogram: str = "http_request_duration_seconds") -> float | None:
        """The q-quantile over the window of a histogram in seconds (default: HTTP request latency,
        all routes together), in ms."""
        by_bound: dict[float, float] = defaultdict(float)
        bucket = f"{histogram}_bucket"
        for component in components if components is not None else self.after:
            start = {lab: value for n, lab, value in self._samples("before", component) if n == bucket}
            for n, lab, value in self._samples("after", component):
                if n == bucket:
                    bound = float(dict(lab)["le"])
                    by_bound[bound] += grown(start.get(lab, 0.0), value)
        value = quantile(q, list(by_bound.items()))
        return None if value is None else value * 1000

    def http(self, components: list[str]) -> dict:
        """Requests/s, error share (5xx), p50/p99 (ms) and requests in flight of ``components``."""
        by_status = self.increase_by("http_requests_total", "status", components)
        requests = sum(by_status.values())
        errors = sum(n for status, n in by_status.items() if status.startswith("5"))
        return {
            "rps": requests / self.seconds if self.seconds > 0 else 0.0,
            "errors": errors / requests if requests else 0.0,
            "p50_ms": self.latency_ms(0.5, components),
            "p99_ms": self.latency_ms(0.99, components),
            "in_flight": self.gauge("http_requests_in_flight", components),
        }
