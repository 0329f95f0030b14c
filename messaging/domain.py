"""Messaging's pure logic: conversations, messages, and the WebSocket protocol's frames. No I/O.

The protocol (docs/messaging.md says it for client writers) is JSON text frames:
client ``send``/``resume``/``read``; server ``ack``/``message``/``resumed``/``receipt``/
``presence``/``error``. Parsing a client frame either gives a command or raises
:class:`FrameRejected` with the error frame's code; the connection stays open either way.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime

import orjson

from services.auth import USER_NAME, USER_NAME_RULE
from services.errors import InvalidInput

MAX_TEXT_BYTES = 4096
MAX_FRAME_BYTES = 64 * 1024  # larger frames close the connection with 1009 (the library enforces it)
MAX_MEMBERS = 1000
MAX_CLIENT_MSG_ID = 64
MAX_TITLE = 200
_MESSAGE_IDS = uuid.UUID("6f1d3c1e-6b1e-4f43-9a57-0b7d0c4c2a11")  # namespace of message ids


class FrameRejected(InvalidInput):
    """A client frame the server will not act on; ``code`` is the error frame's code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


@dataclass(frozen=True)
class Conversation:
    id: str
    members: tuple[str, ...]
    title: str | None
    created_at: datetime
    last_seq: int = 0


@dataclass(frozen=True)
class Message:
    """A message as stored: ``seq`` is its place in its conversation (1, 2, 3, ... with no gaps)."""

    conversation_id: str
    seq: int
    message_id: str
    sender: str
    text: str
    sent_at: datetime


@dataclass(frozen=True)
class MessageSent:
    """The event a sender's gateway publishes under ``log-first`` (before a seq exists)."""

    conversation_id: str
    message_id: str
    sender: str
    text: str
    sent_at: datetime


# Commands, parsed from client frames.
@dataclass(frozen=True)
class SendMessage:
    conversation_id: str
    client_msg_id: str
    text: str


@dataclass(frozen=True)
class Resume:
    positions: dict[str, int]


@dataclass(frozen=True)
class MarkRead:
    conversation_id: str
    seq: int


def new_conversation_id() -> str:
    return uuid.uuid4().hex


def message_id_for(sender: str, conversation_id: str, client_msg_id: str) -> str:
    """The same (sender, conversation, client_msg_id) always names the same message: a resend is
    recognised wherever it lands (any gateway, either write path) without a lookup table."""
    return uuid.uuid5(_MESSAGE_IDS, f"{sender}\n{conversation_id}\n{client_msg_id}").hex


def conversation_members(creator: str, members: list[str]) -> tuple[str, ...]:
    """The members of a new conversation: the named ones plus the creator, each once, in order."""
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise InvalidInput("members must be a list of user names", code="invalid_members")
    bad = [m for m in members if not USER_NAME.fullmatch(m)]
    if bad:
        raise InvalidInput(f"member {bad[0]!r} is not a user name ({USER_NAME_RULE})", code="invalid_members")
    unique = tuple(dict.fromkeys([creator, *members]))
    if len(unique) > MAX_MEMBERS:
        raise InvalidInput(f"a conversation has at most {MAX_MEMBERS} members, not {len(unique)}",
                           code="too_many_members")
    return unique


def check_title(title: str | None) -> str | None:
    if title is not None and (not title.strip() or len(title) > MAX_TITLE):
        raise InvalidInput(f"title must be 1-{MAX_TITLE} characters", code="invalid_title")
    return title


def parse_frame(raw: str | bytes) -> SendMessage | Resume | MarkRead:
    """A client frame as a command; FrameRejected names what is wrong with it."""
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise FrameRejected("bad_frame", "the frame is not JSON") from None
    if not isinstance(frame, dict):
        raise FrameRejected("bad_frame", "a frame is a JSON object with a \"type\"")
    kind = frame.get("type")
    if kind == "send":
        conversation_id = _string(frame, "conversation_id", 64)
        client_msg_id = _string(frame, "client_msg_id", MAX_CLIENT_MSG_ID)
        text = frame.get("text")
        if not isinstance(text, str) or not text:
            raise FrameRejected("bad_frame", "send needs a non-empty \"text\" string")
        if "\x00" in text:  # PostgreSQL text cannot hold it
            raise FrameRejected("bad_frame", "text contains a NUL character")
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_TEXT_BYTES:
            raise FrameRejected("message_too_large", f"text is {size} UTF-8 bytes; the limit is {MAX_TEXT_BYTES}")
        return SendMessage(conversation_id, client_msg_id, text)
    if kind == "resume":
        positions = frame.get("positions")
        if not isinstance(positions, dict) or len(positions) > 10_000:
            raise FrameRejected("bad_frame", "resume needs \"positions\": {conversation_id: last_seq, ...}")
        for key, value in positions.items():
            if not key or len(key) > 64 or "\x00" in key or not _is_seq(value):
                raise FrameRejected("bad_frame", f"position {key!r}: {value!r} must be a whole number >= 0")
        return Resume(dict(positions))
    if kind == "read":
        conversation_id = _string(frame, "conversation_id", 64)
        seq = frame.get("seq")
        if not _is_seq(seq) or seq < 1:
            raise FrameRejected("bad_frame", "read needs \"seq\": a whole number >= 1")
        return MarkRead(conversation_id, seq)
    if kind is None:
        raise FrameRejected("bad_frame", "the frame has no \"type\"")
    raise FrameRejected("bad_frame", f"unknown frame type {str(kind)[:40]!r}; send, resume or read")


def _is_seq(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62


def _string(frame: dict, field: str, limit: int) -> str:
    value = frame.get(field)
    if not isinstance(value, str) or not value or len(value) > limit or "\x00" in value:
        raise FrameRejected("bad_frame", f"{frame.get('type')} needs \"{field}\": a string of 1-{limit} characters "
                                         "without NUL")
    return value


# Server frames. Each is built here so every entrypoint and the tests agree on the shapes.
def message_frame(message: Message) -> dict:
    return {"type": "message", "conversation_id": message.conversation_id, "seq": message.seq,
            "message_id": message.message_id, "sender": message.sender, "text": message.text,
            "sent_at": message.sent_at.isoformat()}


def ack_frame(conversation_id: str, client_msg_id: str, seq: int | None, message_id: str) -> dict:
    return {"type": "ack", "conversation_id": conversation_id, "client_msg_id": client_msg_id,
            "seq": seq, "message_id": message_id}


def receipt_frame(conversation_id: str, user: str, seq: int) -> dict:
    return {"type": "receipt", "conversation_id": conversation_id, "user": user, "seq": seq}


def presence_frame(user: str, online: bool) -> dict:
    return {"type": "presence", "user": user, "online": online}


def error_frame(code: str, message: str, retry_after_s: float | None = None,
                answering: SendMessage | None = None) -> dict:
    """``answering``: the send this error refuses, named so the client knows which message failed."""
    frame = {"type": "error", "code": code, "message": message}
    if answering is not None:
        frame["conversation_id"] = answering.conversation_id
        frame["client_msg_id"] = answering.client_msg_id
    if retry_after_s is not None:
        # Rounded up to the millisecond: a wait under half a millisecond rounded to 0 told the
        # client to retry at once, which the limiter would refuse again.
        frame["retry_after"] = math.ceil(retry_after_s * 1000) / 1000
    return frame


def resumed_frame(positions: dict[str, int]) -> dict:
    return {"type": "resumed", "positions": positions}
