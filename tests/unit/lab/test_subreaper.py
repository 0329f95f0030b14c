"""The subreaper that keeps a daemonized server (PostgreSQL under Patroni) in its component's process tree."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil

from services.lab import procs
from services.lab.replication import subreaper

# Starts a server the way Patroni does (a new session, not waited for), prints its pid and exits.
DAEMONIZE = ("import subprocess, sys; "
             "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True); "
             "print(p.pid, flush=True)")


def _wrapped(*cmd: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, subreaper.__file__, *cmd], stdout=subprocess.PIPE, text=True)


def test_a_daemonized_server_stays_in_the_tree_and_dies_with_it():
    wrapper = _wrapped(sys.executable, "-c", DAEMONIZE)
    try:
        server = psutil.Process(int(wrapper.stdout.readline()))
        deadline = time.monotonic() + 10
        while server.ppid() != wrapper.pid and time.monotonic() < deadline:
            time.sleep(0.05)  # re-parented once the command that started it exits
        assert server.ppid() == wrapper.pid
        assert wrapper.poll() is None, "the wrapper lives as long as the server"
        ref = procs.ProcessRef(wrapper.pid, psutil.Process(wrapper.pid).create_time())
        assert procs.signal_tree(ref, signal.SIGKILL)
        server.wait(5)
        assert not server.is_running()
    finally:
        wrapper.kill()
        wrapper.wait(5)


def test_termination_goes_to_the_command_and_the_wrapper_exits_with_it():
    wrapper = _wrapped(sys.executable, "-c", "import time; print(1, flush=True); time.sleep(60)")
    assert wrapper.stdout.readline().strip() == "1"
    (command,) = psutil.Process(wrapper.pid).children()
    wrapper.send_signal(signal.SIGTERM)
    assert wrapper.wait(5) != 0
    assert not command.is_running()
