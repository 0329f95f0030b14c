"""``sdlab experiment NAME``: run an experiment's variants on their stacks, then its verdict and report.

The backend gives each variant its stack (:meth:`services.lab.backends.base.Backend.variant_stacks`): a
fresh local stack per variant, or a compose deployment's services recreated with the variant's
environment. The engine knows no design: each design's plugin lists its experiments.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from services.lab.backends.base import Backend
from services.lab.backends.selection import select_backend
from services.lab.budgets import memory as memory_rules
from services.lab.config import LabSettings
from services.lab.contract import LoadSpec
from services.lab.designs import plugins
from services.lab.errors import LabCommandError
from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.experiments.report import plain_name, write_report
from services.lab.measure.load import results_dir, run_load, verify


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
    backend: Backend | None = None,
    variants: list[str] | None = None,
) -> tuple[Path, Outcome, dict]:
    """Each variant on its stack (:meth:`Backend.variant_stacks`), loaded and checked; then the verdict.
    ``variants``: only these of the experiment's listed variants."""
    exp = find(name)
    only = chosen(exp, variants)
    sizes = {"duration_s": duration_s, "users": users, "seed_count": seed_count}
    stacks = (backend or select_backend(settings)).variant_stacks(exp.design, say, on_event)
    stacks.check(exp.name, [v.name for v in exp.variants
                            if v.instances or v.workers or v.shards or v.budgets or v.memory or v.replicas
                            or v.replication])
    out = results_dir(f"experiment-{name}", settings.results)
    say(f"experiment {exp.name}{stacks.label}: {exp.question}")
    say(f"results: {out}")
    stacks.begin()
    results: dict[str, VariantResult] = {}
    last_seed: Path | None = None
    try:
        for variant in _variants(exp, results, only):
            sized = {what: count for what, count in (("instances", variant.instances), ("workers", variant.workers),
                                                     ("shards", variant.shards), ("replicas", variant.replicas),
                                                     ("replication", variant.replication)) if count}
            stack = stacks.enter(variant.name, app_env=variant.app_env, sizes=sized, same_stack=variant.same_stack,
                                 budgets=variant.budgets, memory=memory_rules.sizes(variant.memory))
            if not variant.same_stack:
                last_seed = None
            vsettings = stack.settings
            result = run_load(vsettings, _spec(exp, variant, sizes), say=say, out=out / plain_name(variant.name),
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
