"""The loop that watches a load generator (``sdlab load`` on the lab's stack and at a target), on a fake
clock with a fake driver, process and CPU sampler: what it takes, samples and shows each second, the order
in which the stack's samplers are called, and what an interrupt does."""

from __future__ import annotations

import pytest

from services.lab.measure import generator_watch
from services.lab.measure.generator_watch import watch_generator
from services.lab.measure.load import StackReadings

WALL0 = 1_800_000_000.0


class Clock:
    """time.sleep / time.time / time.monotonic in tenths of a second, so that ten sleeps of 0.1 s are one second."""

    def __init__(self) -> None:
        self.tenths = 0

    def sleep(self, seconds: float) -> None:
        self.tenths += round(seconds * 10)

    def monotonic(self) -> float:
        return self.tenths / 10

    def time(self) -> float:
        return WALL0 + self.tenths / 10


class Proc:
    """A generator process that runs for ``ticks`` polls of the loop."""

    def __init__(self, ticks: int, events: list) -> None:
        self.left, self.events = ticks, events

    def poll(self):
        self.left -= 1
        return None if self.left >= 0 else 0

    def terminate(self) -> None:
        self.events.append(("terminate",))

    def wait(self, timeout=None) -> int:
        self.events.append(("wait", timeout))
        return -15


class Driver:
    """Asks for checkpoint ``start`` at its 3rd look and ``end`` at its 25th; one row a second, one more at the end."""

    def __init__(self, clock: Clock, events: list, interrupt_at: int | None = None) -> None:
        self.clock, self.events, self.interrupt_at = clock, events, interrupt_at
        self.looks = self.takes = 0

    def pending_checkpoint(self):
        self.looks += 1
        return {3: "start", 25: "end"}.get(self.looks)

    def release(self, name: str) -> None:
        self.events.append(("release", name))

    def take(self) -> list[dict]:
        self.takes += 1
        if self.takes == self.interrupt_at:
            raise KeyboardInterrupt
        self.events.append(("take",))
        return [{"t": self.takes - 1, "requests": 10 * self.takes, "failures": 0, "p50_ms": 1.0, "p99_ms": 2.0,
                 "users": 2, "by_name": {}}]

    def finish(self) -> list[dict]:
        self.events.append(("finish",))
        return [{"t": self.takes, "requests": 1, "failures": 0, "p50_ms": 1.0, "p99_ms": 2.0, "users": 2,
                 "by_name": {}}]


class Sampler:
    def __init__(self, events: list) -> None:
        self.events, self.machine_percent, self.n = events, None, 0

    def sample(self) -> dict[str, float]:
        self.n += 1
        self.machine_percent = 50.0 + self.n
        self.events.append(("sample",))
        return {"load-generator": float(self.n)}


class Stack:
    def __init__(self, events: list) -> None:
        self.events = events

    def checkpoint(self, name: str) -> None:
        self.events.append(("checkpoint", name))

    def before_sample(self, tick: int) -> None:
        self.events.append(("before", tick))

    def after_sample(self, t: int) -> None:
        self.events.append(("after", t))


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(generator_watch, "time", clock)
    return clock


def test_each_second_the_generator_s_cpu_is_sampled_and_its_rows_taken_then_its_last_rows(clock):
    events: list = []
    said: list[str] = []
    driver = Driver(clock, events)
    run = watch_generator(driver, Proc(6, events), Sampler(events), WALL0, 0.0, said.append)
    assert [row["t"] for row in run.seconds] == [0, 1, 2, 3, 4, 5, 6]  # six taken, the last one from finish
    assert run.readings == {t: {"cpu": {"load-generator": float(t)}, "machine_cpu": 50.0 + t} for t in range(1, 7)}
    assert run.elapsed == 6.0
    # A checkpoint is released even with no stack to read; the live line shows every 5 s off a terminal.
    assert [e for e in events if e[0] == "release"] == [("release", "start"), ("release", "end")]
    assert events[-1] == ("finish",) and ("terminate",) not in events
    assert said == ["[    5s] users    2  rps     50  p50    1.0ms p99     2.0ms  fail   0.0%  generator cpu   5%"]


def test_the_stack_is_read_at_each_checkpoint_before_its_release_and_around_each_sample(clock):
    events: list = []
    watch_generator(Driver(clock, events), Proc(3, events), Sampler(events), WALL0, 0.0, lambda _line: None,
                    Stack(events))
    assert events == [
        ("checkpoint", "start"), ("release", "start"), ("before", 0), ("sample",), ("after", 1), ("take",),
        ("before", 1), ("sample",), ("after", 2), ("take",),
        ("checkpoint", "end"), ("release", "end"), ("before", 2), ("sample",), ("after", 3), ("take",),
        ("finish",),
    ]


def test_an_interrupt_terminates_the_generator_closes_the_live_line_and_is_raised_again(clock, monkeypatch):
    events: list = []

    class Live:
        def __init__(self, say) -> None:
            pass

        def show(self, elapsed, seconds, cpu) -> None:
            events.append(("show", elapsed))

        def close(self) -> None:
            events.append(("close",))

    monkeypatch.setattr(generator_watch, "LiveLine", Live)
    with pytest.raises(KeyboardInterrupt):
        watch_generator(Driver(clock, events, interrupt_at=2), Proc(10, events), Sampler(events), WALL0, 0.0,
                        lambda _line: None, Stack(events))
    assert events[-6:] == [("before", 1), ("sample",), ("after", 2), ("terminate",), ("wait", 30), ("close",)]
    assert ("finish",) not in events


def test_on_the_lab_s_stack_the_readings_follow_restarts_every_few_seconds_and_keep_each_second(clock):
    events: list = []

    class Backend:
        refresh_every_s = 3

        def find_state(self):
            events.append(("find_state",))
            return "state now"

    class Refreshed(Sampler):
        rss_mib = {"redis": 1.5}

        def refresh(self, state) -> None:
            events.append(("sampler.refresh", state))

    class Meter:
        def read(self):
            return f"meter at {clock.tenths / 10:g} s"

        def refresh(self, state) -> None:
            events.append(("meter.refresh", state))

    class Budgets:
        def sample(self) -> dict:
            return {"postgres-0": {"cores": 0.1, "throttled": 0.5}}

    stack = StackReadings(Backend(), Refreshed(events), Meter(), Budgets())
    watch_generator(Driver(clock, events), Proc(7, events), stack.sampler, WALL0, 0.0, lambda _line: None, stack)
    assert stack.marks == {"start": "meter at 0.3 s", "end": "meter at 2.5 s"}
    assert stack.rss_mib == {t: {"redis": 1.5} for t in range(1, 8)}
    assert stack.budget == {t: {"postgres-0": {"cores": 0.1, "throttled": 0.5}} for t in range(1, 8)}
    refreshes = [i for i, e in enumerate(events) if e[0] == "find_state"]
    samples = [i for i, e in enumerate(events) if e == ("sample",)]
    assert [samples.index(min(s for s in samples if s > i)) for i in refreshes] == [2, 5]  # before the 3rd and 6th
    after_first = events[refreshes[0] + 1:refreshes[0] + 3]
    assert after_first == [("sampler.refresh", "state now"), ("meter.refresh", "state now")]
