"""What an experiment is: an interview trade-off turned into a measured before/after, as a design declares it.

An experiment is a list of variants (stack settings + load + fault schedule). For each, the
engine brings the stack up in that variant (or keeps the previous variant's stack, when the
variant says ``same_stack``), runs the load, applies the faults, has the design's plugin read
back every acknowledged write and check its invariants, and takes the stack down. Then it
evaluates the expected outcome and writes ``report.md``, PNG charts and ``summary.json`` with
the one-sentence claim (:mod:`services.lab.experiments.runner`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from services.lab.config import LabSettings
from services.lab.contract import Check, LoadResult, LoadSpec
from services.lab.state import LabState

__all__ = ["AfterLoad", "Charts", "Check", "Experiment", "Measure", "Outcome", "Variant", "VariantResult"]


@dataclass
class Variant:
    name: str
    app_env: dict[str, str] = field(default_factory=dict)
    instances: int | None = None
    workers: int | None = None  # copies of each of the design's background workers
    shards: int | None = None  # PostgreSQL servers (default: the lab's setting)
    # Streaming replicas per PostgreSQL server under Patroni, and "async" or "sync" (local mode).
    replicas: int | None = None
    replication: str | None = None
    # CPU budgets (NAME -> cores, over the lab's SDLAB_BUDGETS): a small machine per component,
    # so that the scaled part, not the shared machine, is what runs out.
    budgets: dict[str, float] = field(default_factory=dict)
    # Memory budgets (NAME -> SIZE such as "256M", or bytes; over SDLAB_MEMORY_BUDGETS): a hard limit each.
    memory: dict[str, int | str] = field(default_factory=dict)
    load: dict = field(default_factory=dict)  # LoadSpec fields to override
    # Run on the stack the variant before left running (no restart; its data and seed kept).
    same_stack: bool = False
    # The design's post-run checks are the measurement here, not a requirement (a variant built
    # to show what a weaker setting loses): reported with their figures, never failing the run.
    checks_measured: bool = False


@dataclass
class Outcome:
    checks: list[Check]
    claim: str
    facts: dict = field(default_factory=dict)  # extra figures for summary.json and the report
    record: dict = field(default_factory=dict)  # structured results, top-level keys of summary.json

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


@dataclass
class VariantResult:
    variant: Variant
    load: LoadResult
    extra: dict = field(default_factory=dict)

    @property
    def summary(self) -> dict:
        return self.load.summary


@dataclass(frozen=True)
class Measure:
    """One figure of each variant for the engine's bar charts: what it is, its unit, and how to read it."""
    name: str
    unit: str
    read: Callable[[VariantResult], float | None]


AfterLoad = Callable[[LabSettings, LabState, LoadResult], dict]
Charts = Callable[[Path, dict[str, VariantResult]], list[Path]]


@dataclass
class Experiment:
    name: str
    title: str
    question: str
    load: LoadSpec
    variants: list[Variant]
    evaluate: Callable[[dict[str, VariantResult]], Outcome]
    after_load: AfterLoad | None = None
    columns: list[tuple[str, Callable[[VariantResult], str]]] = field(default_factory=list)
    # Asked after the listed variants have run: the next variant, or None when done (a search
    # such as "raise the rate until the service saturates").
    more: Callable[[dict[str, VariantResult]], Variant | None] | None = None
    charts: Charts | None = None  # the experiment's own charts, beside the engine's
    # What the engine's two bar charts plot, when the variants' headline figures are not it (a
    # request rate where deliveries matter, every request's p99 where one endpoint's is the point).
    throughput: Measure | None = None
    latency: Measure | None = None

    @property
    def design(self) -> str:
        return self.load.design
