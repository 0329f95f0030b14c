"""The kit's ConsumerLoop against an in-memory consumer with the same port as KafkaConsumer."""

from __future__ import annotations

import asyncio

import pytest

from services.consumer_loop import ConsumerLoop
from tests.unit.fake_consumer import Down, FakeConsumer, run_until


class Recorder(ConsumerLoop):
    """Handles a batch by recording its values; fails the batches it is told to, once each."""

    transient = (Down,)
    pause_s = 0.001
    max_records = 3

    def __init__(self, consumer: FakeConsumer, failures: dict[bytes, BaseException] | None = None) -> None:
        super().__init__("recorder", consumer)
        self.failures = dict(failures or {})
        self.handled: list[bytes] = []
        self.commits_seen: list[dict] = []  # what was committed before each batch, against what was handled

    async def handle(self, batch) -> None:
        self.commits_seen.append(dict(self.consumer.committed))
        for records in batch.values():
            for record in records:
                if record.value in self.failures:
                    raise self.failures.pop(record.value)
                self.handled.append(record.value)


def _values(n: int, tag: str = "m") -> list[bytes]:
    return [f"{tag}{i}".encode() for i in range(n)]


async def test_every_record_is_handled_in_order_and_committed_after_its_batch():
    consumer = FakeConsumer({0: _values(7)})
    loop = Recorder(consumer)
    await run_until(loop, consumer.done)
    assert loop.handled == _values(7)
    assert loop.batches == 3  # 3 + 3 + 1 records
    assert [seen[0] for seen in loop.commits_seen] == [0, 3, 6]  # nothing committed ahead of handling
    assert consumer.started and consumer.stopped


@pytest.mark.parametrize("failure", [Down("store down"), RuntimeError("a bug")])
async def test_a_batch_whose_handling_failed_is_handed_again_never_passed_over(failure):
    consumer = FakeConsumer({0: _values(5, "a"), 1: _values(4, "b")})
    loop = Recorder(consumer, failures={b"a4": failure})
    loop.pause_s = 0.001
    await run_until(loop, consumer.done)
    # Every record handled (those before the failure twice: at least once), each partition in order.
    assert set(loop.handled) == set(_values(5, "a")) | set(_values(4, "b"))
    a_order = [v for v in loop.handled if v.startswith(b"a")]
    assert a_order[-2:] == [b"a3", b"a4"]
    assert consumer.committed == {0: 5, 1: 4}


async def test_a_failed_fetch_or_commit_pauses_and_loses_nothing():
    consumer = FakeConsumer({0: _values(4)})
    consumer.fetch_failures.append(Down("broker gone"))
    consumer.commit_failures.append(Down("broker gone"))
    loop = Recorder(consumer)
    await run_until(loop, consumer.done)
    # The commit failed after its batch was handled: the next commit covers it, nothing is handled twice.
    assert loop.handled == _values(4) and consumer.committed == {0: 4}


async def test_stop_drains_the_batch_in_hand_and_commits_it():
    consumer = FakeConsumer({0: _values(2)})
    entered, release = asyncio.Event(), asyncio.Event()

    class Slow(Recorder):
        async def handle(self, batch) -> None:
            entered.set()
            await release.wait()
            await super().handle(batch)

    loop = Slow(consumer)
    await loop.start()
    await entered.wait()
    stopping = asyncio.ensure_future(loop.stop())
    await asyncio.sleep(0.01)
    assert not stopping.done()  # waits for the batch in hand
    release.set()
    await stopping
    assert loop.handled == _values(2) and consumer.committed == {0: 2} and consumer.stopped


async def test_stop_gives_up_on_a_batch_that_outlasts_the_drain_and_leaves_it_uncommitted():
    consumer = FakeConsumer({0: _values(2)})
    entered = asyncio.Event()

    class Stuck(Recorder):
        drain_s = 0.01

        async def handle(self, batch) -> None:
            entered.set()
            await asyncio.Event().wait()

    loop = Stuck(consumer)
    await loop.start()
    await entered.wait()
    await asyncio.wait_for(loop.stop(), 1.0)
    assert consumer.committed == {0: 0} and consumer.position == {0: 0} and consumer.stopped


async def test_an_idle_loop_stops_at_once_and_checks_for_lost_logs_only_when_asked():
    consumer = FakeConsumer({0: []})
    loop = Recorder(consumer)
    await loop.start()
    await asyncio.sleep(0.02)
    await asyncio.wait_for(loop.stop(), 0.5)
    assert consumer.rewind_calls == 0

    consumer = FakeConsumer({0: _values(2)})
    consumer.position[0] = 2  # read already; then the broker loses the log and numbers from 0 again
    consumer.lost = [0]
    loop = Recorder(consumer)
    loop.lost_log_check_s = 0.0
    await run_until(loop, lambda: len(loop.handled) == 2)
    assert consumer.rewind_calls >= 1 and loop.handled == _values(2)
