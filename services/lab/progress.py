"""How a long operation reports what it does: a line printer, and per-component events."""

from __future__ import annotations

from collections.abc import Callable

Say = Callable[[str], None]
# Called as on_event(component, event, detail): "starting", "ready", "waiting", "stopped".
EventSink = Callable[[str, str, str], None]


def quiet(_: str, __: str, ___: str) -> None:
    return None
