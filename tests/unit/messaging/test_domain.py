"""Messaging's pure logic: frame parsing, members, message ids."""

from __future__ import annotations

import json

import pytest

from messaging import domain
from messaging.domain import FrameRejected, MarkRead, Resume, SendMessage, parse_frame
from services.errors import InvalidInput


def _send(**kw) -> str:
    return json.dumps({"type": "send", "conversation_id": "c1", "client_msg_id": "m1", "text": "hi", **kw})


def test_send_resume_and_read_parse():
    assert parse_frame(_send()) == SendMessage("c1", "m1", "hi")
    assert parse_frame(b'{"type":"resume","positions":{"c1":3,"c2":0}}') == Resume({"c1": 3, "c2": 0})
    assert parse_frame('{"type":"read","conversation_id":"c1","seq":7}') == MarkRead("c1", 7)


@pytest.mark.parametrize("raw, code, words", [
    ("not json", "bad_frame", "not JSON"),
    ("[1, 2]", "bad_frame", "JSON object"),
    ('{"text": "x"}', "bad_frame", "no \"type\""),
    ('{"type": "shout"}', "bad_frame", "unknown frame type 'shout'"),
    (_send(text=""), "bad_frame", "non-empty"),
    (_send(conversation_id=5), "bad_frame", "conversation_id"),
    (_send(client_msg_id="x" * 65), "bad_frame", "client_msg_id"),
    (_send(text="é" * 2049), "message_too_large", "4098 UTF-8 bytes"),
    ('{"type":"resume","positions":{"c1":-1}}', "bad_frame", "whole number"),
    ('{"type":"resume","positions":{"c1":true}}', "bad_frame", "whole number"),
    ('{"type":"resume","positions":[]}', "bad_frame", "positions"),
    ('{"type":"read","conversation_id":"c1","seq":0}', "bad_frame", ">= 1"),
    # PostgreSQL text cannot hold NUL: refused at the edge, not a 500 or an internal_error frame.
    (_send(text="a\u0000b"), "bad_frame", "NUL"),
    (_send(conversation_id="c\u0000"), "bad_frame", "without NUL"),
    ('{"type":"resume","positions":{"c\\u0000":1}}', "bad_frame", "whole number"),
])
def test_bad_frames_name_the_problem(raw, code, words):
    with pytest.raises(FrameRejected) as caught:
        parse_frame(raw)
    assert caught.value.code == code and words in caught.value.message


def test_text_limit_counts_utf8_bytes_not_characters():
    assert parse_frame(_send(text="é" * 2048)).text == "é" * 2048  # 4,096 bytes: allowed


def test_message_id_is_the_same_for_a_resend_and_differs_otherwise():
    a = domain.message_id_for("alice", "c1", "m1")
    assert a == domain.message_id_for("alice", "c1", "m1")
    assert len({a, domain.message_id_for("bob", "c1", "m1"), domain.message_id_for("alice", "c2", "m1"),
                domain.message_id_for("alice", "c1", "m2")}) == 4


def test_members_add_the_creator_once_and_keep_order():
    assert domain.conversation_members("alice", ["bob", "alice", "bob", "carol"]) == ("alice", "bob", "carol")


@pytest.mark.parametrize("members, code", [
    (["Bob"], "invalid_members"),
    (["a" * 33], "invalid_members"),
    ("bob", "invalid_members"),
    ([f"u{i}" for i in range(1000)], "too_many_members"),  # 1,000 plus the creator
])
def test_bad_members_are_refused(members, code):
    with pytest.raises(InvalidInput) as caught:
        domain.conversation_members("alice", members)
    assert caught.value.code == code


def test_a_group_of_a_thousand_is_allowed():
    assert len(domain.conversation_members("u0", [f"u{i}" for i in range(1000)])) == 1000


def test_a_rate_limit_frame_never_says_retry_after_zero():
    error_frame = domain.error_frame
    assert error_frame("rate_limited", "slow down", 0.0004)["retry_after"] == 0.001
    assert error_frame("rate_limited", "slow down", 0.25)["retry_after"] == 0.25
    assert "retry_after" not in error_frame("bad_frame", "no")
