"""The one seam between the lab's commands and how the stack runs (local processes, docker compose, ...).

A command picks its backend once (:mod:`services.lab.backends.selection`) and then only talks to it:
up, down, status, logs, chaos verbs, the running components (addresses, pids or containers, env),
per-component resource sampling, and an experiment's stacks. What a backend cannot do it refuses
with a one-line reason, by capability: a new capability (CPU budgets, replicas) is one more key of
:attr:`Backend.refusals` in the backends that lack it and one method where it is used.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, NoReturn, Protocol

from services.lab.backends.compose.toxiproxy import ToxiproxyCall
from services.lab.config import LabSettings
from services.lab.errors import LabCommandError
from services.lab.progress import EventSink, Say, quiet
from services.lab.state import ComponentStatus, LabState


class ResourceSampler(Protocol):
    def sample(self, state: LabState) -> dict[str, tuple[float, float]]:
        """CPU% (100 = one core, since the call before) and memory MiB of each component."""
        ...


class BudgetReader(Protocol):
    def sample(self) -> dict[str, dict[str, float]]:
        """Per budgeted component since the call before: ``{"cores": used, "throttled": share of periods}``."""
        ...


class NoBudgets:
    """A backend that cannot read budgets per second (compose) or a stack without any."""

    def sample(self) -> dict[str, dict[str, float]]:
        return {}


class VariantStacks(ABC):
    """The stacks of one experiment: one per variant, or the one before for a ``same_stack`` variant."""

    label = ""  # said after the experiment's name: where it runs, when not on local processes

    def check(self, experiment: str, sized: list[str]) -> None:
        """Refuse before anything runs; ``sized``: the variants that set instances, workers or servers."""

    def begin(self) -> None:
        """Before the first variant."""

    @abstractmethod
    def enter(self, variant: str, *, app_env: dict[str, str], sizes: dict[str, int | str], same_stack: bool,
              budgets: dict[str, float] | None = None, memory: dict[str, int] | None = None) -> Backend:
        """The variant's stack up and ready (``sizes``: the instances, workers, shards, replicas and
        replication mode it sets; ``budgets``: CPU budgets by component, kind or prefix; ``memory``:
        memory budgets in bytes, the same way), as the backend to run its load on."""

    @abstractmethod
    def close(self) -> None:
        """After the last variant, also after a failure."""


class Backend(ABC):
    name: ClassVar[str]
    # Capabilities this backend lacks, each with the one line that refuses it: "sizing" (instances,
    # workers, servers set per run), "add_postgres" (servers added to a running stack), "local_stacks"
    # (commands that start local stacks of their own on the lab's ports, such as the benchmark),
    # "toxics" (network faults), "replicas" (streaming replicas with failover, `up --replicas`).
    refusals: ClassVar[dict[str, str]] = {}
    # Load runs read the stack again (components a fault restarted have new pids) every this many seconds.
    refresh_every_s: ClassVar[int] = 1
    running_note: ClassVar[str]  # said after ``sdlab up``

    def __init__(self, settings: LabSettings) -> None:
        self.settings = settings

    def require(self, capability: str) -> None:
        if capability in self.refusals:
            self.refuse(capability)

    def refuse(self, capability: str) -> NoReturn:
        raise LabCommandError(self.refusals[capability])

    @abstractmethod
    def up(self, designs: list[str], *, on_event: EventSink = quiet, say: Say = print, standin: bool = False,
           budget: dict[str, float] | None = None, memory: dict[str, int] | None = None) -> None:
        """Start the designs' stack and return once it is ready; ``budget``: CPU budgets (NAME -> cores),
        ``memory``: memory budgets (NAME -> bytes)."""

    @abstractmethod
    def down(self, *, volumes: bool = False, on_event: EventSink = quiet) -> str:
        """Stop what this home runs; one line saying what was done."""

    @abstractmethod
    def find_state(self) -> LabState | None:
        """The running stack (components, addresses, pids, env), or None when nothing runs."""

    @abstractmethod
    def state(self) -> LabState:
        """The running stack; a one-line error when nothing runs."""

    def watched_state(self) -> LabState:
        """The stack to watch (``status``, ``top``)."""
        return self.state()

    @abstractmethod
    def status(self) -> tuple[LabState, list[ComponentStatus]]:
        """Every component's state, probed."""

    @abstractmethod
    def logs(self, component: str, lines: int, follow: bool) -> None:
        """Print a component's log (follow it until interrupted)."""

    @abstractmethod
    def chaos(self, action: str, component: str, *, argument: str | None = None, on_event: EventSink = quiet) -> str:
        """Apply a fault verb to one component; one line saying what was done."""

    @abstractmethod
    def usage(self) -> ResourceSampler:
        """Per-component resource sampling (``sdlab top``)."""

    @abstractmethod
    def variant_stacks(self, design: str, say: Say, on_event: EventSink | None = None) -> VariantStacks:
        """The stacks of an experiment of ``design``."""

    def budget_sampler(self, state: LabState) -> BudgetReader:
        """Each budgeted component's CPU against its budget, per second (timelines, ``sdlab top``)."""
        return NoBudgets()

    def network_fault(self, calls: list[ToxiproxyCall]) -> str:
        """Apply Toxiproxy calls (:func:`services.lab.backends.compose.toxiproxy.toxic_calls`) to the stack's network."""
        self.refuse("toxics")

    def add_postgres(self, total: int, on_event: EventSink = quiet) -> list[str]:
        """Grow the running stack to ``total`` PostgreSQL servers; every server's URL, in shard order."""
        self.refuse("add_postgres")
