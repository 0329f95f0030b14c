"""Fault schedules: ``at 20s kill redis; at 40s restart redis`` (or ``at 40%`` of the run).

A step may end with an argument of its action: ``at 10% throttle postgres-1 400/500``."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from services.lab.backends.local.chaos import ACTIONS
from services.lab.errors import LabCommandError

_STEP = re.compile(r"^at\s+(\d+(?:\.\d+)?)\s*(s|%)\s+(\w+)\s+([\w-]+)(?:\s+([\w./:-]+))?$")


@dataclass(frozen=True)
class FaultStep:
    at_s: float
    action: str
    component: str
    argument: str | None = None  # the action's own (throttle's PAUSE_MS/PERIOD_MS)


@dataclass
class FaultWindow:
    component: str
    kind: str  # kill | stop | pause | throttle
    start_s: float
    end_s: float | None = None


def parse_schedule(text: str, duration_s: float, design_actions: Collection[str] = ()) -> list[FaultStep]:
    """``design_actions``: a design's own actions (its plugin's ``fault_actions``), e.g.
    ``at 30% <action> <argument>``, where the last word is an argument, not a component."""
    steps = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        m = _STEP.match(part)
        if not m:
            raise LabCommandError(f"bad fault step {part!r}; write e.g. 'at 20s kill redis' or 'at 50% restart redis'")
        value, unit, action, component, argument = m.groups()
        if action not in ACTIONS and action not in design_actions:
            raise LabCommandError(f"bad fault action {action!r} in {part!r}; choose from: "
                                  f"{', '.join([*ACTIONS, *design_actions])}")
        at = float(value) * (duration_s / 100 if unit == "%" else 1)
        if at > duration_s:
            raise LabCommandError(f"fault step {part!r} is after the end of the run ({duration_s:.0f}s)")
        steps.append(FaultStep(at, action, component, argument))
    return sorted(steps, key=lambda s: s.at_s)


def windows(log: list[tuple[float, FaultStep]]) -> list[FaultWindow]:
    """Kill/stop→restart and pause/throttle→resume intervals, for shading charts; an open one ends with the run."""
    open_: dict[str, FaultWindow] = {}
    done: list[FaultWindow] = []
    for t, step in log:
        if step.action in ("kill", "stop", "pause", "throttle"):
            open_[step.component] = FaultWindow(step.component, step.action, t)
        elif step.component in open_:
            w = open_.pop(step.component)
            w.end_s = t
            done.append(w)
    return done + list(open_.values())


@dataclass
class FaultRunner:
    """Applies the steps at their times, on a thread, while the load runs."""

    steps: list[FaultStep]
    apply: Callable[[FaultStep], str]
    on_event: Callable[[str], None] = print
    log: list[tuple[float, FaultStep]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def start(self, t0: float) -> threading.Thread:
        thread = threading.Thread(target=self._run, args=(t0,), name="faults", daemon=True)
        thread.start()
        return thread

    def _run(self, t0: float) -> None:
        for step in self.steps:
            delay = t0 + step.at_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            at = time.monotonic() - t0
            try:
                message = self.apply(step)
                self.log.append((at, step))
                self.on_event(f"[fault @ {at:5.1f}s] {message}")
            except LabCommandError as exc:
                self.errors.append(f"{step.action} {step.component}: {exc}")
                self.on_event(f"[fault @ {at:5.1f}s] FAILED {step.action} {step.component}: {exc}")
