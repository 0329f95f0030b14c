"""Open-loop load from a design's own generator: a Python module run as ``python -m``.

For protocols k6 drives poorly (a connection held per user for the whole run, each request
timed from its scheduled start to its effect arriving on another connection), a design ships its own
open-loop generator. The engine runs it as it runs k6 and reads the same two things:
- per second, while it runs: the Locust timeline's rows, appended to ``SDLAB_TIMELINE``;
- at the end: the totals (``{"total": {...}, "endpoints": {name: {...}}}`` with requests,
  failures, rps, p50/p95/p99/max in ms, and ``dropped_iterations``), written to ``SDLAB_TOTALS``.

Checkpoints: a generator with phases that are not its operations (connecting thousands of
sockets first, closing them at the end) marks where its operations start and end, so that the
run's cost per operation (:mod:`services.lab.measure.cost`) counts only them: it creates
``<SDLAB_CHECKPOINTS>/<name>.ready`` (``start``, ``end``) and waits  for
``<name>.go``, which the engine creates once it has taken its reading (:mod:`services.lab.generators.checkpoints`).

The generator gets ``SDLAB_HOST``, ``SDLAB_RATE``, ``SDLAB_DURATION_S``, ``SDLAB_SHAPE`` with
``SDLAB_STAGES`` (the k6 driver's stages, for a shaped run), ``SDLAB_MAX_VUS`` (when the spec bounds what is in
flight: past it, drop and count), ``SDLAB_T0`` (the engine's start
instant, so its seconds are the timeline's), and the variables every generator gets
(``SDLAB_SEED_FILE``, ``SDLAB_ACK_LOG``, ...). It must start its sends on schedule whether or
not earlier ones were answered, and count the ones it could not start as dropped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from services.lab.errors import LabCommandError
from services.lab.generators.base import TIMELINE_FILE, LoadDriver
from services.lab.generators.k6_driver import rate_stages, start_rate

GRACE_S = 60  # after the duration: the generator drains what is in flight, then writes its totals


class ScriptDriver(LoadDriver):
    kind = "script"
    log_name = "generator.log"

    def __init__(self, module: str, host: str, out: Path, env: dict[str, str], *, rate: float, duration_s: float,
                 shape: str | None) -> None:
        self.module = module
        self.rate, self.duration_s, self.shape = rate, duration_s, shape or "steady"
        self.totals_path = out / "generator-totals.json"
        super().__init__(out, {**env, "SDLAB_HOST": host, "SDLAB_RATE": str(rate), "SDLAB_DURATION_S": str(duration_s),
                               "SDLAB_SHAPE": self.shape, "SDLAB_TIMELINE": str(out / TIMELINE_FILE),
                               "SDLAB_TOTALS": str(self.totals_path), "SDLAB_CHECKPOINTS": str(out / "checkpoints")})
        (out / "checkpoints").mkdir(exist_ok=True)
        stages = rate_stages(self.shape, rate, duration_s)
        if stages is not None:
            self.env["SDLAB_STAGES"] = json.dumps(stages)
            self.env["SDLAB_START_RATE"] = str(start_rate(self.shape, rate))

    @property
    def offered(self) -> str:
        shape = "" if self.shape == "steady" else f", {self.shape}"
        return f"{self.rate:.0f} req/s open loop{shape}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.module]

    def pending_checkpoint(self) -> str | None:
        for ready in sorted((self.out / "checkpoints").glob("*.ready")):
            if not ready.with_suffix(".go").exists():
                return ready.stem
        return None

    def release(self, name: str) -> None:
        (self.out / "checkpoints" / f"{name}.go").touch()

    def finish(self) -> list[dict]:
        code = self._ended(timeout_s=self.duration_s + GRACE_S)
        if code != 0 or not self.totals_path.exists():
            raise LabCommandError(f"the load generator {self.module} exited with {code}; "
                                  f"see {self.out / self.log_name}")
        return self.take()

    def totals(self, _rows: list[dict]) -> dict:
        return json.loads(self.totals_path.read_text())
