"""CPU% and resident memory per lab component (its whole process tree) and of the load generator,
sampled once a second."""

from __future__ import annotations

from collections import Counter

import psutil

from services.lab import procs
from services.lab.state import LabState


class CpuSampler:
    """CPU% per component (its whole process tree) and of the load generator, once a second."""

    def __init__(self, state: LabState, generator: psutil.Process) -> None:
        self.procs: dict[str, psutil.Process] = {"load-generator": generator}
        self._cache: dict[int, psutil.Process] = {}
        # The whole machine's CPU% (every process, the lab's and anyone else's; 100 = all cores), so
        # that a run on a shared machine says whether the cores ran out, not only what the lab used.
        self.machine_percent: float | None = None
        psutil.cpu_percent(None)
        self.refresh(state)

    def refresh(self, state: LabState | None) -> None:
        """Follow components that a fault restarted (they have a new pid)."""
        for name, c in (state.components.items() if state else ()):
            known = self.procs.get(name)
            if known is None or known.pid != c.pid:
                proc = c.ref.process()
                if proc is not None:
                    self.procs[name] = proc
                    for p in procs.process_tree(proc):
                        self._cache.setdefault(p.pid, p)
                        try:
                            p.cpu_percent(None)
                        except psutil.Error:
                            pass

    def sample(self) -> dict[str, float]:
        """CPU% per component since the last sample; the memory of the same instant goes to ``rss_mib``."""
        out = {}
        self.rss_mib: dict[str, float] = {}
        self.machine_percent = psutil.cpu_percent(None)
        for name, proc in self.procs.items():
            out[name], self.rss_mib[name] = procs.tree_usage(proc, self._cache)
        return out


def cpu_averages(timeline: list[dict]) -> dict[str, float]:
    rows = [r["cpu"] for r in timeline if r.get("cpu")]
    sums: Counter = Counter()
    for cpu in rows:
        sums.update(cpu)
    return {k: v / len(rows) for k, v in sums.items()} if rows else {}


def bottleneck(timeline: list[dict], cores: int | None = None) -> str:
    """Where the CPU went: the machine's total and the three busiest components (100% = one core)."""
    cores = cores or psutil.cpu_count() or 1
    avg = cpu_averages(timeline)
    if not avg:
        return "unknown"
    total = sum(avg.values())
    top = sorted(avg.items(), key=lambda kv: -kv[1])[:3]
    state = "saturated" if total >= 0.85 * 100 * cores else "not saturated"
    return (f"CPU {state}: {total:.0f}% of {100 * cores}% ("
            + ", ".join(f"{name} {value:.0f}%" for name, value in top) + ")")
