"""The loop that watches a running load generator, once a second, for ``sdlab load`` on the lab's stack and at a
target alike: the generator's CPU sampled, the rows it wrote taken, the live line shown; on an interrupt the
generator stopped and nothing half-written kept. A run on the lab's stack reads the stack too, through
:class:`StackSamplers` (:class:`services.lab.measure.load.StackReadings`); a target run has none.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from services.lab.generators.base import LoadDriver
from services.lab.measure.cpu import CpuSampler
from services.lab.measure.run_summary import LiveLine


class StackSamplers(Protocol):
    """What a run reads of the stack beside the generator."""

    def checkpoint(self, name: str) -> None:
        """The generator reached checkpoint ``name`` (its operations' start or end) and waits: read the stack now."""

    def before_sample(self, tick: int) -> None:
        """Before the ``tick``-th sample (0 first): follow what changed (components a fault restarted)."""

    def after_sample(self, t: int) -> None:
        """Right after the sample of second ``t``: the stack's readings of that second."""


@dataclass
class GeneratorRun:
    seconds: list[dict]  # the generator's per-second rows, as it wrote them
    readings: dict[int, dict]  # second t: {"cpu": per component, "machine_cpu": % of all cores}, the last sample in t
    elapsed: float  # seconds from t0 until the generator ended


def watch_generator(driver: LoadDriver, proc: subprocess.Popen, sampler: CpuSampler, t0_wall: float, t0: float,
                    say: Callable[[str], None], stack: StackSamplers | None = None) -> GeneratorRun:
    """Watch ``proc`` (``driver``'s generator, started at ``t0_wall`` / monotonic ``t0``) until it ends, then
    take its last rows. An interrupt (or any error) terminates the generator and is raised again."""
    seconds: list[dict] = []
    readings: dict[int, dict] = {}
    live = LiveLine(say)
    tick = 0
    try:
        while proc.poll() is None:
            for _ in range(10):
                time.sleep(0.1)
                name = driver.pending_checkpoint()
                if name is not None:
                    if stack is not None:
                        stack.checkpoint(name)
                    driver.release(name)
            if stack is not None:
                stack.before_sample(tick)
            cpu = sampler.sample()
            t = int(time.time() - t0_wall)
            readings[t] = {"cpu": cpu, "machine_cpu": sampler.machine_percent}
            if stack is not None:
                stack.after_sample(t)
            tick += 1
            seconds += driver.take()
            live.show(time.monotonic() - t0, seconds, cpu)
    except BaseException:
        proc.terminate()  # interrupted: stop the generator, keep no half-written summary
        proc.wait(timeout=30)
        raise
    finally:
        live.close()
    seconds += driver.finish()
    return GeneratorRun(seconds, readings, time.monotonic() - t0)
