"""The throttle chaos action: a duty cycle of SIGSTOP/SIGCONT on a process tree, started and ended
through its marker file, and its place in fault schedules."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from services.lab import procs
from services.lab.backends.local import throttle
from services.lab.backends.local.chaos import ACTIONS
from services.lab.config import REPO_ROOT
from services.lab.errors import LabCommandError
from services.lab.measure.faults import FaultStep, parse_schedule, windows


def test_duty_cycle_is_pause_over_period_in_milliseconds():
    assert throttle.parse_duty(None) == throttle.DEFAULT_DUTY == (100, 200)
    assert throttle.parse_duty("400/500") == (400, 500)
    assert throttle.cycle_plan(400, 500) == (0.4, 0.1)
    for bad in ("400", "500/400", "0/100", "100/100", "a/b", "100/70000"):
        with pytest.raises(LabCommandError, match="throttle"):
            throttle.parse_duty(bad)


def test_throttle_is_a_chaos_action_and_takes_its_duty_in_a_schedule():
    assert "throttle" in ACTIONS
    steps = parse_schedule("at 10% throttle postgres-1 400/500; at 90% resume postgres-1; at 50% reshard 3", 100,
                           design_actions=("reshard",))
    assert steps == [FaultStep(10.0, "throttle", "postgres-1", "400/500"), FaultStep(50.0, "reshard", "3"),
                     FaultStep(90.0, "resume", "postgres-1")]
    (w,) = windows([(10.0, steps[0]), (90.0, steps[2])])
    assert (w.component, w.kind, w.start_s, w.end_s) == ("postgres-1", "throttle", 10.0, 90.0)


def _sleeper() -> tuple[subprocess.Popen, procs.ProcessRef]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    return proc, procs.ProcessRef(proc.pid, psutil.Process(proc.pid).create_time())


def test_run_stops_and_continues_the_target_and_leaves_it_running():
    proc, ref = _sleeper()
    try:
        seen: set[str] = set()
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                seen.add(psutil.Process(proc.pid).status())
                time.sleep(0.005)

        watcher = threading.Thread(target=watch)
        watcher.start()
        stop_at = time.monotonic() + 0.5
        why = throttle.run(ref, 60, 100, should_stop=lambda: time.monotonic() > stop_at)
        done.set()
        watcher.join()
        assert why == "ended"
        assert psutil.STATUS_STOPPED in seen  # it was stopped during the cycles
        assert psutil.Process(proc.pid).status() != psutil.STATUS_STOPPED  # and left running
    finally:
        proc.kill()
        proc.wait()


def test_run_ends_when_the_target_is_gone():
    proc, ref = _sleeper()
    proc.kill()
    proc.wait()
    assert throttle.run(ref, 10, 20) == "target gone"


def test_start_records_the_throttler_and_end_stops_it_leaving_the_target_running(tmp_path):
    proc, ref = _sleeper()
    try:
        tr = throttle.start(tmp_path, "db", ref, (50, 100), dict(os.environ), cwd=REPO_ROOT)
        assert throttle.running(tmp_path, "db") == tr
        time.sleep(0.5)
        assert throttle.end_all(tmp_path) == ["db"]
        assert not tr.alive() and throttle.running(tmp_path, "db") is None
        assert not throttle.marker_path(tmp_path, "db").exists()
        assert psutil.Process(proc.pid).status() != psutil.STATUS_STOPPED
        assert throttle.end(tmp_path, "db") is False  # nothing left to end
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait()
