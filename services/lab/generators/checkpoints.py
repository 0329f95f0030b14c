"""A generator's side of the checkpoints (see :mod:`services.lab.generators.script_driver`); imports nothing
of the engine, so that a generator process loads only this."""

from __future__ import annotations

import os
import time
from pathlib import Path

WAIT_S = 10.0  # how long a generator waits at a checkpoint for the engine's go


def checkpoint(name: str) -> None:
    """Mark a phase boundary (``start``, ``end``) and wait for the engine to have read the stack's
    counters; a no-op when the engine asked for none."""
    folder = os.environ.get("SDLAB_CHECKPOINTS")
    if not folder:
        return
    Path(folder, f"{name}.ready").touch()
    deadline = time.monotonic() + WAIT_S
    while not Path(folder, f"{name}.go").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
