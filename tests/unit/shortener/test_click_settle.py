"""The click check waits for the aggregator as long as the count keeps moving (a busy machine
drains Kafka slowly), and no longer than that once it stops."""

from __future__ import annotations

import json

import pytest

from loadtests.shortener import checks


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


@pytest.fixture
def seed(tmp_path):
    path = tmp_path / "seed.json"
    path.write_text(json.dumps({"links": [{"code": "abc"}], "clicks_before": 0}))
    return path


def _counts(monkeypatch, readings):
    clock, seen = Clock(), iter(readings)
    monkeypatch.setattr(checks.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(checks.time, "sleep", clock.sleep)

    async def clicks_of(host, codes):
        return next(seen)

    monkeypatch.setattr(checks, "clicks_of", clicks_of)
    return clock


def test_a_slow_drain_is_waited_for_while_it_moves(monkeypatch, seed):
    # 30 readings 2 s apart, each a little higher: longer than quiet_s in all, never quiet that long.
    readings = [10 * i for i in range(1, 31)] + [300, 300]
    clock = _counts(monkeypatch, readings)
    result = checks.count_clicks("h", seed, redirects_ok=300, quiet_s=15)
    assert result["clicks_counted"] == 300 and result["clicks_missing"] == 0
    assert clock.now > 15


def test_a_count_that_stops_short_is_given_up_after_quiet_s(monkeypatch, seed):
    clock = _counts(monkeypatch, [100, 200] + [250] * 100)
    result = checks.count_clicks("h", seed, redirects_ok=300, quiet_s=15)
    assert result["clicks_missing"] == 50
    assert 15 <= clock.now <= 22


def test_a_count_still_moving_stops_at_the_cap(monkeypatch, seed):
    clock = _counts(monkeypatch, range(1, 1000))
    result = checks.count_clicks("h", seed, redirects_ok=10_000, quiet_s=15, cap_s=60)
    assert result["clicks_missing"] > 0 and 60 <= clock.now <= 64
