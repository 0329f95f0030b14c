"""The compose test's engine: a dockerd it started is stopped at the end, one it found running is left alone."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass

import psutil

from tests.support.engine import Engine, stop_process_tree


@dataclass
class FakeDockerd:
    pid: int


class FakeHost:
    """An engine that answers from the ``answers_from``-th probe on (None: never)."""

    def __init__(self, answers_from: int | None, unavailable: str | None = None) -> None:
        self.answers_from, self.unavailable_reason = answers_from, unavailable
        self.probes, self.launched, self.stopped = 0, [], []

    def answers(self) -> str | None:
        self.probes += 1
        ready = self.answers_from is not None and self.probes >= self.answers_from
        return None if ready else "Cannot connect to the Docker daemon"

    def unavailable(self) -> str | None:
        return self.unavailable_reason

    def launch(self) -> FakeDockerd:
        self.launched.append(FakeDockerd(pid=4242 + len(self.launched)))
        return self.launched[-1]

    def engine(self) -> Engine:
        return Engine(answers=self.answers, unavailable=self.unavailable, launch=self.launch,
                      stop=self.stopped.append, wait_s=0.05, poll_s=0.001)


def test_an_engine_found_running_is_used_and_left_running():
    host = FakeHost(answers_from=1)
    engine = host.engine()
    assert engine.acquire() is None
    engine.release()
    assert host.launched == [] and host.stopped == []


def test_a_dockerd_started_here_is_stopped_on_release_and_only_once():
    host = FakeHost(answers_from=3)  # the first probe finds none; the one after the launch's first wait answers
    engine = host.engine()
    assert engine.acquire() is None
    assert len(host.launched) == 1 and host.stopped == []
    engine.release()
    engine.release()
    assert host.stopped == host.launched


def test_a_dockerd_that_never_answers_is_stopped_before_the_reason_is_given():
    host = FakeHost(answers_from=None)
    engine = host.engine()
    problem = engine.acquire()
    assert problem is not None and problem.startswith("dockerd did not answer within")
    assert host.stopped == host.launched and len(host.launched) == 1
    engine.release()
    assert len(host.stopped) == 1


def test_where_dockerd_cannot_start_nothing_is_launched():
    host = FakeHost(answers_from=None, unavailable="no engine runs and dockerd needs root")
    engine = host.engine()
    assert engine.acquire() == "no engine runs and dockerd needs root"
    engine.release()
    assert host.launched == [] and host.stopped == []


# A parent that, like dockerd with its containerd, starts a child in a session of its own and then waits.
PARENT = ("import subprocess, sys, time; "
          "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True); "
          "time.sleep(120)")


def test_stopping_a_started_daemon_also_stops_the_child_it_spawned_in_its_own_session():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], start_new_session=True)
    deadline = time.monotonic() + 10
    while not (children := psutil.Process(parent.pid).children()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert children, "the fake daemon never started its child"
    child = children[0]
    stop_process_tree(parent, grace_s=5)
    assert parent.poll() is not None
    assert not child.is_running()
