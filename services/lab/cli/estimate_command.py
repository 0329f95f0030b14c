"""``sdlab estimate DESIGN``: the fleet a workload needs, from the design's measured costs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from services.lab.cli.common import design_options, read_write, settings_of
from services.lab.designs import plugin_for
from services.lab.errors import LabCommandError
from services.lab.estimate import fleet as estimate
from services.lab.estimate import runs as estimate_runs
from services.lab.estimate.report import Plan, as_json, markdown


def plan_for(design: str, model: estimate.EstimateModel, work: estimate.Workload, results: Path,
             given: list[Path] | None = None) -> Plan:
    measured = estimate_runs.measured(model, design, results, given)
    lines, assumptions = model.plan(work, measured)
    return Plan(design, work, measured, lines, assumptions, model.read_op, model.write_op, dict(model.knobs))


def cmd_estimate(args: argparse.Namespace) -> None:
    model = plugin_for(args.design).estimate_model
    if model is None:
        raise LabCommandError(f"design {args.design!r} has no estimate model (its plugin's estimate_model)")
    knobs = design_options(args.option)
    unknown = sorted(set(knobs) - set(model.knobs))
    if unknown:
        known = ", ".join(model.knobs) or "none"
        raise LabCommandError(f"{args.design} has no estimate knob {', '.join(unknown)} (it has: {known})")
    for key, value in knobs.items():
        try:
            if not float(value) > 0:
                raise ValueError(value)
        except ValueError:
            raise LabCommandError(f"--option {key}={value!r}: a positive number is needed") from None
    if model.read_op is None and args.read_write:
        raise LabCommandError(f"{args.design}'s rate is all {model.write_op}s (it has no measured read): drop --read-write")
    work = estimate.workload(
        rate=args.rate, daily_users=args.daily_users, actions_per_user=args.actions_per_user,
        read_write=read_write(args.read_write) if args.read_write else model.default_read_write,
        peak_factor=args.peak_factor, payload_bytes=args.payload_bytes or model.default_payload_bytes,
        retention_years=args.retention, utilisation=args.utilisation, options=knobs)
    plan = plan_for(args.design, model, work, settings_of(args).results, args.runs)
    if args.json:
        print(json.dumps(as_json(plan), indent=2))
    else:
        print(markdown(plan), end="")


def add_parser(sub: argparse._SubParsersAction, designs: list[str]) -> None:
    es = sub.add_parser("estimate", help="the fleet a workload needs, from the design's measured cost per operation")
    es.add_argument("design", choices=designs)  # one without an estimate model is refused when it runs
    load = es.add_mutually_exclusive_group()
    load.add_argument("--rate", type=float, metavar="OPS_PER_S", help="operations/s on average, reads and writes together")
    load.add_argument("--daily-users", type=float, metavar="N", help="users a day (with --actions-per-user): rate = N × A ÷ 86,400")
    es.add_argument("--actions-per-user", type=float, default=10, metavar="A", help="operations per user a day (default 10)")
    es.add_argument("--read-write", metavar="R:W", help="read:write weights (default: the design's, e.g. 100:1)")
    es.add_argument("--peak-factor", type=float, default=3, metavar="X", help="peak over average (default 3)")
    es.add_argument("--payload-bytes", type=int, metavar="B", help="bytes a write stores (default: the design's)")
    es.add_argument("--retention", type=float, default=5, metavar="YEARS", help="years the data is kept (default 5)")
    es.add_argument("--utilisation", type=float, default=0.6, metavar="SHARE",
                    help="share of a core each process may use at peak (default 0.6)")
    es.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a design's own workload knob, e.g. members=50 (repeatable; the plan lists the design's)")
    es.add_argument("--from", dest="runs", action="append", type=Path, metavar="RUN",
                    help="read these run folders (repeatable; default: the newest runs under results/)")
    es.add_argument("--json", action="store_true", help="machine-readable output")
