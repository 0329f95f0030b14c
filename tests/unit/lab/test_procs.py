"""Finding what a lab started after its state is gone (``sdlab down`` after a crash)."""

from __future__ import annotations

import subprocess
import sys

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
