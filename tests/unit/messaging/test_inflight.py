"""The open-loop generator's bound on messages in flight (:mod:`loadtests.messaging.inflight`)."""

from __future__ import annotations

import pytest

from loadtests.messaging.inflight import InFlight


def test_a_message_is_in_flight_until_acknowledged_and_on_every_members_socket():
    f = InFlight(limit=2)
    f.sent()
    f.sent()
    assert f.full() and f.count == 2
    f.acknowledged("m1", members=2)
    f.delivered("m1")
    assert f.count == 2 and f.missing_deliveries() == 1  # the peer's copy is still to come
    f.delivered("m1")
    assert f.count == 1 and not f.full() and f.completed == 1
    f.refused()  # m2 was refused: it is no longer in flight either
    assert f.count == 0 and f.missing_deliveries() == 0


def test_deliveries_that_beat_their_ack_complete_the_message_at_the_ack():
    f = InFlight(limit=1)
    f.sent()
    f.delivered("m1")
    f.delivered("m1")
    assert f.count == 1 and f.missing_deliveries() == 0  # not acknowledged yet: still in flight
    f.acknowledged("m1", members=2)
    assert f.count == 0 and f.completed == 1 and "m1" not in f.undelivered


def test_without_a_limit_nothing_is_ever_full_and_a_limit_below_one_is_refused():
    f = InFlight()
    for _ in range(10_000):
        f.sent()
    assert not f.full()
    with pytest.raises(ValueError):
        InFlight(limit=0)


def test_the_engine_hands_the_specs_bound_to_the_designs_own_generator(tmp_path):
    from services.lab.contract import LoadSpec
    from services.lab.designs import plugin_for
    from services.lab.measure.load import generator_for

    messaging = plugin_for("messaging")
    bounded = generator_for(messaging, LoadSpec("messaging", generator="script", rate=10, max_vus=50), "http://x",
                      tmp_path, {}, "127.0.0.1")
    assert bounded.env["SDLAB_MAX_VUS"] == "50"
    unbounded = generator_for(messaging, LoadSpec("messaging", generator="script", rate=10), "http://x", tmp_path, {},
                        "127.0.0.1")
    assert "SDLAB_MAX_VUS" not in unbounded.env
