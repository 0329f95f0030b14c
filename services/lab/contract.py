"""The contract between the engine and a design: the plugin interface and the types it passes.

A leaf: it imports nothing of the engine, so a design's plugin and every engine module can import it
without tying either to the other. The engine discovers plugins (:mod:`services.lab.designs`); each
design's load-test package (``loadtests/<design>/plugin.py``) subclasses :class:`DesignPlugin`:

- ``design``: what the stack runs for it (:class:`Design`: its app, workers, servers, internal
  services, the parts it needs, its public port and default instance count).
- ``locustfile`` and ``k6_script``: the closed-loop (user behaviour) and open-loop (arrival rate)
  drivers. A design whose protocol k6 drives poorly (a connection held per user for the whole run)
  sets ``open_loop = "script"`` and names its own generator module in ``script_module`` (see
  :mod:`services.lab.generators.script_driver`); it then has no k6 script. Both read the seed file named by
  ``SDLAB_SEED_FILE``, take the same request mix from ``SDLAB_READ_WEIGHT``/``SDLAB_WRITE_WEIGHT``/
  ``SDLAB_ZIPF_S``, report requests under the same endpoint names, and append every attempted and
  acknowledged write to the file named by ``SDLAB_ACK_LOG`` (one JSON object a line).
- ``seed(ctx, spec, previous)``: create the run's data through the running stack; returns the seed
  record, which the engine writes to ``seed.json``. ``previous`` is the record of the run before on
  the same stack (an experiment's ``same_stack`` variant): reuse its items and refresh what must be
  read again at the start of a run (counters a check compares against). With ``ctx.target`` set
  (``sdlab load --target URL``: a deployment the lab did not start, ``ctx.state`` None) it seeds
  through the public API only.
- ``verify(ctx, result)``: after a run, read back what was acknowledged and check the design's
  invariants; returns figures (stored as ``summary["loss"]``) and :class:`Check` records. With
  ``ctx.target`` set it runs only the checks the public API can answer.
- ``direct_checks``: the checks that need more than the public API (a database, an internal
  service), ``{description: one-line reason}``: skipped with ``--target``, each with its reason.
- ``gauges(window)``: the design's own live figures for ``sdlab top``, from one scrape window.
- ``bench(settings, options, say)``: its benchmark, a ceiling measured in the same sitting.
- ``cost_unit(spec, summary)``: what one operation of a run is, and how many completed, as
  ``(name, count)``: the run's cost is divided by it (:mod:`services.lab.measure.cost`).
- ``experiments``: its experiments, each named ``<design>.<name>``.
- ``fault_actions``: actions of its own for fault schedules, ``{name: fn(ctx, argument) -> message}``,
  written ``at 30% <action> <argument>`` (called from the fault runner's thread while the load runs;
  it raises LabCommandError to report a failed step).
- ``commands``: operations of its own, run as ``sdlab <design> <command> ...`` (:class:`DesignCommand`).
- ``demo``: LoadSpec fields that size its part of ``sdlab demo``.
- ``estimate_model``: which measured costs size which of its components (``sdlab estimate``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NotRequired, TypedDict


@dataclass(frozen=True)
class Design:
    """What the stack runs for one design."""

    name: str
    app: str  # an importable ``module:create_app`` factory for uvicorn --factory
    env_prefix: str
    needs: tuple[str, ...]  # parts of the stack: "redis", "postgres", "kafka"
    migrate_module: str | None = None  # run with ``python -m`` before the instances start
    # Background processes (not behind the balancer), each (name, ``module:create_app``).
    workers: tuple[tuple[str, str], ...] = ()
    # Balanced servers besides the app, each (role, module) run as ``python -m module --host H --port P``
    # with as many copies as the app has instances, behind the balancer as <DESIGN>_<ROLE>_UPSTREAMS.
    # A module is used where an ASGI app would cost too much (a server holding many long-lived connections).
    servers: tuple[tuple[str, str], ...] = ()
    # Internal HTTP services the design's processes call (one copy each, not behind the balancer),
    # each (name, ``module:create_app``); their URL reaches every process as <PREFIX><NAME>_URL.
    services: tuple[tuple[str, str], ...] = ()
    # Its site in the local load balancer (a Caddyfile fragment reading <DESIGN>_PORT and
    # <DESIGN>_UPSTREAMS); None: deploy/caddy/<name>.caddy.
    caddy_site: Path | None = None
    port: int = 8080  # the public port (the load balancer's), unless SDLAB_<DESIGN>_PORT says otherwise
    instances: int = 2  # app instances behind the balancer, unless SDLAB_<DESIGN>_INSTANCES says otherwise
    # Settings (without the prefix) the lab fills with random values, one set per lab home
    # (:mod:`services.lab.lab_secrets`): those whose built-in default is public.
    secrets: tuple[str, ...] = ()


@dataclass
class LoadSpec:
    design: str
    name: str = "load"
    # "locust": closed loop, ``users`` simulated users; "k6" or "script" (the design's own
    # generator): open loop at ``rate``.
    generator: str = "locust"
    users: int = 50
    rate: float | None = None  # requests/s to offer; Locust: paced users (None: as fast as answers come)
    duration_s: float = 30.0
    shape: str | None = None
    read_weight: int = 10
    write_weight: int = 1
    zipf_s: float = 1.1  # popularity skew of the seeded items
    seed_count: int = 2000  # items the design's seeder creates before the run
    faults: str = ""
    warm: bool = False  # read every seeded item once before the load (so every one is warm)
    # Open loop: the most requests in flight; past it the generator (k6, or a design's own, told
    # SDLAB_MAX_VUS) drops iterations (counted) instead of queueing them, which bounds a run
    # offered more than the service can take. None: ~rate for k6, the generator's own default.
    max_vus: int | None = None
    # Design-specific knobs (group sizes, who stops reading, ...), passed to the seeder and to
    # the generators as SDLAB_OPT_<KEY>; the engine does not read them.
    options: dict[str, str] = field(default_factory=dict)

    @property
    def open_loop(self) -> bool:
        return self.generator != "locust"


class EndpointFigures(TypedDict, total=False):
    requests: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class RunSummary(TypedDict):
    """``summary.json`` of one load run (README, "What a run writes"): what the engine measured, then
    what the design's checks found (``loss``, ``checks``) once :func:`services.lab.measure.load.verify` ran."""

    name: str
    spec: dict[str, Any]  # the LoadSpec's fields
    machine: dict[str, Any]
    command: str
    generator: str  # "locust", "k6" or "script"
    loop: str  # "open" or "closed"
    latency_note: str
    duration_s: float
    offered: Any  # what the generator was asked for, in its own terms
    offered_rps: float | None
    achieved_rps: float
    generator_cpu_avg: float | None
    generator_cpu_max: float | None
    requests: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    endpoints: dict[str, EndpointFigures]
    server: dict[str, Any]  # the services' /metrics, after minus before
    instances_scraped: list[str]
    cost_per_op: dict[str, Any]
    tables: NotRequired[dict[str, dict]]  # every PostgreSQL table after the run: {rows, bytes, bytes_per_row}
    started_at: float  # wall-clock instant of t=0 (of the timeline and the fault times)
    dropped_iterations: NotRequired[int]  # open loop only
    vus_max: NotRequired[int | None]
    timeline_error: NotRequired[str]
    faults: NotRequired[list[dict[str, Any]]]  # with a fault schedule: {at_s, action, component}
    fault_windows: NotRequired[list[dict[str, Any]]]
    fault_errors: NotRequired[list[str]]
    loss: NotRequired[dict[str, Any]]  # the design's verification figures
    checks: NotRequired[list[dict[str, Any]]]  # its Check records
    target: NotRequired[str]  # --target: the deployment's base URL (the lab started no stack)
    # With --target: what the run could not measure or check there, each {description, reason}.
    skipped: NotRequired[list[dict[str, str]]]


@dataclass
class LoadResult:
    out_dir: Path
    summary: RunSummary
    timeline: list[dict] = field(default_factory=list)


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
class Skipped:
    """A check or a measurement a run could not make, and the one-line reason."""

    description: str
    reason: str


@dataclass
class RunContext:
    """What a plugin gets to act on the running stack during one load run."""

    settings: Any  # services.lab.config.LabSettings (typed loosely: the contract imports no engine module)
    state: Any  # services.lab.state.LabState; None with ``target``
    design: str
    out_dir: Path
    say: Callable[[str], None] = print
    # A deployment the lab did not start (``sdlab load --target URL``): reached through its public API only.
    target: str | None = None

    @property
    def base_url(self) -> str:
        """The design's public address (through the load balancer, or the target's)."""
        if self.target is not None:
            return self.target.rstrip("/")
        return f"http://{self.settings.host}:{self.state.ports[self.design]}"


@dataclass
class DesignCommand:
    """``sdlab <design> <name> ...``: ``arguments`` adds its options to an argparse parser; ``run``
    gets the lab's settings, the parsed options and a line printer, and returns normally or raises
    :class:`services.lab.errors.LabCommandError` with a one-line reason."""

    name: str
    help: str
    arguments: Callable[[Any], None]
    run: Callable[[Any, Any, Callable[[str], None]], None]


@dataclass
class BenchOptions:
    duration_s: int = 10
    connections: int = 64


FaultAction = Callable[[RunContext, str], str]


class DesignPlugin:
    """The base every design's plugin subclasses: what it must say (``design``, ``locustfile``,
    ``seed``) and what it may (everything with a default here)."""

    design: ClassVar[Design]
    locustfile: ClassVar[Path]
    k6_script: ClassVar[Path | None] = None
    open_loop: ClassVar[str] = "k6"  # or "script": the design's own generator, ``script_module``
    script_module: ClassVar[str | None] = None
    experiments: ClassVar[Sequence[Any]] = ()  # services.lab.experiments.experiment.Experiment, each "<design>.<name>"
    fault_actions: ClassVar[Mapping[str, FaultAction]] = {}
    commands: ClassVar[Sequence[DesignCommand]] = ()
    demo: ClassVar[Mapping[str, Any]] = {}  # LoadSpec fields for `sdlab demo` (rate, options, ...)
    # Its benchmark (``sdlab bench``): (settings, options, say) -> (report folder, figures); None: it has none.
    bench: Callable[[Any, BenchOptions, Callable[[str], None]], tuple[Path, dict]] | None = None
    # How its measured costs size a fleet (``sdlab estimate``): a services.lab.estimate.fleet.EstimateModel;
    # None: it has no estimate model, and the command says so.
    estimate_model: ClassVar[Any] = None
    # Its checks that need more than the public API, {description: why}: skipped with --target.
    direct_checks: ClassVar[Mapping[str, str]] = {}

    @property
    def name(self) -> str:
        return self.design.name

    def seed(self, ctx: RunContext, spec: LoadSpec, previous: dict | None = None) -> dict:
        raise NotImplementedError(f"{type(self).__name__} does not seed")

    def verify(self, ctx: RunContext, result: LoadResult) -> Verification:
        """No checks of its own: a design that acknowledges writes should read them back."""
        return Verification()

    def gauges(self, window: Any) -> list[tuple[str, str]]:
        return []

    def cost_unit(self, spec: LoadSpec, summary: RunSummary) -> tuple[str, int]:
        """Any request answered as expected, unless the design counts its operations otherwise."""
        return "request", completed(summary)


def completed(summary: RunSummary, *endpoints: str) -> int:
    """Requests of these endpoints (all of them when none is named) answered as expected."""
    found = summary["endpoints"]
    names = endpoints or tuple(found)
    return sum(found.get(n, {}).get("requests", 0) - found.get(n, {}).get("failures", 0) for n in names)
