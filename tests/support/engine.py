"""A Docker engine for the compose tests: the running one, or ``dockerd`` started here when it can be.

Our machines have Debian's ``docker.io`` (``make test`` installs it as root) but run no engine by
default. Whatever cannot be had is returned as the reason to skip, in one line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

DOCKERD_LOG = Path("/tmp/sdlab-dockerd.log")


def _engine_answers() -> str | None:
    try:
        done = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                              timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker info failed: {exc}"
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["no answer"])[-1][:160]
    return None


def _start_dockerd() -> str | None:
    """Start dockerd in the background; None once it answers, else why not."""
    if shutil.which("dockerd") is None:
        return "dockerd is not installed (as root, `make test` installs Debian's docker.io)"
    if os.geteuid() != 0:
        return "no engine runs and dockerd needs root"
    with DOCKERD_LOG.open("ab") as log:
        subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _engine_answers() is None:
            return None
        time.sleep(1)
    tail = DOCKERD_LOG.read_text(errors="replace").strip().splitlines()[-1:] if DOCKERD_LOG.exists() else []
    return f"dockerd did not answer within 60 s ({' '.join(tail)[:160]})"


def _compose_cli() -> bool:
    from services.lab.backends.compose_project import cli
    from services.lab.errors import LabCommandError

    try:
        cli()
        return True
    except LabCommandError:
        return False


def engine_problem(standin: bool = True) -> str | None:
    """None when an engine answers (started here if need be) and compose can run; else the reason."""
    if shutil.which("docker") is None:
        return "no docker client installed"
    if not _compose_cli():
        return "no Docker Compose v2 (`make install` ships one in .venv/bin)"
    if _engine_answers() is not None:
        problem = _start_dockerd()
        if problem is not None:
            return f"no Docker engine: {problem}"
    if standin and shutil.which("debootstrap") is None:
        return "debootstrap is not installed; the stand-in base image needs it (`make test` installs it as root)"
    return None
