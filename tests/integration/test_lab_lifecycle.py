"""The lab's own promises: status shows everything, chaos works, down leaves nothing, even after a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil

from services.lab.procs import find_marked
from tests.support.lab import REPO, Lab, alive


def test_status_shows_every_component(lab):
    status = lab.status()
    names = {c["name"] for c in status["components"]}
    assert names == {"redis", "postgres-0", "postgres-1", "kafka", "shortener-1", "shortener-2",
                     "shortener-analytics-1", "messaging-1", "messaging-2", "messaging-gateway-1",
                     "messaging-gateway-2", "messaging-fanout-1", "shop-payments-1", "shop-1", "shop-2",
                     "shop-worker-1", "shop-fulfillment-1", "caddy"}
    assert all(c["state"] == "ready" and c["pid"] for c in status["components"]), status
    assert status["urls"] == {"shortener": lab.url(), "messaging": lab.url("messaging"), "shop": lab.url("shop")}


def test_kill_then_restart_redis(lab):
    old_pid = lab.component("redis")["pid"]
    out = lab.run("chaos", "kill", "redis").stdout
    assert "killed redis" in out
    assert not alive(old_pid)
    assert lab.component("redis")["state"] == "down"
    lab.run("chaos", "restart", "redis")
    redis = lab.component("redis")
    assert redis["state"] == "ready" and redis["pid"] != old_pid
    assert redis["address"] == lab.address("redis")


def test_pause_and_resume_show_in_status(lab):
    lab.run("chaos", "pause", "kafka")
    try:
        assert lab.component("kafka")["state"] == "paused"
        assert psutil.Process(lab.component("kafka")["pid"]).status() == psutil.STATUS_STOPPED
    finally:
        lab.run("chaos", "resume", "kafka")
    assert lab.component("kafka")["state"] == "ready"


def test_cli_errors_are_one_line(lab):
    for args, hint in [
        (("chaos", "kill", "nosuch"), "unknown component 'nosuch'"),
        (("up", "nosuchdesign"), "unknown design 'nosuchdesign'"),
        (("logs", "nosuch"), "no log for 'nosuch'"),
        (("chaos", "explode", "redis"), "invalid choice"),
    ]:
        result = lab.run(*args, check=False)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("sdlab: error:") and hint in lines[0], result.stderr
        assert "Traceback" not in result.stderr


def test_up_on_a_port_in_use_says_which(tmp_path):
    other = Lab.create(tmp_path / "busy", port_start=26000)
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", int(other.env["SDLAB_REDIS_PORT"])))
        sock.listen()
        result = other.run("up", check=False)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert line.count("\n") == 0 and "already in use" in line and "SDLAB_REDIS_PORT" in line, line
    assert not (tmp_path / "busy" / "state.json").exists()


def test_status_when_not_running_says_how_to_start(tmp_path):
    result = Lab.create(tmp_path / "none", port_start=26500).run("status", check=False)
    assert result.returncode == 2 and "sdlab up" in result.stderr and result.stderr.count("\n") == 1


def test_down_leaves_zero_processes(tmp_path):
    lab = Lab.create(tmp_path / "own", port_start=27000, SDLAB_SHORTENER_INSTANCES="1")
    lab.run("up", timeout=180)
    pids = lab.pids()
    children = [p.pid for pid in pids for p in psutil.Process(pid).children(recursive=True)]
    assert len(pids) >= 7
    lab.run("down")
    assert [p for p in pids + children if alive(p)] == []
    assert find_marked(str((tmp_path / "own").resolve())) == []


def test_down_after_up_crashed_leaves_zero_processes(tmp_path):
    """SIGKILL `sdlab up` half way; `sdlab down` must still find and stop what it had started."""
    lab = Lab.create(tmp_path / "crash", port_start=28000, SDLAB_SHORTENER_INSTANCES="1")
    up = subprocess.Popen([sys.executable, "-m", "services.lab.cli", "up"], cwd=REPO,
                          env={**os.environ, **lab.env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_file = tmp_path / "crash" / "state.json"
    deadline = time.monotonic() + 60
    started: list[int] = []
    while time.monotonic() < deadline:
        if state_file.exists():
            try:
                started = [c["pid"] for c in json.loads(state_file.read_text())["components"].values()]
            except (json.JSONDecodeError, KeyError):
                started = []
            if len(started) >= 5:  # infrastructure up, app instances starting
                break
        time.sleep(0.05)
    up.send_signal(signal.SIGKILL)
    up.wait()
    assert len(started) >= 5, "up never got far enough to test a crash"
    # The crashed `up` may have spawned one more process after our last look at the state file.
    marker = str((tmp_path / "crash").resolve())
    lab.run("down")
    assert [p for p in started if alive(p)] == []
    assert [p.pid for p in find_marked(marker)] == []
