"""Finding what a lab started after its state is gone (``sdlab down`` after a crash)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil

from services.lab import procs


def _sleeper(cwd, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], cwd=cwd, env=env)


def test_servers_that_overwrote_their_environment_are_found_by_the_folder_they_run_in(tmp_path):
    """Redis and PostgreSQL write their process title over their environment, so the marker
    variable is gone; they run in <home>/redis and <home>/postgres-N/data, and are found there,
    even once that folder was deleted."""
    home = tmp_path / "home"
    (home / "redis").mkdir(parents=True)
    (home / "postgres-1" / "data").mkdir(parents=True)
    (home / "experiment" / "redis").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    mine = [_sleeper(home / "redis"), _sleeper(home / "postgres-1" / "data")]
    other_home = _sleeper(home / "experiment" / "redis")  # another home's, under this one
    unrelated = _sleeper(tmp_path / "elsewhere")
    try:
        (home / "redis").rmdir()  # the experiment's rmtree of a crashed run
        found = {p.pid for p in procs.find_marked(str(home))}
        assert {p.pid for p in mine} <= found
        assert other_home.pid not in found and unrelated.pid not in found
        assert procs.kill_marked(str(home)) >= 2
        assert all(p.wait(timeout=10) is not None for p in mine)
        assert other_home.poll() is None and unrelated.poll() is None
    finally:
        for p in (*mine, other_home, unrelated):
            p.kill()
            p.wait()


def _child(on_sigterm: str) -> tuple[subprocess.Popen, psutil.Process]:
    """A Python child that has set up its SIGTERM handling (``on_sigterm`` runs first) and says so."""
    code = f"import signal, sys, time; {on_sigterm}; print('ready', flush=True); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    return child, psutil.Process(child.pid)


def test_terminate_then_kill_kills_only_what_outlives_its_grace():
    obeys, obeys_ps = _child("pass")
    ignores, ignores_ps = _child("signal.signal(signal.SIGTERM, signal.SIG_IGN)")
    try:
        started = time.monotonic()
        procs.terminate_then_kill([obeys_ps, ignores_ps], grace_s=0.5)
        took = time.monotonic() - started
        # psutil reaps its own children and keeps the status it read (negative: the signal that ended it).
        assert obeys_ps.returncode == -signal.SIGTERM
        assert ignores_ps.returncode == -signal.SIGKILL
        assert 0.5 <= took < 5
    finally:
        for child in (obeys, ignores):
            child.kill()
            child.wait()


def test_terminate_then_kill_resumes_a_paused_process_so_that_it_handles_its_sigterm():
    handles, handles_ps = _child("signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))")
    try:
        handles_ps.suspend()
        procs.terminate_then_kill([handles_ps], grace_s=10)
        assert handles_ps.returncode == 3  # its own exit, not the SIGKILL after the grace
    finally:
        handles.kill()
        handles.wait()


def test_terminate_then_kill_passes_over_a_process_already_gone():
    gone, gone_ps = _child("pass")
    gone.kill()
    gone.wait()
    procs.terminate_then_kill([gone_ps], grace_s=0.5)  # no NoSuchProcess
