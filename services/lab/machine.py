"""What a reported number was measured on: machine, commit, command."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import psutil

from services.lab.config import REPO_ROOT


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# What a run's commit vouches for: the code and its settings. The evidence a run is copied into is not
# part of it, so a re-measurement that copies each run in as it goes still names a clean commit.
NOT_CODE = ":(exclude)docs/evidence"


def changed_files(root: Path = REPO_ROOT) -> str:
    """Tracked files that differ from HEAD, outside docs/evidence (empty when the code is the commit's)."""
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", NOT_CODE], cwd=root,
                          capture_output=True, text=True, timeout=5, check=False).stdout.strip()


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = changed_files()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return f"{sha}{'+dirty' if dirty else ''}" if sha else "unknown"


def size() -> tuple[int, int]:
    """(the cores this process may run on, the machine's memory in MiB): what a stack must fit in."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores, psutil.virtual_memory().total // 2**20


def machine_spec() -> dict:
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "commit": git_commit(),
    }


def invoked_command() -> str:
    """The command as the user typed it (``sdlab ...``), for the "reproduce with" line."""
    argv = sys.argv[1:]
    return "sdlab " + " ".join(shlex.quote(a) for a in argv) if argv else "sdlab"
