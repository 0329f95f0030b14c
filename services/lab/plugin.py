"""The one interface a design's load-test package implements, so the engine needs no design's concepts.

Each design ships ``loadtests/<design>/plugin.py`` with a ``PLUGIN`` object that has:

- ``locustfile`` and ``k6_script``: the closed-loop (user behaviour) and open-loop (arrival
  rate) drivers. A design whose protocol k6 drives poorly (a connection held per user for the whole run)
  sets ``open_loop = "script"`` and names its own generator module in ``script_module``
  (see :mod:`services.lab.script_driver`); it then has no k6 script (``k6_script = None``). Both read the seed file named by ``SDLAB_SEED_FILE``, take the same request
  mix from ``SDLAB_READ_WEIGHT``/``SDLAB_WRITE_WEIGHT``/``SDLAB_ZIPF_S``, report requests under
  the same endpoint names, and append every attempted and acknowledged write to the file named
  by ``SDLAB_ACK_LOG`` (one JSON object a line).
- ``seed(ctx, spec, previous)``: create the run's data through the running stack; returns the
  seed record, which the engine writes to ``seed.json``. ``previous`` is the record of the run
  before on the same stack (an experiment's ``same_stack`` variant): reuse its items and refresh
  what must be read again at the start of a run (counters a check compares against).
- ``verify(ctx, result)``: after a run, read back what was acknowledged and check the design's
  invariants; returns figures (stored as ``summary["loss"]``) and :class:`Check` records.
- ``gauges(window)``: the design's own live figures for ``sdlab top`` (cache hit ratio,
  consumer lag, ...), computed from one scrape window of its services' ``/metrics``.
- ``bench(settings, options, say)``: its benchmark, a ceiling measured in the same sitting.
- ``cost_unit(spec, summary)``: what one operation of a run is, and how many completed, as
  ``(name, count)`` (``("request", 812)``): the run's cost (core-ms by component, PostgreSQL
  statements) is divided by it (:mod:`services.lab.cost`).
- ``experiments``: its experiments, each named ``<design>.<name>``.
- ``fault_actions`` (optional): actions of its own for fault schedules, ``{name: fn(ctx, argument)
  -> message}``, written ``at 30% <action> <argument>`` (the fault runner's thread calls it while
  the load runs; it raises LabCommandError to report a failed step).
- ``commands`` (optional): operations of its own, run as ``sdlab <design> <command> ...``
  (:class:`DesignCommand`).

The registry in :mod:`services.lab.designs` names the plugin module of each design.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from services.lab.config import LabSettings
    from services.lab.experiment import Experiment
    from services.lab.load import LoadResult, LoadSpec
    from services.lab.state import LabState


@dataclass
class Check:
    """One verdict of an experiment or a post-run check; ``detail`` gives the figures behind it."""

    description: str
    passed: bool
    detail: str = ""


@dataclass
class Verification:
    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)


@dataclass
class RunContext:
    """What a plugin gets to act on the running stack during one load run."""

    settings: "LabSettings"
    state: "LabState"
    design: str
    out_dir: Path
    say: Callable[[str], None] = print

    @property
    def base_url(self) -> str:
        """The design's public address (through the load balancer)."""
        return f"http://{self.settings.host}:{self.state.ports[self.design]}"


@dataclass
class DesignCommand:
    """``sdlab <design> <name> ...``: ``arguments`` adds its options to an argparse parser; ``run``
    gets the lab's settings, the parsed options and a line printer, and returns normally or raises
    :class:`services.lab.errors.LabCommandError` with a one-line reason."""

    name: str
    help: str
    arguments: Callable[[Any], None]
    run: Callable[["LabSettings", Any, Callable[[str], None]], None]


@dataclass
class BenchOptions:
    duration_s: int = 10
    connections: int = 64


class DesignPlugin(Protocol):
    name: str
    locustfile: Path
    k6_script: Path | None
    open_loop: str  # "k6", or "script": the design's own generator, ``script_module``
    experiments: list["Experiment"]

    def seed(self, ctx: RunContext, spec: "LoadSpec", previous: dict | None = None) -> dict: ...

    def verify(self, ctx: RunContext, result: "LoadResult") -> Verification: ...

    def gauges(self, window: Any) -> list[tuple[str, str]]: ...

    def bench(self, settings: "LabSettings", options: BenchOptions, say: Callable[[str], None]) -> tuple[Path, dict]: ...

    def cost_unit(self, spec: "LoadSpec", summary: dict) -> tuple[str, int]: ...


def completed(summary: dict, *endpoints: str) -> int:
    """Requests of these endpoints (all of them when none is named) answered as expected."""
    found = summary["endpoints"]
    names = endpoints or tuple(found)
    return sum(found.get(n, {}).get("requests", 0) - found.get(n, {}).get("failures", 0) for n in names)
