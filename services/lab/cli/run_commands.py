"""The commands that measure: load, experiment, bench, demo, evidence, and a design's own commands."""

from __future__ import annotations

import argparse
import json

from services.lab import ui
from services.lab.backends.selection import local_backend
from services.lab.cli.common import backend_of, design_options, read_write, settings_of
from services.lab.cli.parser import CommandParser
from services.lab.designs import names as design_names
from services.lab.designs import plugin_for
from services.lab.errors import LabCommandError
from services.lab.measure import load, target_load
from services.lab.report import charts as report
from services.lab.report import remeasure
from services.lab.report.evidence import EVIDENCE_ROOT, copy_evidence


def open_loop_generator(design: str) -> str:
    """k6, unless the design ships an open-loop generator of its own (see services.lab.contract)."""
    return plugin_for(design).open_loop


def cmd_load(args: argparse.Namespace) -> None:
    settings = settings_of(args)
    if args.target is not None and args.compose:
        raise LabCommandError("--target and --compose name two deployments; give one")
    backend = backend_of(args, settings) if args.target is None else None  # a target needs no stack here
    read, write = read_write(args.read_write)
    for flag, value in (("--users", args.users), ("--duration", args.duration), ("--seed", args.seed)):
        if value <= 0:
            raise LabCommandError(f"{flag} must be positive")
    if args.rate is not None and args.rate <= 0:
        raise LabCommandError("--rate must be positive")
    if args.open and args.rate is None:
        raise LabCommandError("--open needs an arrival rate: add --rate REQUESTS_PER_S")
    spec = load.LoadSpec(design=args.design, name=args.name or f"{args.design}-load",
                         generator=open_loop_generator(args.design) if args.open else "locust", users=args.users, rate=args.rate,
                         duration_s=args.duration, shape=args.shape, read_weight=read, write_weight=write,
                         zipf_s=args.zipf, seed_count=args.seed, faults=args.faults,
                         options=design_options(args.option))
    if backend is None:  # the deployment is reached through its public API only
        result = target_load.run_target_load(settings, spec, args.target, say=ui.say)
        target_load.verify_target(settings, result, args.target, say=ui.say)
    else:
        result = load.run_load(settings, spec, say=ui.say, backend=backend)
        load.verify(settings, result, say=ui.say, backend=backend)
    summary = result.summary
    windows = {"run": summary.get("fault_windows", [])}
    chart = report.timeline_chart({spec.name: result.timeline}, result.out_dir / "timeline.png", spec.name, windows)
    path = report.load_report(summary, result.out_dir, chart)
    ui.print_load_summary(summary, path)


def cmd_experiment(args: argparse.Namespace) -> None:
    from services.lab.experiments import runner as experiment

    if not args.name:
        for exp in experiment.registry().values():
            ui.console.print(f"{exp.name:<28} {exp.title}")
        return
    only = [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else None
    experiment.chosen(experiment.find(args.name), only)  # an unknown name fails before anything is stopped
    settings = settings_of(args)
    backend = backend_of(args, settings)
    if args.seed is not None and args.seed <= 0:
        raise LabCommandError("--seed must be positive")
    out, outcome, _ = experiment.run_experiment(args.name, settings, duration_s=args.duration,
                                                users=args.users, seed_count=args.seed, say=ui.say, backend=backend,
                                                variants=only)
    ui.say(f"{'PASS' if outcome.passed else 'FAIL'}: {args.name}")
    for check in outcome.checks:
        ui.say(f"  [{'x' if check.passed else ' '}] {check.description}" + (f" ({check.detail})" if check.detail else ""))
    ui.say(f"claim: {outcome.claim}")
    ui.say(f"report: {out / 'report.md'}")
    if not outcome.passed:
        raise SystemExit(1)


def cmd_bench(args: argparse.Namespace) -> None:
    from services.lab import bench

    settings = settings_of(args)
    backend_of(args, settings).require("local_stacks")
    out, summary = bench.run_bench(settings, args.design, duration_s=args.duration,
                                   connections=args.connections, say=ui.say)
    ui.print_bench(summary, out)


def cmd_evidence(args: argparse.Namespace) -> None:
    if not args.remeasure:
        if args.run is None:
            raise LabCommandError("name a run folder (sdlab evidence results/<run>), or --remeasure")
        target = copy_evidence(args.run)
        ui.console.print(f"copied to {target}", markup=False)
        return
    items, skipped = remeasure.plan(only=args.only)
    for label, why in skipped:
        ui.console.print(f"skipped {label}: {why}", markup=False)
    if args.dry_run:
        for item in items:
            ui.console.print(f"would run {item.label(EVIDENCE_ROOT)}: sdlab {' '.join(item.command)}", markup=False)
        return
    commit = remeasure.require_clean_tree()
    scratch = settings_of(args).home / "remeasure" / commit
    ui.console.print(f"re-measuring {len(items)} reference runs at {commit}; runs under {scratch}", markup=False)
    outcomes = remeasure.run_all(items, scratch, say=lambda line: ui.console.print(line, markup=False))
    (scratch / "outcomes.json").write_text(json.dumps(outcomes, indent=2))
    failed = [o["evidence"] for o in outcomes if o["passed"] is not True]
    ui.console.print(f"done: {len(outcomes) - len(failed)} passed, {len(failed)} not: {', '.join(failed) or 'none'}; "
                     "run the unit tests: tests/unit/test_doc_figures.py names every figure the new runs changed",
                     markup=False)


def cmd_demo(args: argparse.Namespace) -> None:
    settings = settings_of(args)
    steps = len(design_names()) + 2  # start, one load per design, headlines
    ui.console.print(f"1/{steps} starting the stack")
    backend = local_backend(settings)
    backend.up([], on_event=ui.Progress())
    state = backend.state()
    headlines = []
    for i, design in enumerate(state.designs, start=2):
        plugin = plugin_for(design)
        # A design may size its demo (``demo``: LoadSpec fields); 300 req/s otherwise.
        demo = {"rate": 300, **plugin.demo, "generator": open_loop_generator(design)}
        ui.console.print(f"{i}/{steps} a {args.duration:.0f}-second open-loop load ({demo['generator']}, "
                         f"{demo['rate']} req/s) on {design}")
        spec = load.LoadSpec(design=design, name=f"demo-{design}", duration_s=args.duration, **demo)
        result = load.run_load(settings, spec, say=ui.say, backend=backend)
        load.verify(settings, result, say=ui.say, backend=backend)
        chart = report.timeline_chart({spec.name: result.timeline}, result.out_dir / "timeline.png", spec.name)
        headlines.append((result.summary, report.load_report(result.summary, result.out_dir, chart)))
    ui.console.print(f"{steps}/{steps} headline numbers")
    for summary, path in headlines:
        ui.print_load_summary(summary, path)
    _, rows = backend.status()
    ui.print_status(rows, state.ports, False, settings.host)
    ui.console.print("Next: `.venv/bin/sdlab experiment` lists the experiments; `make down` (or `.venv/bin/sdlab down`) stops the stack.")


def cmd_design(args: argparse.Namespace) -> None:
    """``sdlab <design> <command> ...``: a command the design's plugin offers."""
    run_design_command(args.command, args.design_args)


def run_design_command(design: str, argv: list[str]) -> None:
    commands = {c.name: c for c in plugin_for(design).commands}
    parser = CommandParser(prog=f"sdlab {design}", description=f"{design}'s own commands")
    sub = parser.add_subparsers(dest="design_command", required=True, parser_class=CommandParser)
    for command in commands.values():
        command.arguments(sub.add_parser(command.name, help=command.help))
    if not commands:
        raise LabCommandError(f"{design} has no commands of its own")
    options = parser.parse_args(argv)
    commands[options.design_command].run(settings_of(options), options, ui.say)
