"""What every load generator's driver does: start the generator as a process, hand the engine its
per-second rows while it runs, and its totals at the end.

The engine polls ``take()`` about every second, then calls ``finish()`` and ``totals(rows)``. A
generator with phases that are not its operations marks them with checkpoints
(:class:`services.lab.generators.script_driver.ScriptDriver`); the others have none.
"""

from __future__ import annotations

import json
import os
import subprocess
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, TextIO

TIMELINE_FILE = "timeline-raw.jsonl"  # where Locust and a design's own generator append their seconds


def read_new(path: Path, offset: int) -> tuple[list[dict], int]:
    """Complete JSON lines appended to ``path`` since ``offset``."""
    if not path.exists():
        return [], offset
    with open(path) as fh:
        fh.seek(offset)
        data = fh.read()
    complete = data[: data.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()], offset + len(complete)


class LoadDriver(ABC):
    kind: ClassVar[str]  # "locust", "k6" or "script", as summaries name the generator
    log_name: ClassVar[str]  # the generator's own output, in the run's folder

    def __init__(self, out: Path, env: dict[str, str]) -> None:
        self.out, self.env = out, env
        self.proc: subprocess.Popen | None = None
        self.log: TextIO | None = None
        self._offset = 0

    @property
    @abstractmethod
    def offered(self) -> str:
        """What the generator was asked for, in its own terms."""

    @abstractmethod
    def command(self) -> list[str]:
        """The generator's command line."""

    def start(self, t0_wall: float, cwd: Path) -> subprocess.Popen:
        """Start the generator; ``t0_wall`` is the run's t=0, which its seconds count from."""
        self.log = open(self.out / self.log_name, "w")
        self.proc = subprocess.Popen(self.command(), cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **self.env, "SDLAB_T0": repr(t0_wall)})
        return self.proc

    def take(self) -> list[dict]:
        """The seconds the generator completed since the call before."""
        rows, self._offset = read_new(self.out / TIMELINE_FILE, self._offset)
        return rows

    def _ended(self, timeout_s: float) -> int:
        """Wait for the generator (killed past ``timeout_s``), close its log; its exit code."""
        assert self.proc is not None and self.log is not None, "start() first"
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        return self.proc.returncode

    @abstractmethod
    def finish(self) -> list[dict]:
        """Wait for the generator to end; its last seconds. A generator that failed is a LabCommandError."""

    @abstractmethod
    def totals(self, rows: list[dict]) -> dict:
        """``{"total": {...}, "endpoints": {name: {...}}}`` (requests, failures, rps, p50/p95/p99/max ms)."""

    def pending_checkpoint(self) -> str | None:
        """A checkpoint the generator waits at, if any."""
        return None

    def release(self, name: str) -> None:
        raise AssertionError(f"no checkpoint {name!r} was pending")
