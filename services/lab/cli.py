"""``sdlab``: start, inspect, break and measure the lab.

Every expected problem ends in a one-line ``sdlab: error: ...`` that says what to do.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

from pydantic import ValidationError

from services.lab import budgets, chaos, load, report, supervisor, ui
from services.lab.config import LabSettings
from services.lab.designs import DESIGNS, plugin_for, resolve
from services.lab.errors import LabCommandError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default prints usage + a line; keep it to one line
        raise LabCommandError(f"{message}; see `{self.prog} --help`")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sdlab", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    up = sub.add_parser("up", help="start the stack and wait until it is ready")
    up.add_argument("designs", nargs="*", metavar="DESIGN", help=f"designs to run (default all: {', '.join(DESIGNS)})")
    up.add_argument("--instances", type=int, help="app instances per design (default 2)")
    up.add_argument("--shards", type=int, help="PostgreSQL servers (default 2)")
    up.add_argument("--budget", action="append", metavar="NAME=CORES[,NAME=CORES...]",
                    help="CPU budgets, like a small machine per component: NAME is a component (postgres-1), "
                         "its kind (postgres) or a prefix (a design's name); every component it names gets CORES "
                         "(adds to SDLAB_BUDGETS)")
    up.add_argument("--compose", action="store_true",
                    help="run under docker compose (`docker compose up -d --build --wait`) instead of local processes")
    up.add_argument("--standin", action="store_true",
                    help="with --compose: locally built stand-ins for the official images (no registry needed)")

    dn = sub.add_parser("down", help="stop everything the lab started")
    _compose_flag(dn)
    dn.add_argument("--volumes", action="store_true", help="compose mode: also remove the databases' volumes")

    st = sub.add_parser("status", help="show every component and its state")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    _compose_flag(st)

    logs = sub.add_parser("logs", help="show a component's log")
    logs.add_argument("component")
    logs.add_argument("-n", "--lines", type=int, default=50)
    logs.add_argument("-f", "--follow", action="store_true")
    _compose_flag(logs)

    ld = sub.add_parser("load", help="run a load against the running stack (Locust closed loop, or k6 open loop)")
    ld.add_argument("design")
    ld.add_argument("--open", action="store_true",
                    help="open loop at --rate arrivals/s (k6, or the design's own generator): the latencies to "
                         "quote (default: Locust users)")
    ld.add_argument("--users", type=int, default=50, help="closed loop: concurrent simulated users (default 50)")
    ld.add_argument("--rate", type=float,
                    help="requests/s to offer (required with --open; closed loop: pace the users to it)")
    ld.add_argument("--duration", type=float, default=30, help="seconds (default 30)")
    ld.add_argument("--shape", help="closed loop: steady|step|spike|soak; open loop: steady|step|spike|ramp")
    ld.add_argument("--read-write", default="10:1", help="read:write weights (default 10:1)")
    ld.add_argument("--zipf", type=float, default=1.1, help="popularity skew s of the seeded items (default 1.1)")
    ld.add_argument("--seed", type=int, default=2000, help="items the design creates before the run (default 2000)")
    ld.add_argument("--faults", default="", help="e.g. 'at 10s kill redis; at 20s restart redis'")
    ld.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a design's own load knob (repeatable), passed to its seeder and generators as SDLAB_OPT_<KEY>")
    ld.add_argument("--name", default=None, help="name of the results folder")
    _compose_flag(ld)

    ex = sub.add_parser("experiment", help="run an experiment and write its report")
    ex.add_argument("name", nargs="?", help="DESIGN.NAME, e.g. the capacity experiment of a design; omit to list them")
    ex.add_argument("--duration", type=float, help="seconds of load per variant (default: the experiment's)")
    ex.add_argument("--users", type=int, help="simulated users (default: the experiment's)")
    ex.add_argument("--seed", type=int, help="items seeded before each variant (default: the experiment's)")
    ex.add_argument("--variants", help="run only these of its variants, comma-separated (e.g. a short "
                                       "scaling run: '1 instance,2 instances')")
    _compose_flag(ex)

    bn = sub.add_parser("bench", help="a design's hot path against the machine's ceiling, in one sitting")
    bn.add_argument("design", choices=[d.name for d in DESIGNS.values() if d.plugin])
    bn.add_argument("--duration", type=int, default=10, help="seconds per target (default 10)")
    bn.add_argument("--connections", type=int, default=64, help="open connections (default 64)")

    tp = sub.add_parser("top", help="a live view: every component's CPU and memory, every service's rate and latency")
    tp.add_argument("--once", action="store_true", help="print one frame and exit (for scripts and tests)")
    tp.add_argument("--json", action="store_true", help="with --once: the frame as JSON")
    tp.add_argument("--interval", type=float, default=1.0, help="seconds between frames (default 1)")
    _compose_flag(tp)

    ev = sub.add_parser("evidence", help="copy a reference run (report, charts, summary) into docs/evidence/")
    ev.add_argument("run", type=Path, help="the run's folder under results/")

    dm = sub.add_parser("demo", help="start the stack, run a short load on each design, print the numbers")
    dm.add_argument("--duration", type=float, default=20, help="seconds of load per design (default 20)")

    for design in DESIGNS.values():
        if design.plugin:  # its own commands, if any, are found when it is named (no import here)
            dc = sub.add_parser(design.name, help=f"{design.name}'s own commands (e.g. `sdlab {design.name} --help`)",
                                add_help=False)
            dc.add_argument("design_args", nargs=argparse.REMAINDER)

    ch = sub.add_parser("chaos", help="inject a fault: kill, pause, resume, restart, throttle, toxic")
    ch.add_argument("action", choices=[*chaos.ACTIONS, "toxic"], metavar="ACTION",
                    help="kill|stop|pause|resume|restart|throttle|toxic")
    ch.add_argument("component")
    ch.add_argument("toxic", nargs="?", metavar="ARGUMENT",
                    help=f"with toxic: {'|'.join(chaos.TOXICS)}; with throttle: PAUSE_MS/PERIOD_MS (default 100/200)")
    _compose_flag(ch)
    ch.add_argument("--latency-ms", type=int, default=100)
    ch.add_argument("--jitter-ms", type=int, default=0)
    ch.add_argument("--rate-kbps", type=int, default=64)
    return p


def _compose_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compose", action="store_true",
                        help="act on the docker compose deployment (found by itself after `sdlab up --compose`)")


def _deployment(args: argparse.Namespace, settings: LabSettings, *, implicit: bool = True):
    """The compose deployment to act on (:func:`services.lab.compose.active`); with ``--compose``,
    saying so when none runs."""
    from services.lab import compose

    asked = getattr(args, "compose", False)
    found = compose.active(settings, asked=asked, implicit=implicit)
    if found is None and asked:
        raise LabCommandError(f"no compose project {compose.default_project()!r} is running; start it with "
                              "`docker compose up -d` or `sdlab up --compose`")
    return found


def _settings(args: argparse.Namespace) -> LabSettings:
    overrides: dict[str, int] = {}
    flags: dict[str, str] = {}
    if getattr(args, "shards", None) is not None:
        overrides["postgres_shards"] = args.shards
        flags["postgres_shards"] = f"--shards {args.shards}"
    if getattr(args, "instances", None) is not None:
        for design in args.designs or DESIGNS:
            if design in DESIGNS:
                overrides[f"{design}_instances"] = args.instances
                flags[f"{design}_instances"] = f"--instances {args.instances}"
    try:
        return LabSettings(**overrides)  # validated, the rest from the environment
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        if field in flags:
            raise LabCommandError(f"{flags[field]}: {first['msg'].lower()}") from None
        raise


def cmd_up(args: argparse.Namespace) -> None:
    settings = _settings(args)
    if args.standin and not args.compose:
        raise LabCommandError("--standin replaces compose's official images: add --compose")
    if args.compose:
        from services.lab import compose_stack

        if args.instances is not None or args.shards is not None:
            raise LabCommandError("compose mode runs the file's topology: --instances and --shards are local mode only")
        compose_stack.up(settings, args.designs, standin=args.standin, say=ui.say,
                         budget=budgets.merge(*(budgets.parse(b) for b in args.budget or [])))
        state, rows = supervisor.status(settings)
        ui.print_status(rows, state.ports, False, settings.host)
        ui.console.print("Running under docker compose; `sdlab load`, `top`, `chaos` and `experiment` find it. "
                         "Stop it with `sdlab down`.")
        return
    budget = budgets.merge(*(budgets.parse(b) for b in args.budget or []))
    state = supervisor.up(settings, args.designs, on_event=ui.Progress(), budget=budget)
    _, rows = supervisor.status(settings)
    ui.print_status(rows, state.ports, False, settings.host)
    ui.console.print("The lab keeps running in the background; stop it with `sdlab down`.")


def cmd_down(args: argparse.Namespace) -> None:
    settings = _settings(args)
    # Never found by itself: a project someone started with `docker compose up` goes down only when asked.
    deployment = _deployment(args, settings, implicit=False)
    if deployment is not None:
        from services.lab import compose_stack

        ui.console.print(compose_stack.down(settings, deployment, volumes=args.volumes))
        return
    stopped = supervisor.down(settings, on_event=ui.Progress())
    ui.console.print("nothing was running" if not stopped else f"stopped {len(stopped)} component(s)")


def cmd_status(args: argparse.Namespace) -> None:
    settings = _settings(args)
    _deployment(args, settings)
    state, rows = supervisor.status(settings)
    ui.print_status(rows, state.ports, args.json, settings.host)


def cmd_logs(args: argparse.Namespace) -> None:
    settings = _settings(args)
    deployment = _deployment(args, settings)
    if deployment is not None:
        from services.lab import compose_stack

        compose_stack.logs(deployment, args.component, args.lines, args.follow)
        return
    log = settings.state_dir / "logs" / f"{args.component}.log"
    if not log.exists():
        known = sorted(p.stem for p in (settings.state_dir / "logs").glob("*.log"))
        raise LabCommandError(f"no log for {args.component!r}; components with logs: {', '.join(known) or 'none'}")
    tail = ["tail", "-n", str(args.lines)] + (["-F"] if args.follow else []) + [str(log)]
    try:
        subprocess.run(tail, check=False)
    except KeyboardInterrupt:
        pass


def cmd_chaos(args: argparse.Namespace) -> None:
    settings = _settings(args)
    if args.action == "toxic":
        if not args.toxic:
            raise LabCommandError(f"say which toxic: sdlab chaos toxic {args.component} <{'|'.join(chaos.TOXICS)}>")
        calls = chaos.toxic_calls(
            args.component, args.toxic, latency_ms=args.latency_ms, jitter_ms=args.jitter_ms, rate_kbps=args.rate_kbps
        )
        ui.console.print(chaos.apply_toxic(settings.toxiproxy_url, calls))
    elif (deployment := _deployment(args, settings)) is not None:
        from services.lab import compose_stack

        ui.console.print(compose_stack.chaos(deployment, args.action, args.component))
    else:
        ui.console.print(chaos.local_chaos(settings, args.action, args.component, on_event=ui.Progress(),
                                           argument=args.toxic))


def _read_write(text: str) -> tuple[int, int]:
    try:
        read, write = (int(x) for x in text.split(":"))
    except ValueError:
        raise LabCommandError(f"--read-write takes READ:WRITE weights like 10:1, not {text!r}") from None
    if read < 0 or write < 0 or read + write == 0:
        raise LabCommandError("--read-write weights must be >= 0 and not both 0")
    return read, write


def open_loop_generator(design: str) -> str:
    """k6, unless the design ships an open-loop generator of its own (see services.lab.plugin)."""
    return getattr(plugin_for(design), "open_loop", "k6")


def _options(pairs: list[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise LabCommandError(f"--option wants KEY=VALUE, got {pair!r}")
        found[key.strip()] = value.strip()
    return found


def cmd_load(args: argparse.Namespace) -> None:
    settings = _settings(args)
    _deployment(args, settings)
    read, write = _read_write(args.read_write)
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
                         options=_options(args.option))
    result = load.run_load(settings, spec, say=ui.say)
    load.verify(settings, result, say=ui.say)
    summary = result.summary
    windows = {"run": summary.get("fault_windows", [])}
    chart = report.timeline_chart({spec.name: result.timeline}, result.out_dir / "timeline.png", spec.name, windows)
    path = report.load_report(summary, result.out_dir, chart)
    ui.print_load_summary(summary, path)


def cmd_experiment(args: argparse.Namespace) -> None:
    from services.lab import experiment

    if not args.name:
        for exp in experiment.registry().values():
            ui.console.print(f"{exp.name:<28} {exp.title}")
        return
    experiment.find(args.name)  # an unknown name fails before anything is stopped
    settings = _settings(args)
    _deployment(args, settings)
    if args.seed is not None and args.seed <= 0:
        raise LabCommandError("--seed must be positive")
    only = [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else None
    experiment.chosen(experiment.find(args.name), only)  # a wrong name fails before anything is stopped
    out, outcome, _ = experiment.run_experiment(args.name, settings, duration_s=args.duration, users=args.users,
                                                seed_count=args.seed, say=ui.say, variants=only)
    ui.say(f"{'PASS' if outcome.passed else 'FAIL'}: {args.name}")
    for check in outcome.checks:
        ui.say(f"  [{'x' if check.passed else ' '}] {check.description}" + (f" ({check.detail})" if check.detail else ""))
    ui.say(f"claim: {outcome.claim}")
    ui.say(f"report: {out / 'report.md'}")
    if not outcome.passed:
        raise SystemExit(1)


def cmd_bench(args: argparse.Namespace) -> None:
    from services.lab import bench

    settings = _settings(args)
    if _deployment(args, settings) is not None:
        raise LabCommandError("the benchmark starts local stacks of its own, on the same ports: "
                              "take the compose deployment down first (`sdlab down`)")
    out, summary = bench.run_bench(settings, args.design, duration_s=args.duration,
                                   connections=args.connections, say=ui.say)
    ui.print_bench(summary, out)


def cmd_top(args: argparse.Namespace) -> None:
    from services.lab.top import run_top

    if args.interval <= 0:
        raise LabCommandError("--interval must be positive")
    if args.json and not args.once:
        raise LabCommandError("--json prints one frame: add --once")
    settings = _settings(args)
    _deployment(args, settings)
    run_top(settings, once=args.once, as_json=args.json, interval_s=args.interval)


def cmd_evidence(args: argparse.Namespace) -> None:
    from services.lab.evidence import copy_evidence

    target = copy_evidence(args.run)
    ui.console.print(f"copied to {target}", markup=False)


def cmd_demo(args: argparse.Namespace) -> None:
    settings = _settings(args)
    steps = sum(1 for d in resolve([]) if d.plugin) + 2  # start, one load per design, headlines
    ui.console.print(f"1/{steps} starting the stack")
    state = supervisor.up(settings, [], on_event=ui.Progress())
    headlines = []
    loaded = [d for d in state.designs if resolve([d])[0].plugin]
    for d in sorted(set(state.designs) - set(loaded)):
        ui.console.print(f"   {d} is running but has no load tests yet; try it at http://{settings.host}:{state.ports[d]}/")
    for i, design in enumerate(loaded, start=2):
        plugin = plugin_for(design)
        # A design may size its demo (``demo``: LoadSpec fields); 300 req/s otherwise.
        demo = {"rate": 300, **getattr(plugin, "demo", {}), "generator": open_loop_generator(design)}
        ui.console.print(f"{i}/{steps} a {args.duration:.0f}-second open-loop load ({demo['generator']}, "
                         f"{demo['rate']} req/s) on {design}")
        spec = load.LoadSpec(design=design, name=f"demo-{design}", duration_s=args.duration, **demo)
        result = load.run_load(settings, spec, say=ui.say)
        load.verify(settings, result, say=ui.say)
        chart = report.timeline_chart({spec.name: result.timeline}, result.out_dir / "timeline.png", spec.name)
        headlines.append((result.summary, report.load_report(result.summary, result.out_dir, chart)))
    ui.console.print(f"{steps}/{steps} headline numbers")
    for summary, path in headlines:
        ui.print_load_summary(summary, path)
    _, rows = supervisor.status(settings)
    ui.print_status(rows, state.ports, False, settings.host)
    ui.console.print("Next: `.venv/bin/sdlab experiment` lists the experiments; `make down` (or `.venv/bin/sdlab down`) stops the stack.")


COMMANDS = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "logs": cmd_logs, "chaos": cmd_chaos, "load": cmd_load, "experiment": cmd_experiment, "bench": cmd_bench, "evidence": cmd_evidence, "top": cmd_top,
            "demo": cmd_demo}


def cmd_design(args: argparse.Namespace) -> None:
    """``sdlab <design> <command> ...``: a command the design's plugin offers."""
    run_design_command(args.command, args.design_args)


def run_design_command(design: str, argv: list[str]) -> None:
    commands = {c.name: c for c in getattr(plugin_for(design), "commands", [])}
    parser = _Parser(prog=f"sdlab {design}", description=f"{design}'s own commands")
    sub = parser.add_subparsers(dest="design_command", required=True, parser_class=_Parser)
    for command in commands.values():
        command.arguments(sub.add_parser(command.name, help=command.help))
    if not commands:
        raise LabCommandError(f"{design} has no commands of its own")
    options = parser.parse_args(argv)
    commands[options.design_command].run(_settings(options), options, ui.say)


def _stdout_closed() -> None:
    """The reader of our output left (``sdlab status --json | head``): a normal end for a CLI.
    Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    try:
        argv = sys.argv[1:] if argv is None else argv
        if argv and argv[0] in DESIGNS:  # `sdlab <design> <command> ...`: the design parses its own options
            run_design_command(argv[0], argv[1:])
            return 0
        args = build_parser().parse_args(argv)
        COMMANDS.get(args.command, cmd_design)(args)
        return 0
    except LabCommandError as exc:
        ui.error(str(exc))
        return 2
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        ui.error(f"bad setting {where}: {first['msg']} (check your SDLAB_* environment variables)")
        return 2
    except KeyboardInterrupt:
        ui.error("interrupted")
        return 130
    except BrokenPipeError:
        _stdout_closed()
        return 0
    except Exception:  # a bug, not a user error: one line here, the traceback in a file
        path = Path(tempfile.gettempdir()) / "sdlab-crash.log"
        path.write_text(traceback.format_exc())
        ui.error(f"internal error (a bug in sdlab): {sys.exc_info()[1]!r}; traceback in {path}")
        return 70


if __name__ == "__main__":
    sys.exit(main())
