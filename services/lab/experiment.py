"""``sdlab experiment NAME``: an interview trade-off turned into a measured before/after.

An experiment is a list of variants (stack settings + load + fault schedule). For each, the
engine brings the stack up in that variant (or keeps the previous variant's stack, when the
variant says ``same_stack``), runs the load, applies the faults, has the design's plugin read
back every acknowledged write and check its invariants, and takes the stack down. Then it
evaluates the expected outcome and writes ``report.md``, PNG charts and ``summary.json`` with
the one-sentence claim. The engine knows no design: each design's plugin lists its experiments.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from services.lab.backends.base import Backend
from services.lab.backends.selection import select_backend
from services.lab.config import LabSettings
from services.lab.contract import Check
from services.lab.designs import plugins
from services.lab.errors import LabCommandError
from services.lab.experiment_report import write_report
from services.lab.load import LoadResult, LoadSpec, results_dir, run_load, verify
from services.lab.state import LabState
from services.lab.supervisor import experiment_home

__all__ = ["Check", "Experiment", "Outcome", "Variant", "VariantResult", "registry", "find", "run_experiment",
           "experiment_home"]


@dataclass
class Variant:
    name: str
    app_env: dict[str, str] = field(default_factory=dict)
    instances: int | None = None
    workers: int | None = None  # copies of each of the design's background workers
    shards: int | None = None  # PostgreSQL servers (default: the lab's setting)
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

    @property
    def design(self) -> str:
        return self.load.design


def registry() -> dict[str, Experiment]:
    found: dict[str, Experiment] = {}
    for plugin in plugins().values():
        found.update({e.name: e for e in plugin.experiments})
    return found


def find(name: str) -> Experiment:
    experiments = registry()
    if name not in experiments:
        raise LabCommandError(f"unknown experiment {name!r}; choose from: {', '.join(sorted(experiments))}")
    return experiments[name]


def _variants(exp: Experiment, results: dict[str, VariantResult]):
    yield from exp.variants
    while exp.more is not None and (nxt := exp.more(results)) is not None:
        yield nxt


def run_experiment(
    name: str,
    settings: LabSettings,
    *,
    duration_s: float | None = None,
    users: int | None = None,
    seed_count: int | None = None,
    say: Callable[[str], None] = print,
    on_event=None,
    backend: Backend | None = None,
) -> tuple[Path, Outcome, dict]:
    """Each variant on its stack (:meth:`Backend.variant_stacks`), loaded and checked; then the verdict."""
    exp = find(name)
    sizes = {"duration_s": duration_s, "users": users, "seed_count": seed_count}
    stacks = (backend or select_backend(settings)).variant_stacks(exp.design, say, on_event)
    stacks.check(exp.name, [v.name for v in exp.variants if v.instances or v.workers or v.shards])
    out = results_dir(f"experiment-{name}", settings.results)
    say(f"experiment {exp.name}{stacks.label}: {exp.question}")
    say(f"results: {out}")
    stacks.begin()
    results: dict[str, VariantResult] = {}
    last_seed: Path | None = None
    try:
        for variant in _variants(exp, results):
            sized = {what: count for what, count in (("instances", variant.instances), ("workers", variant.workers),
                                                     ("shards", variant.shards)) if count}
            stack = stacks.enter(variant.name, app_env=variant.app_env, sizes=sized, same_stack=variant.same_stack)
            if not variant.same_stack:
                last_seed = None
            vsettings = stack.settings
            result = run_load(vsettings, _spec(exp, variant, sizes), say=say, out=out / variant.name.replace(" ", "-"),
                              seed_file=last_seed, backend=stack)
            last_seed = result.out_dir / "seed.json"
            verify(vsettings, result, say=say, backend=stack)
            extra = exp.after_load(vsettings, stack.state(), result) if exp.after_load else {}
            result.summary["extra"] = extra
            (result.out_dir / "summary.json").write_text(json.dumps(result.summary, indent=2, default=str))
            results[variant.name] = VariantResult(variant, result, extra)
    finally:
        stacks.close()
    return out, *_conclude(exp, out, results)


def _conclude(exp: Experiment, out: Path, results: dict[str, VariantResult]) -> tuple[Outcome, dict]:
    outcome = exp.evaluate(results)
    for vr in results.values():
        if vr.variant.checks_measured:
            outcome.checks += [Check(f"{vr.variant.name} (measured, not required): {c['description']}", True,
                                     c["detail"] + ("" if c["passed"] else "; does not hold here, by design"))
                               for c in vr.summary["checks"]]
        else:
            outcome.checks += [Check(f"{vr.variant.name}: {c['description']}", c["passed"], c["detail"])
                               for c in vr.summary["checks"]]
    summary = write_report(exp, out, results, outcome)
    return outcome, summary


def _spec(exp: Experiment, variant: Variant, sizes: dict) -> LoadSpec:
    """The variant's load, with what the command line set (duration, users, items seeded) over it."""
    spec = replace(exp.load, name=variant.name, **variant.load)
    return replace(spec, **{k: v for k, v in sizes.items() if v is not None})
