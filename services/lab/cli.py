"""``sdlab``: start, inspect, break and measure the lab.

Every expected problem ends in a one-line ``sdlab: error: ...`` that says what to do.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from pydantic import ValidationError

from services.lab import chaos, supervisor, ui
from services.lab.config import LabSettings
from services.lab.designs import DESIGNS
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

    sub.add_parser("down", help="stop everything the lab started")

    st = sub.add_parser("status", help="show every component and its state")
    st.add_argument("--json", action="store_true", help="machine-readable output")

    logs = sub.add_parser("logs", help="show a component's log")
    logs.add_argument("component")
    logs.add_argument("-n", "--lines", type=int, default=50)
    logs.add_argument("-f", "--follow", action="store_true")

    ch = sub.add_parser("chaos", help="inject a fault: kill, pause, resume, restart, toxic")
    ch.add_argument("action", choices=[*chaos.ACTIONS, "toxic"], metavar="ACTION", help="kill|pause|resume|restart|toxic")
    ch.add_argument("component")
    ch.add_argument("toxic", nargs="?", metavar="TOXIC", help=f"with toxic: {'|'.join(chaos.TOXICS)}")
    ch.add_argument("--compose", action="store_true", help="act on docker compose containers instead of local processes")
    ch.add_argument("--latency-ms", type=int, default=100)
    ch.add_argument("--jitter-ms", type=int, default=0)
    ch.add_argument("--rate-kbps", type=int, default=64)
    return p


def _settings(args: argparse.Namespace) -> LabSettings:
    overrides: dict[str, int] = {}
    if getattr(args, "shards", None):
        overrides["postgres_shards"] = args.shards
    if getattr(args, "instances", None):
        for design in args.designs or DESIGNS:
            if design in DESIGNS:
                overrides[f"{design}_instances"] = args.instances
    settings = LabSettings()
    return LabSettings(**{**settings.model_dump(), **overrides}) if overrides else settings


def cmd_up(args: argparse.Namespace) -> None:
    settings = _settings(args)
    state = supervisor.up(settings, args.designs, on_event=ui.Progress())
    _, rows = supervisor.status(settings)
    ui.print_status(rows, state.ports, False, settings.host)
    ui.console.print("The lab keeps running in the background; stop it with `sdlab down`.")


def cmd_down(args: argparse.Namespace) -> None:
    stopped = supervisor.down(_settings(args), on_event=ui.Progress())
    ui.console.print("nothing was running" if not stopped else f"stopped {len(stopped)} component(s)")


def cmd_status(args: argparse.Namespace) -> None:
    settings = _settings(args)
    state, rows = supervisor.status(settings)
    ui.print_status(rows, state.ports, args.json, settings.host)


def cmd_logs(args: argparse.Namespace) -> None:
    settings = _settings(args)
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
    elif args.compose:
        ui.console.print(chaos.compose_chaos(args.action, args.component))
    else:
        ui.console.print(chaos.local_chaos(settings, args.action, args.component, on_event=ui.Progress()))


COMMANDS = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "logs": cmd_logs, "chaos": cmd_chaos}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        COMMANDS[args.command](args)
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


if __name__ == "__main__":
    sys.exit(main())
