"""Messages in flight in the open-loop generator: sent and not yet answered, or acknowledged and
not yet on every member's socket.

An open loop offered more than the stack carries would otherwise queue sends without end (in the
client, the gateways, the log): the run outlives its duration by minutes and its latencies measure
that queue. With a bound, a send due while ``limit`` messages are in flight is dropped and counted
(k6's ``dropped_iterations``), so the backlog, and the drain after the last send, stay bounded.
"""

from __future__ import annotations

from collections import Counter


class InFlight:
    """``limit``: the most messages in flight (None: no bound). A message leaves the count when it is
    refused, or once it is acknowledged and every member (its sender too) received it, whichever of
    the ack and the deliveries comes last (a delivery can beat its sender's ack)."""

    def __init__(self, limit: int | None = None) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"the bound on messages in flight must be at least 1, not {limit}")
        self.limit = limit
        self.count = 0
        # Per message id: member deliveries still to come once acked (below 0: some came before the ack).
        self.undelivered: Counter[str] = Counter()
        self.completed = 0

    def full(self) -> bool:
        return self.limit is not None and self.count >= self.limit

    def sent(self) -> None:
        self.count += 1

    def refused(self) -> None:
        self.count -= 1

    def acknowledged(self, message_id: str, members: int) -> None:
        self.undelivered[message_id] += members
        if self.undelivered[message_id] == 0:  # every member had it before the ack came
            self._done(message_id)

    def delivered(self, message_id: str) -> None:
        self.undelivered[message_id] -= 1
        # Only an acknowledged message comes down to 0 (before its ack the count is below 0).
        if self.undelivered[message_id] == 0:
            self._done(message_id)

    def _done(self, message_id: str) -> None:
        del self.undelivered[message_id]
        self.count -= 1
        self.completed += 1

    def missing_deliveries(self) -> int:
        """Member deliveries of acknowledged messages still to come."""
        return sum(n for n in self.undelivered.values() if n > 0)
