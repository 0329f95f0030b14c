"""The Locust side of a shaped closed-loop run, the same for every design.

The Locust driver loads this file beside the design's locustfile (``-f locustfile.py,locust_shape.py``)
when a run names a shape, so no locustfile wires shapes of its own. Locust runs the one
``LoadTestShape`` it finds here: ``SDLAB_SHAPE``'s curve (:mod:`services.lab.generators.curves`, pure
functions that import no Locust) for ``SDLAB_USERS`` users (default 50) over ``SDLAB_DURATION_S``
seconds (default 60; the whole run, ramps included), starting or stopping ``SDLAB_SPAWN_RATE`` users a
second (default: all of them in one second).
"""

from __future__ import annotations

import os

from locust import LoadTestShape

from services.lab.generators.curves import SHAPE_NAMES, users_at


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


class EnvShape(LoadTestShape):
    def __init__(self) -> None:
        super().__init__()
        self.shape_name = os.environ.get("SDLAB_SHAPE", "").strip() or "steady"
        if self.shape_name not in SHAPE_NAMES:
            raise ValueError(f"SDLAB_SHAPE={self.shape_name!r} is not one of {', '.join(SHAPE_NAMES)}")
        self.users = _env_number("SDLAB_USERS", 50)
        self.spawn_rate = _env_number("SDLAB_SPAWN_RATE", float(self.users), float)
        self.duration = _env_number("SDLAB_DURATION_S", 60.0, float)

    def tick(self) -> tuple[int, float] | None:
        count = users_at(self.shape_name, self.get_run_time(), self.users, self.duration)
        return None if count is None else (count, self.spawn_rate)
