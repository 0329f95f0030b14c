"""The closed-loop load shapes' curves: how many users at each moment. Pure, no Locust import.

- steady: all the users, from the first second to the end.
- step: five equal steps, users/5 up to users, each a fifth of the duration.
- spike: a quarter of the users, all of them from 40% to 60% of the duration, then a quarter again.
- soak: steady load meant for long runs (hours), to watch memory, connections and leaks over time.
"""

from __future__ import annotations

SHAPE_NAMES = ("steady", "step", "spike", "soak")
STEPS = 5
SPIKE_START, SPIKE_END = 0.4, 0.6


def users_at(shape_name: str, t: float, users: int, duration: float) -> int | None:
    """Users wanted ``t`` seconds into a run of ``shape_name``; None once ``duration`` is over."""
    if shape_name not in SHAPE_NAMES:
        raise ValueError(f"unknown shape {shape_name!r}; choose one of {', '.join(SHAPE_NAMES)}")
    if t >= duration:
        return None
    if shape_name == "step":
        step = min(STEPS - 1, int(t * STEPS / duration))
        return max(1, -(-users * (step + 1) // STEPS))  # ceil: the last step is exactly `users`
    if shape_name == "spike":
        if SPIKE_START * duration <= t < SPIKE_END * duration:
            return users
        return max(1, users // 4)
    return users  # steady, soak
