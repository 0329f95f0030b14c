"""A Docker engine for the compose tests: the running one, or ``dockerd`` started here when it can be.

Our machines have Debian's ``docker.io`` (``make test`` installs it as root) but run no engine by
default. Whatever cannot be had is returned as the reason to skip, in one line. An engine found
running is left alone; a ``dockerd`` started here is stopped on release, with the ``containerd`` it
spawned, so that a test run leaves no daemon of its own behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import psutil

from services.lab.procs import terminate_then_kill

DOCKERD_LOG = Path("/tmp/sdlab-dockerd.log")
# dockerd's own shutdown waits up to 15 s for containers (none are left after `sdlab down`).
STOP_GRACE_S = 30.0


class Process(Protocol):
    pid: int


def engine_answers() -> str | None:
    try:
        done = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                              timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker info failed: {exc}"
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["no answer"])[-1][:160]
    return None


def dockerd_unavailable() -> str | None:
    """Why this run cannot start dockerd, or None."""
    if shutil.which("dockerd") is None:
        return "dockerd is not installed (as root, `make test` installs Debian's docker.io)"
    if os.geteuid() != 0:
        return "no engine runs and dockerd needs root"
    return None


def launch_dockerd() -> subprocess.Popen:
    with DOCKERD_LOG.open("ab") as log:
        return subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process_tree(process: Process, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the process, SIGKILL it after ``grace_s``; then the same for any descendant still alive.

    dockerd starts its ``containerd`` in a session of its own and normally stops it on the way out;
    the descendants are listed first so that one outliving it is still found.
    """
    try:
        root = psutil.Process(process.pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for group in ([root], tree[1:]):
        terminate_then_kill([p for p in group if p.is_running()], grace_s)
    if isinstance(process, subprocess.Popen):
        process.poll()  # reap it, so no zombie is left under this interpreter


class Engine:
    """The engine of one test module: found running (and left alone) or started here (and stopped on release)."""

    def __init__(self, answers: Callable[[], str | None] = engine_answers,
                 unavailable: Callable[[], str | None] = dockerd_unavailable,
                 launch: Callable[[], Process] = launch_dockerd,
                 stop: Callable[[Process], None] = stop_process_tree,
                 wait_s: float = 60.0, poll_s: float = 1.0) -> None:
        self._answers, self._unavailable, self._launch, self._stop = answers, unavailable, launch, stop
        self._wait_s, self._poll_s = wait_s, poll_s
        self.started: Process | None = None

    def acquire(self) -> str | None:
        """None once an engine answers (dockerd started here if need be), else why there is none."""
        if self._answers() is None:
            return None
        problem = self._unavailable()
        if problem is not None:
            return problem
        self.started = self._launch()
        deadline = time.monotonic() + self._wait_s
        while time.monotonic() < deadline:
            if self._answers() is None:
                return None
            time.sleep(self._poll_s)
        self.release()  # a dockerd that never answered is still ours to stop
        tail = DOCKERD_LOG.read_text(errors="replace").strip().splitlines()[-1:] if DOCKERD_LOG.exists() else []
        return f"dockerd did not answer within {self._wait_s:.0f} s ({' '.join(tail)[:160]})"

    def release(self) -> None:
        """Stop the dockerd this object started; an engine it found running is not touched."""
        started, self.started = self.started, None
        if started is not None:
            self._stop(started)


def _compose_cli() -> bool:
    from services.lab.backends.compose.project import cli
    from services.lab.errors import LabCommandError

    try:
        cli()
        return True
    except LabCommandError:
        return False


def engine_problem(engine: Engine, standin: bool = True) -> str | None:
    """None when an engine answers (started by ``engine`` if need be) and compose can run; else the reason."""
    if shutil.which("docker") is None:
        return "no docker client installed"
    if not _compose_cli():
        return "no Docker Compose v2 (`make install` ships one in .venv/bin)"
    if standin and shutil.which("debootstrap") is None:
        return "debootstrap is not installed; the stand-in base image needs it (`make test` installs it as root)"
    problem = engine.acquire()  # last: a dockerd is started only for a test that will run
    return None if problem is None else f"no Docker engine: {problem}"
