"""What both load generators (the asyncio one and the Locust file) share: a message's text, which
carries its scheduled send time, and a reader's bookkeeping per conversation."""

from __future__ import annotations


class Position:
    """What a reader holds of one conversation: ``last``, the end of its unbroken run from ``base``
    (what it resumes from), the seqs it got beyond that run, and how many came twice or after a
    higher one (out of order)."""

    __slots__ = ("base", "last", "above", "top", "received", "duplicates", "out_of_order")

    def __init__(self, base: int) -> None:
        self.base = self.last = self.top = base
        self.above: set[int] = set()
        self.received = self.duplicates = self.out_of_order = 0

    def take(self, seq: int) -> bool:
        """Count one delivered seq; True when it is new to this reader."""
        if seq <= self.last or seq in self.above:
            self.duplicates += 1
            return False
        if seq < self.top:
            self.out_of_order += 1
        self.top = max(self.top, seq)
        self.received += 1
        self.above.add(seq)
        while self.last + 1 in self.above:
            self.last += 1
            self.above.discard(self.last)
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
