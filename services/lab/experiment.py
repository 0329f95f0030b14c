"""``sdlab experiment NAME``: an interview trade-off turned into a measured before/after.

An experiment is a list of variants (stack settings + load + fault schedule). For each, the
engine brings the stack up in that variant, runs the load, applies the faults, reads back
every acknowledged write, and takes the stack down. Then it evaluates the expected outcome
and writes ``report.md``, PNG charts and ``summary.json`` with the one-sentence claim.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from services.lab import report
from services.lab.config import LabSettings
from services.lab.designs import DESIGNS
from services.lab.errors import LabCommandError
from services.lab.load import LoadResult, LoadSpec, results_dir, run_load
from services.lab.machine import invoked_command, machine_spec
from services.lab.state import LabState
from services.lab.supervisor import down, down_if_running, up


@dataclass
class Variant:
    name: str
    app_env: dict[str, str] = field(default_factory=dict)
    instances: int | None = None
    load: dict = field(default_factory=dict)  # LoadSpec fields to override


@dataclass
class Check:
    description: str
    passed: bool
    detail: str = ""


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

    @property
    def design(self) -> str:
        return self.load.design


def registry() -> dict[str, Experiment]:
    found: dict[str, Experiment] = {}
    for design in DESIGNS:
        try:
            module = importlib.import_module(f"loadtests.{design}.experiments")
        except ModuleNotFoundError:
            continue
        found.update({e.name: e for e in module.EXPERIMENTS})
    return found


def find(name: str) -> Experiment:
    experiments = registry()
    if name not in experiments:
        raise LabCommandError(f"unknown experiment {name!r}; choose from: {', '.join(sorted(experiments))}")
    return experiments[name]


def _verify(design: str, settings: LabSettings, state: LabState, result: LoadResult) -> dict | None:
    try:
        checks = importlib.import_module(f"loadtests.{design}.checks")
    except ModuleNotFoundError:
        return None
    host = f"http://{settings.host}:{state.ports[design]}"
    redirects = result.summary["endpoints"].get("/{code}", {})
    return checks.verify(host, result.out_dir, redirects.get("requests", 0) - redirects.get("failures", 0))


def run_experiment(
    name: str,
    settings: LabSettings,
    *,
    duration_s: float | None = None,
    users: int | None = None,
    say: Callable[[str], None] = print,
    on_event=None,
) -> tuple[Path, Outcome, dict]:
    exp = find(name)
    out = results_dir(f"experiment-{name}", settings.results)
    say(f"experiment {exp.name}: {exp.question}")
    say(f"results: {out}")
    down_if_running(settings, say, "each variant starts a stack of its own")
    results: dict[str, VariantResult] = {}
    for variant in exp.variants:
        overrides = {f"{exp.design}_instances": variant.instances} if variant.instances else {}
        vsettings = settings.model_copy(update=overrides)
        spec = replace(exp.load, name=variant.name, **variant.load)
        if duration_s is not None:
            spec = replace(spec, duration_s=duration_s)
        if users is not None:
            spec = replace(spec, users=users)
        say(f"== {variant.name}: starting the stack" + (f" ({', '.join(f'{k}={v}' for k, v in variant.app_env.items())})"
                                                        if variant.app_env else ""))
        state = up(vsettings, [exp.design], on_event=on_event or (lambda *_: None), app_env=variant.app_env)
        try:
            result = run_load(vsettings, spec, say=say, out=out / variant.name.replace(" ", "-"))
            loss = _verify(exp.design, vsettings, state, result)
            if loss is not None:
                result.summary["loss"] = loss
            extra = exp.after_load(vsettings, state, result) if exp.after_load else {}
            result.summary["extra"] = extra
            (result.out_dir / "summary.json").write_text(json.dumps(result.summary, indent=2, default=str))
            results[variant.name] = VariantResult(variant, result, extra)
        finally:
            down(vsettings)
    outcome = exp.evaluate(results)
    for vr in results.values():
        outcome.checks += _click_checks(exp.design, vr)
        loss = vr.summary.get("loss")
        if loss and loss["acknowledged"]:
            outcome.checks.append(Check(f"{vr.variant.name}: no acknowledged create lost",
                                        loss["lost"] == 0 and loss["unreadable"] == 0,
                                        f"{loss['acknowledged']} acknowledged, {loss['lost']} lost, "
                                        f"{loss['unreadable']} unreadable"))
    summary = _write(exp, out, results, outcome)
    return out, outcome, summary


def _click_checks(design: str, vr: VariantResult) -> list[Check]:
    """Clicks PostgreSQL counted against redirects served: never more (no double count); exactly
    as many unless a fault killed an instance, whose unflushed clicks are lost by design."""
    clicks = (vr.summary.get("loss") or {}).get("clicks")
    if not clicks or clicks["redirects_ok"] == 0:
        return []  # a run without redirects has nothing to count
    detail = f"{clicks['clicks_counted']} counted of {clicks['redirects_ok']} served"
    checks = [Check(f"{vr.variant.name}: no click counted twice", clicks["clicks_counted"] <= clicks["redirects_ok"],
                    detail)]
    killed_instance = any(f["action"] == "kill" and f["component"].startswith(f"{design}-")
                          for f in vr.summary.get("faults", []))
    if not killed_instance:
        checks.append(Check(f"{vr.variant.name}: every click counted", clicks["clicks_missing"] == 0, detail))
    return checks


def _write(exp: Experiment, out: Path, results: dict[str, VariantResult], outcome: Outcome) -> dict:
    charts = []
    series = {n: r.load.timeline for n, r in results.items()}
    faulted = any(r.summary.get("fault_windows") for r in results.values())
    if faulted:
        for n, r in results.items():
            path = out / f"timeline-{n.replace(' ', '-')}.png"
            report.timeline_chart({n: r.load.timeline}, path, f"{exp.name}: {n}", {n: r.summary.get("fault_windows", [])})
            charts.append(path)
    else:
        charts.append(report.timeline_chart(series, out / "timeline.png", exp.name))
    if len(results) > 1:
        charts.append(report.bar_chart({n: r.summary["achieved_rps"] for n, r in results.items()},
                                       out / "throughput.png", f"{exp.name}: achieved throughput", "requests/s"))
        charts.append(report.bar_chart({n: r.summary["p99_ms"] or 0 for n, r in results.items()},
                                       out / "p99.png", f"{exp.name}: p99 latency", "ms"))
    first = next(iter(results.values())).summary
    summary = {
        "experiment": exp.name, "title": exp.title, "question": exp.question, "passed": outcome.passed,
        "claim": outcome.claim, "machine": machine_spec(), "command": invoked_command(),
        "checks": [vars(c) for c in outcome.checks], "facts": outcome.facts,
        "variants": {n: {k: v for k, v in r.summary.items() if k not in ("machine",)} for n, r in results.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    cols = [("variant", lambda r: r.variant.name), ("offered", lambda r: r.summary["offered"]),
            ("achieved req/s", lambda r: report.fmt(r.summary["achieved_rps"])),
            ("p50", lambda r: report.fmt(r.summary["p50_ms"], " ms")),
            ("p99", lambda r: report.fmt(r.summary["p99_ms"], " ms")),
            ("errors", lambda r: f"{r.summary['failures']} / {r.summary['requests']}"),
            *exp.columns,
            ("generator CPU avg/max", lambda r: f"{report.fmt(r.summary['generator_cpu_avg'], '%')} / "
                                                f"{report.fmt(r.summary['generator_cpu_max'], '%')}")]
    lines = [
        f"# {exp.name}: {exp.title}", "", f"**Question.** {exp.question}", "",
        f"**Claim.** {outcome.claim}", "",
        f"**Outcome: {'PASS' if outcome.passed else 'FAIL'}**", "",
        *[f"- [{'x' if c.passed else ' '}] {c.description}" + (f" ({c.detail})" if c.detail else "") for c in outcome.checks],
        "", "## Setup", "", *report.machine_lines({**first, "command": summary["command"]}),
        f"- Load per variant: {first['spec']['users']} users, {first['offered']}, {first['duration_s']} s, read:write "
        f"{first['spec']['read_weight']}:{first['spec']['write_weight']}, Zipf s={first['spec']['zipf_s']}",
        "", "## Results", "",
        "| " + " | ".join(h for h, _ in cols) + " |", "|" + "---|" * len(cols),
        *["| " + " | ".join(fn(r) for _, fn in cols) + " |" for r in results.values()],
        "", *[f"![{p.stem}]({p.name})" for p in charts], "",
    ]
    if outcome.facts:
        lines += ["## Figures", "", *[f"- {k}: {v}" for k, v in outcome.facts.items()], ""]
    lines += ["Locust is closed-loop: when the server slows, it offers less load (coordinated omission);",
              "offered and achieved rates and the load generator's CPU are reported for that reason.", "",
              f"> {outcome.claim}", ""]
    (out / "report.md").write_text("\n".join(lines))
    return summary
