"""The per-connection delivery cursor: once each, in order, across live delivery and replays."""

from __future__ import annotations

from messaging.resume import DeliveryCursor, Verdict


def test_live_messages_in_order_are_sent_and_repeats_dropped():
    cursor = DeliveryCursor(awaiting=False)
    assert cursor.offer("c", 1, "m1") is Verdict.SEND  # no position yet: take what comes
    assert cursor.offer("c", 2, "m2") is Verdict.SEND
    assert cursor.offer("c", 2, "m2") is Verdict.DROP
    assert cursor.offer("c", 1, "m1") is Verdict.DROP


def test_a_gap_is_held_until_the_replay_fills_it():
    cursor = DeliveryCursor(last={"c": 2})
    assert cursor.offer("c", 5, "m5") is Verdict.REPAIR
    assert cursor.offer("c", 6, "m6") is Verdict.HOLD
    # The repair reads 3..5 from the database; 5 arrives twice (live and replayed).
    assert [s for s in (3, 4, 5) if cursor.replayed("c", s)] == [3, 4, 5]
    held, gap = cursor.end_replay("c")
    assert (held, gap) == (["m6"], False)
    assert cursor.offer("c", 7, "m7") is Verdict.SEND


def test_resume_holds_live_messages_then_sends_each_once_in_order():
    cursor = DeliveryCursor(awaiting=False)
    after = cursor.begin_replay("c", 10)
    assert after == 10
    # Live messages 12 and 13 arrive while the replay reads the database.
    assert cursor.offer("c", 12, "m12") is Verdict.HOLD
    assert cursor.offer("c", 13, "m13") is Verdict.HOLD
    sent = [s for s in (11, 12) if cursor.replayed("c", s)]  # the database had up to 12
    held, gap = cursor.end_replay("c")
    assert sent == [11, 12] and held == ["m13"] and not gap


def test_a_replay_never_goes_behind_what_the_connection_has():
    cursor = DeliveryCursor(last={"c": 20})
    assert cursor.begin_replay("c", 5) == 20
    assert not cursor.replayed("c", 19)


def test_a_gap_the_database_cannot_fill_is_reported_then_given_up_in_order():
    cursor = DeliveryCursor(last={"c": 1})
    cursor.begin_replay("c", 1)
    cursor.offer("c", 4, "m4")
    cursor.offer("c", 3, "m3")
    held, gap = cursor.end_replay("c")
    assert held == [] and gap  # 2 is missing
    assert cursor.give_up_gap("c") == ["m3", "m4"]
    assert cursor.last["c"] == 4


def test_a_new_connection_holds_live_messages_until_its_client_says_where_it_stands():
    cursor = DeliveryCursor()
    # Reconnected at seq 10 of "c"; 16 arrives live before the resume frame is read.
    assert cursor.offer("c", 16, "m16") is Verdict.HOLD
    assert cursor.offer("d", 3, "d3") is Verdict.HOLD
    assert cursor.offer("d", 4, "d4") is Verdict.HOLD
    assert cursor.start({"c"}) == ["d3", "d4"]  # "d" is not resumed: released in order
    assert not cursor.awaiting and cursor.offer("d", 5, "d5") is Verdict.SEND
    assert cursor.begin_replay("c", 10) == 10
    sent = [s for s in range(11, 17) if cursor.replayed("c", s)]  # the database has 11..16
    held, gap = cursor.end_replay("c")
    assert sent == [11, 12, 13, 14, 15, 16] and held == [] and not gap  # 16 once, after 15


def test_a_client_that_never_resumes_gets_what_was_held_once_it_starts():
    cursor = DeliveryCursor()
    cursor.offer("c", 7, "m7")
    cursor.offer("c", 8, "m8")
    assert cursor.start() == ["m7", "m8"] and cursor.offer("c", 9, "m9") is Verdict.SEND


def test_a_resume_after_the_grace_backfills_what_was_never_sent():
    cursor = DeliveryCursor()
    cursor.offer("c", 16, "m16")
    assert cursor.start() == ["m16"]  # the grace passed: 16 went out live
    assert cursor.offer("c", 17, "m17") is Verdict.SEND
    assert cursor.backfill("c", 10) == 15  # 11..15 were never sent: send them now
    assert cursor.backfill("c", 10) is None  # once
    assert cursor.begin_replay("c", 10) == 17  # the usual replay goes on from what was sent


def test_no_backfill_when_the_resume_is_where_live_delivery_began():
    cursor = DeliveryCursor(awaiting=False)
    cursor.offer("c", 11, "m11")
    assert cursor.backfill("c", 10) is None


def test_a_resumed_conversation_holds_live_messages_until_its_replay_starts():
    cursor = DeliveryCursor()
    assert cursor.start({"c"}) == []
    assert cursor.offer("c", 16, "m16") is Verdict.HOLD  # its replay is still queued
    assert cursor.begin_replay("c", 10) == 10
    assert [s for s in range(11, 17) if cursor.replayed("c", s)] == [11, 12, 13, 14, 15, 16]
    assert cursor.end_replay("c") == ([], False)
