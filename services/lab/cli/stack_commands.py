"""The commands that run and watch the stack: up, down, status, logs, chaos, top."""

from __future__ import annotations

import argparse

from services.lab import machine, ui
from services.lab.backends.compose.toxiproxy import TOXICS, toxic_calls
from services.lab.backends.selection import backend_for_up
from services.lab.budgets import memory as memory_rules
from services.lab.budgets import rules as budgets
from services.lab.cli.common import backend_of, settings_of
from services.lab.errors import LabCommandError
from services.lab.replication import layout as replication


def cmd_up(args: argparse.Namespace) -> None:
    settings = settings_of(args)
    if args.standin and not args.compose:
        raise LabCommandError("--standin replaces compose's official images: add --compose")
    backend = backend_for_up(settings, compose=args.compose)
    if args.instances is not None or args.shards is not None:
        backend.require("sizing")
    if settings.postgres_replicas or args.replication is not None:
        backend.require("replicas")
        replication.check(settings.postgres_replicas, settings.postgres_replication, settings.postgres_shards,
                          machine.size())
    budget = budgets.merge(*(budgets.parse(b) for b in args.budget or []))
    memory = budgets.merge(*(memory_rules.parse(m) for m in args.memory or []))
    backend.up(args.designs, on_event=ui.Progress(), say=ui.say, standin=args.standin, budget=budget, memory=memory)
    state, rows = backend.status()
    ui.print_status(rows, state.ports, False, settings.host)
    ui.console.print(backend.running_note)


def cmd_down(args: argparse.Namespace) -> None:
    settings = settings_of(args)
    # Never found by itself: a project someone started with `docker compose up` goes down only when asked.
    backend = backend_of(args, settings, implicit=False)
    ui.console.print(backend.down(volumes=args.volumes, on_event=ui.Progress()))


def cmd_status(args: argparse.Namespace) -> None:
    settings = settings_of(args)
    state, rows = backend_of(args, settings).status()
    ui.print_status(rows, state.ports, args.json, settings.host)


def cmd_logs(args: argparse.Namespace) -> None:
    settings = settings_of(args)
    backend_of(args, settings).logs(args.component, args.lines, args.follow)


def cmd_chaos(args: argparse.Namespace) -> None:
    settings = settings_of(args)
    if args.action == "toxic":
        if not args.toxic:
            raise LabCommandError(f"say which toxic: sdlab chaos toxic {args.component} <{'|'.join(TOXICS)}>")
        calls = toxic_calls(args.component, args.toxic, latency_ms=args.latency_ms, jitter_ms=args.jitter_ms,
                            rate_kbps=args.rate_kbps)  # an unknown toxic is refused before any backend is asked
        ui.console.print(backend_of(args, settings).network_fault(calls))
    else:
        backend = backend_of(args, settings)
        ui.console.print(backend.chaos(args.action, args.component, argument=args.toxic, on_event=ui.Progress()))


def cmd_top(args: argparse.Namespace) -> None:
    from services.lab.top import run_top

    if args.interval <= 0:
        raise LabCommandError("--interval must be positive")
    if args.json and not args.once:
        raise LabCommandError("--json prints one frame: add --once")
    settings = settings_of(args)
    run_top(backend_of(args, settings), once=args.once, as_json=args.json, interval_s=args.interval)
