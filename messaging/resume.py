"""Per-connection delivery order: the resume protocol's bookkeeping, written by hand because the
design exists to teach it. Pure logic; the gateway does the I/O.

A connection remembers the last seq it sent per conversation. A live message is then sent
(the next seq, or a conversation it has no position for), dropped (a seq it already sent:
at-least-once delivery upstream makes duplicates normal), or held while the gaps before it are
read from the database. A replay (``resume``, or a gap repair) holds live messages of its
conversation, sends what the database has, then releases what was held, in order, once each.
That is "subscribe first, then replay, then deduplicate".

A new connection is subscribed before its client has said where it stands, so until its first
frame (a ``resume`` names its positions) or ``start`` is called, live messages of conversations
it has no position for are held too: a reconnecting client must get 11..15 before 16, not 16
then a replay that can no longer go back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Verdict(Enum):
    SEND = "send"
    DROP = "drop"  # already sent
    HOLD = "hold"  # a replay of its conversation is running
    REPAIR = "repair"  # a gap before it: hold it and read the gap from the database


@dataclass
class DeliveryCursor:
    last: dict[str, int] = field(default_factory=dict)
    held: dict[str, dict[int, object]] = field(default_factory=dict)
    awaiting: bool = True  # the client has not said where it stands yet
    # The first seq sent per conversation without knowing the client's position: a resume that
    # comes later (after the grace) may name an older one, and what lies between was never sent.
    first_live: dict[str, int] = field(default_factory=dict)

    def start(self, resuming: set[str] | frozenset[str] = frozenset()) -> list[object]:
        """The client spoke: release what was held for the conversations it does not resume, in order;
        those it resumes hold their live messages until their replay (which may wait its turn)."""
        self.awaiting = False
        for conversation_id in resuming:
            if conversation_id not in self.last:
                self.held.setdefault(conversation_id, {})
        out: list[object] = []
        for conversation_id in [c for c in self.held if c not in resuming and c not in self.last]:
            held = self.held.pop(conversation_id)
            self.first_live[conversation_id] = min(held)
            for seq in sorted(held):
                out.append(held[seq])
                self.last[conversation_id] = seq
        return out

    def backfill(self, conversation_id: str, after_seq: int) -> int | None:
        """A resume from ``after_seq`` came after live messages from ``first_live`` on were sent:
        the last seq of the range never sent (``after_seq`` < seq < ``first_live``), or None.
        Sent out of order, but once each and none lost."""
        first = self.first_live.pop(conversation_id, None)
        return first - 1 if first is not None and after_seq < first - 1 else None

    def offer(self, conversation_id: str, seq: int, payload: object) -> Verdict:
        if self.awaiting and conversation_id not in self.last:
            self.held.setdefault(conversation_id, {})[seq] = payload
            return Verdict.HOLD
        held = self.held.get(conversation_id)
        if held is not None:
            if seq > self.last.get(conversation_id, 0):
                held[seq] = payload
            return Verdict.HOLD
        last = self.last.get(conversation_id)
        if last is not None and seq <= last:
            return Verdict.DROP
        if last is None or seq == last + 1:
            if last is None:
                self.first_live[conversation_id] = seq
            self.last[conversation_id] = seq
            return Verdict.SEND
        self.held[conversation_id] = {seq: payload}
        return Verdict.REPAIR

    def begin_replay(self, conversation_id: str, after_seq: int) -> int:
        """Start holding live messages; returns the seq to replay after (never behind what was sent)."""
        after = max(after_seq, self.last.get(conversation_id, 0))
        self.last[conversation_id] = after
        self.held.setdefault(conversation_id, {})
        return after

    def replayed(self, conversation_id: str, seq: int) -> bool:
        """Whether a message read from the database during a replay is to be sent."""
        if seq <= self.last.get(conversation_id, 0):
            return False
        self.last[conversation_id] = seq
        return True

    def end_replay(self, conversation_id: str) -> tuple[list[object], bool]:
        """The held messages to send now, in order; True when a gap remains (replay again)."""
        held = self.held.pop(conversation_id, {})
        out: list[object] = []
        last = self.last.get(conversation_id, 0)
        for seq in sorted(held):
            if seq <= last:
                continue
            if seq != last + 1:
                # Still a gap: hold the rest again for the next replay.
                self.held[conversation_id] = {s: held[s] for s in held if s >= seq}
                self.last[conversation_id] = last
                return out, True
            out.append(held[seq])
            last = seq
        self.last[conversation_id] = last
        return out, False

    def give_up_gap(self, conversation_id: str) -> list[object]:
        """After repeated replays the gap is not in the database either: send what is held, in order."""
        held = self.held.pop(conversation_id, {})
        out = []
        for seq in sorted(held):
            if seq > self.last.get(conversation_id, 0):
                out.append(held[seq])
                self.last[conversation_id] = seq
        return out
