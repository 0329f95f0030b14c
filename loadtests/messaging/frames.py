"""What both load generators (the asyncio one and the Locust file) share: a message's text, which
carries its scheduled send time, and a reader's bookkeeping per conversation."""

from __future__ import annotations


class Position:
    __slots__ = ("base", "last", "received", "duplicates", "out_of_order")

    def __init__(self, base: int) -> None:
        self.base = self.last = base
        self.received = self.duplicates = self.out_of_order = 0

    def take(self, seq: int) -> bool:
        """Count one delivered seq; True when it is the next one."""
        if seq <= self.last:
            self.duplicates += 1
            return False
        if seq != self.last + 1:
            self.out_of_order += 1
        self.last = seq
        self.received += 1
        return True

    def row(self) -> list[int]:
        return [self.base, self.last, self.received, self.duplicates, self.out_of_order]


def text_for(run: str, scheduled: float, k: int, size: int) -> str:
    """A message's text: the run, its scheduled send time and number, padded to ``size`` bytes."""
    head = f"lt|{run}|{scheduled:.6f}|{k}|"
    return head + "x" * max(0, size - len(head))


def scheduled_of(text: str, run: str) -> float | None:
    parts = text.split("|", 4)
    if len(parts) < 4 or parts[0] != "lt" or parts[1] != run:
        return None
    return float(parts[2])
