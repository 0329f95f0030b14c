"""Messaging's load tooling, pure parts: the reader's bookkeeping, the samples, the schedule, the checks."""

from __future__ import annotations

import json

import pytest

from loadtests.messaging import checks
from loadtests.messaging.frames import Position, scheduled_of, text_for
from loadtests.messaging.openloop import rate_at
from loadtests.messaging.samples import ACK, DELIVER, Samples
from loadtests.messaging.seed import group_sizes, layout


def test_a_reader_counts_next_duplicate_and_out_of_order_seqs():
    p = Position(3)
    assert [p.take(s) for s in (4, 5, 5, 7, 6, 8, 3)] == [True, True, False, True, True, True, False]
    assert p.row() == [3, 8, 5, 2, 1]  # base, end of the unbroken run, received, twice, out of order
    gap = Position(0)
    assert [gap.take(s) for s in (1, 3)] == [True, True] and gap.last == 1  # resumes from 1, not 3


def test_a_text_carries_its_scheduled_send_and_run():
    text = text_for("r1", 1700000000.123456, 42, 100)
    assert len(text) == 100 and scheduled_of(text, "r1") == pytest.approx(1700000000.123456)
    assert scheduled_of(text, "other-run") is None and scheduled_of("hello", "r1") is None


def test_samples_write_one_row_a_second_and_totals_with_delivery_percentiles(tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("loadtests.messaging.samples.time.time", lambda: clock[0])
    path = tmp_path / "timeline.jsonl"
    s = Samples(1000.0, str(path))
    for ms in (1.0, 2.0, 3.0):
        s.add(ACK, ms)
    s.add(ACK, None, failed=True)
    for ms in range(1, 101):
        s.add(DELIVER, float(ms))
    clock[0] = 1001.5
    s.drop()
    s.flush(2)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["t"] for r in rows] == [0, 1]
    assert rows[0]["requests"] == 4 and rows[0]["failures"] == 1 and rows[0]["p50_ms"] == 50.0
    assert rows[0]["by_name"][DELIVER][:2] == [100, 0] and rows[1]["dropped"] == 1
    totals = s.totals(seconds=2, unanswered=2)
    assert totals["total"]["requests"] == 6 and totals["total"]["failures"] == 3  # 1 refused + 2 never answered
    assert totals["total"]["p99_ms"] == 99.0 and totals["endpoints"][ACK]["rps"] == 1.5
    assert totals["dropped_iterations"] == 1


def test_the_schedule_follows_k6_stages():
    assert rate_at(5, 100, None, 0) == 100
    stages = [{"target": 100, "duration": "10s"}]  # a ramp from 0
    assert rate_at(0, 100, stages, 0) == 0 and rate_at(5, 100, stages, 0) == 50 and rate_at(20, 100, stages, 0) == 100
    steps = [{"target": 20, "duration": "0s"}, {"target": 20, "duration": "10.0s"}, {"target": 40, "duration": "0s"}]
    assert rate_at(3, 40, steps, 20) == 20 and rate_at(11, 40, steps, 20) == 40


def test_seed_layout_pairs_neighbours_then_groups():
    users = [f"u{i}" for i in range(6)]
    found = layout(users, (4,))
    assert found[:3] == [("pair", ["u0", "u1"]), ("pair", ["u2", "u3"]), ("pair", ["u4", "u5"])]
    assert found[3] == ("group", ["u0", "u1", "u2", "u3"])
    with pytest.raises(ValueError, match="at least 10 users"):
        layout(users, (10,))
    assert group_sizes("") == (10, 100) and group_sizes("2, 1000") == (2, 1000)
    with pytest.raises(ValueError):
        group_sizes("1")


def _msg(seq: int, mid: str) -> dict:
    return {"seq": seq, "message_id": mid}


def test_history_check_finds_lost_doubled_and_gaps():
    acks = [{"event": "attempted", "conversation_id": "c", "client_msg_id": "1"},
            {"event": "acknowledged", "conversation_id": "c", "client_msg_id": "1", "message_id": "m1", "seq": 1},
            {"event": "acknowledged", "conversation_id": "c", "client_msg_id": "2", "message_id": "m2", "seq": 2},
            {"event": "acknowledged", "conversation_id": "c", "client_msg_id": "3", "message_id": "m3", "seq": 9},
            {"event": "acknowledged", "conversation_id": "d", "client_msg_id": "4", "message_id": "m4", "seq": None}]
    stored = {"c": [_msg(1, "m1"), _msg(2, "m2"), _msg(4, "m2")], "d": [_msg(1, "m4")]}
    f = checks.check_history(acks, stored)
    assert (f["acknowledged"], f["lost"], f["stored_twice"]) == (4, 1, 1)
    assert f["conversations_with_seq_gaps"] == 1 and f["lost_examples"] == ["3"]
    verdicts = checks.checks({**f, **checks.check_readers([], stored)})
    assert [c.passed for c in verdicts] == [False, False]  # no readers: no reader verdict


def test_reader_check_wants_every_message_once_in_order_up_to_the_end():
    stored = {"c": [_msg(i, f"m{i}") for i in range(1, 6)]}
    readers = [{"user": "a", "reconnects": 1, "positions": {"c": [0, 5, 5, 0, 0]}},
               {"user": "b", "reconnects": 0, "positions": {"c": [2, 4, 2, 1, 0]}}]
    f = checks.check_readers(readers, stored)
    assert (f["deliveries_expected"], f["delivered"], f["not_delivered"], f["delivered_twice"]) == (8, 7, 1, 1)
    assert f["not_delivered_examples"] == ["b@c: 4 of 5"] and f["reconnects"] == 1
