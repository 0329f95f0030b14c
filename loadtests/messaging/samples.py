"""Latency samples of the open-loop generator: a per-second timeline row and the run's totals.

Endpoint names, shared with the Locust file and the checks: a send answered by its ack
(``ws send→ack``), a message arriving on a member's connection (``ws send→deliver``, timed
from the sender's *scheduled* send, so a late send counts against the system; readers told to
stop reading for a while count apart, under ``ws send→deliver (slow readers)``), and a
connection lost and resumed (``ws reconnect``, from noticing the loss to the ``resumed`` frame).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict

from services.lab.analysis import percentile

ACK, DELIVER, RECONNECT = "ws send→ack", "ws send→deliver", "ws reconnect"
DELIVER_SLOW = "ws send→deliver (slow readers)"  # readers that stopped reading for a while, apart


def stats(latencies: list[float], failures: int, seconds: float) -> dict:
    ordered = sorted(latencies)
    n = len(ordered) + failures

    def ms(q: float) -> float | None:
        v = percentile(ordered, q)
        return None if v is None else round(v, 3)

    return {"requests": n, "failures": failures, "rps": round(len(ordered) / seconds, 1) if seconds else 0.0,
            "p50_ms": ms(50), "p95_ms": ms(95), "p99_ms": ms(99),
            "max_ms": round(ordered[-1], 3) if ordered else None}


class Samples:
    """Samples by second (since the engine's start instant) and by endpoint name."""

    def __init__(self, t0_wall: float, timeline_path: str | None) -> None:
        self.t0 = t0_wall
        self.out = open(timeline_path, "a", buffering=1) if timeline_path else None
        self.buckets: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(lambda: [[], 0]))
        self.all: dict[str, list] = defaultdict(lambda: [[], 0])
        self.dropped: dict[int, int] = defaultdict(int)
        self.dropped_total = 0
        self.connected = 0

    def add(self, name: str, latency_ms: float | None, failed: bool = False) -> None:
        second = int(time.time() - self.t0)
        for into in (self.buckets[second][name], self.all[name]):
            if failed:
                into[1] += 1
            else:
                into[0].append(latency_ms)

    def drop(self) -> None:
        self.dropped[int(time.time() - self.t0)] += 1
        self.dropped_total += 1

    def flush(self, upto: int) -> None:
        """Write the rows of every second before ``upto``: requests are answered sends, failures
        refused ones, and the percentiles those of deliveries (a messaging run's headline)."""
        for second in sorted(s for s in set(self.buckets) | set(self.dropped) if s < upto):
            names = self.buckets.pop(second, {})
            acks, refused = names.get(ACK, [[], 0])
            delivered = sorted(names.get(DELIVER, [[], 0])[0])
            by_name = {}
            for name, (lat, failed) in names.items():
                ordered = sorted(lat)
                by_name[name] = [len(lat) + failed, failed, round(ordered[-1], 1) if ordered else 0.0,
                                 percentile(ordered, 50), percentile(ordered, 99)]
            row = {"t": second, "requests": len(acks) + refused, "failures": refused,
                   "p50_ms": percentile(delivered, 50), "p99_ms": percentile(delivered, 99),
                   "max_ms": delivered[-1] if delivered else None, "users": self.connected,
                   "dropped": self.dropped.pop(second, 0), "by_name": by_name}
            if self.out is not None:
                self.out.write(json.dumps(row) + "\n")

    def totals(self, seconds: float, unanswered: int) -> dict:
        """The engine's totals: ``total`` counts sends (failed: refused or never answered) with the
        delivery percentiles; ``endpoints`` has each name's own."""
        endpoints = {name: stats(lat, failed + (unanswered if name == ACK else 0), seconds)
                     for name, (lat, failed) in self.all.items()}
        acks = endpoints.setdefault(ACK, stats([], unanswered, seconds))
        delivered = endpoints.get(DELIVER, stats([], 0, seconds))
        total = {**delivered, "requests": acks["requests"], "failures": acks["failures"], "rps": acks["rps"]}
        return {"total": total, "endpoints": endpoints, "dropped_iterations": self.dropped_total}
