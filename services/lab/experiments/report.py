"""An experiment's ``report.md``, charts and ``summary.json``."""

from __future__ import annotations

import json
import re
from pathlib import Path

from services.lab.experiments.experiment import (
    Experiment,
    Measure,
    Outcome,
    VariantResult,
)
from services.lab.machine import invoked_command, machine_spec
from services.lab.measure.run_summary import (
    CLOSED_LOOP_NOTE,
    OPEN_LOOP_NOTE,
    generator_label,
)
from services.lab.report import charts as report


def draw_charts(exp: Experiment, out: Path, results: dict[str, VariantResult]) -> list[Path]:
    charts = list(exp.charts(out, results)) if exp.charts else []
    faulted = any(r.summary.get("fault_windows") for r in results.values())
    if faulted:
        for n, r in results.items():
            path = out / f"timeline-{plain_name(n)}.png"
            report.timeline_chart({n: r.load.timeline}, path, f"{exp.name}: {n}", {n: r.summary.get("fault_windows", [])})
            charts.append(path)
    elif not exp.charts:
        charts.append(report.timeline_chart({n: r.load.timeline for n, r in results.items()}, out / "timeline.png",
                                            exp.name))
    if len(results) > 1 and not exp.charts:
        rate = exp.throughput or Measure("achieved throughput", "requests/s", lambda r: r.summary["achieved_rps"])
        p99 = exp.latency or Measure("p99 latency", f"ms, {_loop_label(results)}", lambda r: r.summary["p99_ms"])
        for measure, name in ((rate, "throughput.png"), (p99, "p99.png")):
            charts.append(report.bar_chart({n: measure.read(r) or 0 for n, r in results.items()}, out / name,
                                           f"{exp.name}: {measure.name}", f"{measure.name}\n({measure.unit})"))
    return charts


def plain_name(variant: str) -> str:
    """A variant's name as a file name a reader can type and a web page can address: letters, digits, ``.``,
    ``_`` and ``-``; an arrow reads as "to" (``persisters 1 -> 3``: ``persisters-1-to-3``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", variant.replace("->", " to ")).strip("-")


def _cost(summary: dict, key: str) -> str:
    cost = summary.get("cost_per_op") or {}
    value = cost.get(key)
    return "-" if value is None else f"{value:,.2f} ({cost['op']})"


def _loop_label(results: dict[str, VariantResult]) -> str:
    loops = {r.summary.get("loop", "closed") for r in results.values()}
    return "open loop" if loops == {"open"} else "closed loop" if loops == {"closed"} else "mixed generators"


def _load_line(first: dict) -> str:
    spec = first["spec"]
    # The request mix is k6's and Locust's; a design's own generator takes its options instead.
    mix = (f"read:write {spec['read_weight']}:{spec['write_weight']}, Zipf s={spec['zipf_s']}"
           if first.get("generator") != "script" else "")
    options = ", ".join(f"{k}={v}" for k, v in (spec.get("options") or {}).items())
    details = ", ".join(x for x in (mix, f"options {options}" if options else "", f"seed {spec['seed_count']}") if x)
    return f"- Load per variant: {generator_label(first)}, {first['offered']}, {first['duration_s']} s, {details}"


def write_report(exp: Experiment, out: Path, results: dict[str, VariantResult], outcome: Outcome) -> dict:
    charts = draw_charts(exp, out, results)
    first = next(iter(results.values())).summary
    summary = {
        "experiment": exp.name, "title": exp.title, "question": exp.question, "passed": outcome.passed,
        "claim": outcome.claim, "machine": machine_spec(), "command": invoked_command(),
        "checks": [vars(c) for c in outcome.checks], "facts": outcome.facts, **outcome.record,
        "variants": {n: {k: v for k, v in r.summary.items() if k not in ("machine",)} for n, r in results.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    open_loop = any(r.summary.get("loop") == "open" for r in results.values())
    cols = [("variant", lambda r: r.variant.name), ("offered", lambda r: r.summary["offered"]),
            ("achieved req/s", lambda r: report.fmt(r.summary["achieved_rps"])),
            ("p50", lambda r: report.fmt(r.summary["p50_ms"], " ms", 2)),
            ("p99", lambda r: report.fmt(r.summary["p99_ms"], " ms", 2)),
            ("errors", lambda r: f"{r.summary['failures']} / {r.summary['requests']}"),
            *([("dropped", lambda r: str(r.summary.get("dropped_iterations", "-")))] if open_loop else []),
            *exp.columns,
            ("core-ms / op", lambda r: _cost(r.summary, "core_ms_total")),
            ("statements / op", lambda r: _cost(r.summary, "pg_statements")),
            ("generator CPU avg/max", lambda r: f"{report.fmt(r.summary['generator_cpu_avg'], '%')} / "
                                                f"{report.fmt(r.summary['generator_cpu_max'], '%')}")]
    lines = [
        f"# {exp.name}: {exp.title}", "", f"**Question.** {exp.question}", "",
        f"**Claim.** {outcome.claim}", "",
        f"**Outcome: {'PASS' if outcome.passed else 'FAIL'}**", "",
        *[f"- [{'x' if c.passed else ' '}] {c.description}" + (f" ({c.detail})" if c.detail else "") for c in outcome.checks],
        "", "## Setup", "", *report.machine_lines({**first, "command": summary["command"]}),
        _load_line(first),
        "", "## Results", "",
        "| " + " | ".join(h for h, _ in cols) + " |", "|" + "---|" * len(cols),
        *["| " + " | ".join(fn(r) for _, fn in cols) + " |" for r in results.values()],
        "", *[f"![{p.stem}]({p.name})" for p in charts], "",
    ]
    if outcome.facts:
        lines += ["## Figures", "", *[f"- {k}: {v}" for k, v in outcome.facts.items()], ""]
    loops = {r.summary.get("loop", "closed") for r in results.values()}
    lines += [*(([OPEN_LOOP_NOTE] if "open" in loops else []) + ([CLOSED_LOOP_NOTE] if "closed" in loops else [])),
              "", f"> {outcome.claim}", ""]
    (out / "report.md").write_text("\n".join(lines))
    return summary
