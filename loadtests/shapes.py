"""Locust load shapes, configured from the environment.

``SDLAB_USERS`` (default 50), ``SDLAB_SPAWN_RATE`` (users started or stopped per second;
default: all of them in one second) and ``SDLAB_DURATION_S`` (default 60; the whole run,
ramps included). The curves are in :mod:`loadtests.curves`, pure functions that import no
Locust, so they can be tested (and named by the CLI) without it.
"""

from __future__ import annotations

import os

from locust import LoadTestShape

from loadtests.curves import users_at

def _env_number(name: str, default: float, kind=int):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value


class _EnvShape(LoadTestShape):
    abstract = True
    name = ""

    def __init__(self) -> None:
        super().__init__()
        self.users = _env_number("SDLAB_USERS", 50)
        self.spawn_rate = _env_number("SDLAB_SPAWN_RATE", float(self.users), float)
        self.duration = _env_number("SDLAB_DURATION_S", 60.0, float)

    def tick(self) -> tuple[int, float] | None:
        count = users_at(self.name, self.get_run_time(), self.users, self.duration)
        return None if count is None else (count, self.spawn_rate)


class SteadyShape(_EnvShape):
    """Ramp to SDLAB_USERS and hold them until the duration is over."""

    name = "steady"


class StepShape(_EnvShape):
    """Five equal steps, users/5 up to users, each a fifth of the duration."""

    name = "step"


class SpikeShape(_EnvShape):
    """A quarter of the users, all of them from 40% to 60% of the duration, then a quarter again."""

    name = "spike"


class SoakShape(_EnvShape):
    """Steady load meant for long runs (hours), to watch memory, connections and leaks over time."""

    name = "soak"


SHAPES: dict[str, type[LoadTestShape]] = {
    "steady": SteadyShape,
    "step": StepShape,
    "spike": SpikeShape,
    "soak": SoakShape,
}
