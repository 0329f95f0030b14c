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
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from services.lab.compose import recorded
from services.lab.config import LabSettings
from services.lab.designs import DESIGNS, plugin_for
from services.lab.errors import LabCommandError
from services.lab.experiment_report import write_report
from services.lab.load import LoadResult, LoadSpec, results_dir, run_load, verify
from services.lab.plugin import Check
from services.lab.state import LabState
from services.lab.supervisor import down, down_if_running, require_state, up

__all__ = ["Check", "Experiment", "Outcome", "Variant", "VariantResult", "registry", "find", "run_experiment"]


@dataclass
class Variant:
    name: str
    app_env: dict[str, str] = field(default_factory=dict)
    instances: int | None = None
    workers: int | None = None  # copies of each of the design's background workers
    shards: int | None = None  # PostgreSQL servers (default: the lab's setting)
    # CPU budgets (NAME -> cores, over the lab's SDLAB_BUDGETS): a small machine per component,
    # so that the scaled part, not the shared machine, is what runs out.
    budgets: dict[str, float] = field(default_factory=dict)
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
    for design in DESIGNS.values():
        if design.plugin is not None:
            found.update({e.name: e for e in plugin_for(design.name).experiments})
    return found


def find(name: str) -> Experiment:
    experiments = registry()
    if name not in experiments:
        raise LabCommandError(f"unknown experiment {name!r}; choose from: {', '.join(sorted(experiments))}")
    return experiments[name]


def experiment_home(settings: LabSettings) -> Path:
    return settings.state_dir / "experiment"


def _variants(exp: Experiment, results: dict[str, VariantResult], only: list[str] | None = None):
    yield from (v for v in exp.variants if not only or v.name in only)
    while exp.more is not None and (nxt := exp.more(results)) is not None:
        yield nxt


def chosen(exp: Experiment, only: list[str] | None) -> list[str] | None:
    """``--variants``: names of the experiment's listed variants, checked before anything starts."""
    if not only:
        return None
    unknown = [n for n in only if n not in {v.name for v in exp.variants}]
    if unknown:
        raise LabCommandError(f"{exp.name} has no variant {unknown[0]!r}; its variants: "
                              + ", ".join(repr(v.name) for v in exp.variants))
    return only


def run_experiment(
    name: str,
    settings: LabSettings,
    *,
    duration_s: float | None = None,
    users: int | None = None,
    seed_count: int | None = None,
    say: Callable[[str], None] = print,
    on_event=None,
    variants: list[str] | None = None,
) -> tuple[Path, Outcome, dict]:
    exp = find(name)
    only = chosen(exp, variants)
    sizes = {"duration_s": duration_s, "users": users, "seed_count": seed_count}
    deployment = recorded(settings)
    if deployment is not None:
        return _run_on_compose(exp, settings, deployment, sizes, say=say, only=only)
    out = results_dir(f"experiment-{name}", settings.results)
    say(f"experiment {exp.name}: {exp.question}")
    say(f"results: {out}")
    down_if_running(settings, say, "each variant starts a stack of its own")
    results: dict[str, VariantResult] = {}
    running: tuple[LabSettings, LabState] | None = None
    last_seed: Path | None = None
    try:
        for variant in _variants(exp, results, only):
            overrides = {f"{exp.design}_{what}": count for what, count in
                         (("instances", variant.instances), ("workers", variant.workers)) if count}
            if variant.shards:
                overrides["postgres_shards"] = variant.shards
            # Each stack on fresh data in a home of its own: a variant measures its own setting,
            # not what an earlier run (or the user's own lab) left in the databases.
            vsettings = settings.model_copy(update={**overrides, "home": experiment_home(settings)})
            spec = _spec(exp, variant, sizes)
            if running is None or not variant.same_stack:
                if running is not None:
                    down(running[0])
                shutil.rmtree(vsettings.state_dir, ignore_errors=True)
                said = [f"{k}={v}" for k, v in variant.app_env.items()]
                said += [f"budget {k}={v:g}" for k, v in variant.budgets.items()]
                say(f"== {variant.name}: starting the stack" + (f" ({', '.join(said)})" if said else ""))
                running = (vsettings, up(vsettings, [exp.design], on_event=on_event or (lambda *_: None),
                                         app_env=variant.app_env, budget=variant.budgets))
                last_seed = None
            else:
                say(f"== {variant.name}: on the same stack")
            vsettings, state = running
            result = run_load(vsettings, spec, say=say, out=out / variant.name.replace(" ", "-"), seed_file=last_seed)
            last_seed = result.out_dir / "seed.json"
            verify(vsettings, result, say=say)
            extra = exp.after_load(vsettings, state, result) if exp.after_load else {}
            result.summary["extra"] = extra
            (result.out_dir / "summary.json").write_text(json.dumps(result.summary, indent=2, default=str))
            results[variant.name] = VariantResult(variant, result, extra)
    finally:
        if running is not None:
            down(running[0])
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


def _run_on_compose(exp: Experiment, settings: LabSettings, deployment, sizes: dict,
                    say: Callable[[str], None], only: list[str] | None = None) -> tuple[Path, Outcome, dict]:
    """Compose mode: a variant is an environment override and a recreate of the design's services.
    Unlike local mode the databases are not fresh for each variant (the deployment's parts stay up),
    and a variant that needs another count of instances, workers or servers needs local mode."""
    from services.lab.compose_stack import apply_variant

    if exp.design not in deployment.designs:
        raise LabCommandError(f"{exp.design} is not in the compose deployment; `sdlab up --compose {exp.design}`")
    sized = [v.name for v in exp.variants if v.instances or v.workers or v.shards]
    if sized:
        raise LabCommandError(f"{exp.name} changes how many instances or servers run ({', '.join(sized)}); "
                              "compose mode runs the file's topology, so run it in local mode")
    out = results_dir(f"experiment-{exp.name}", settings.results)
    say(f"experiment {exp.name} (compose project {deployment.project}): {exp.question}")
    say(f"results: {out}")
    results: dict[str, VariantResult] = {}
    last_seed: Path | None = None
    changed = False
    try:
        for variant in _variants(exp, results, only):
            if variant.instances or variant.workers or variant.shards or variant.budgets:
                raise LabCommandError(f"variant {variant.name} needs local mode (it sizes the stack or budgets its CPU)")
            if not variant.same_stack:
                say(f"== {variant.name}")
                if variant.app_env or changed:
                    apply_variant(settings, deployment, exp.design, variant.app_env, say)
                    changed = bool(variant.app_env)
                last_seed = None
            else:
                say(f"== {variant.name}: on the same services")
            result = run_load(settings, _spec(exp, variant, sizes), say=say,
                              out=out / variant.name.replace(" ", "-"), seed_file=last_seed)
            last_seed = result.out_dir / "seed.json"
            verify(settings, result, say=say)
            extra = exp.after_load(settings, require_state(settings), result) if exp.after_load else {}
            result.summary["extra"] = extra
            (result.out_dir / "summary.json").write_text(json.dumps(result.summary, indent=2, default=str))
            results[variant.name] = VariantResult(variant, result, extra)
    finally:
        if changed:  # back to the file's settings
            apply_variant(settings, deployment, exp.design, {}, say)
    return out, *_conclude(exp, out, results)
