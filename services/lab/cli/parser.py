"""The command line: every command, its arguments and their help."""

from __future__ import annotations

import argparse
from pathlib import Path

from services.lab.backends.compose.toxiproxy import TOXICS
from services.lab.backends.local import chaos
from services.lab.budgets import memory as memory_rules
from services.lab.cli import estimate_command
from services.lab.designs import names as design_names
from services.lab.errors import LabCommandError
from services.lab.replication import layout as replication


class CommandParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default prints usage + a line; keep it to one line
        raise LabCommandError(f"{message}; see `{self.prog} --help`")


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="sdlab", description="``sdlab``: start, inspect, break and measure the lab.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=CommandParser)

    up = sub.add_parser("up", help="start the stack and wait until it is ready")
    up.add_argument("designs", nargs="*", metavar="DESIGN", help=f"designs to run (default all: {', '.join(design_names())})")
    up.add_argument("--instances", type=int, help="app instances per design (default 2)")
    up.add_argument("--shards", type=int, help="PostgreSQL servers (default 2)")
    up.add_argument("--replicas", type=int, metavar="N",
                    help="streaming replicas per PostgreSQL server (default 0): each shard becomes a Patroni "
                         "cluster (DCS: the lab's etcd) of a primary and N replicas, with automatic failover "
                         f"within about {replication.FAILOVER_BOUND_S} s (ttl {replication.TTL_S} s, loop_wait "
                         f"{replication.LOOP_WAIT_S} s); the apps reach the primary by a multi-host URL "
                         "(target_session_attrs=read-write). Starts on fresh data. With --compose: N replica "
                         "services per server (pg_basebackup -R), the same URLs, and no failover or switchover "
                         "(those need local mode)")
    up.add_argument("--replication", choices=replication.MODES,
                    help="with --replicas: async (default; a commit returns before a replica has it, so a "
                         "failover can lose the last acknowledged writes) or sync (Patroni's synchronous_mode: "
                         "a commit returns once the synchronous replica has it, and only that replica is "
                         "promoted, so no acknowledged write is lost; with no healthy replica left the "
                         "primary goes on alone; with --compose, synchronous_standby_names and "
                         "synchronous_commit=on, and a primary waits for its replica, with no failover)")
    up.add_argument("--budget", action="append", metavar="NAME=CORES[,NAME=CORES...]",
                    help="CPU budgets, like a small machine per component: NAME is a component (postgres-1), "
                         "its kind (postgres) or a prefix (a design's name); every component it names gets CORES "
                         "(adds to SDLAB_BUDGETS)")
    up.add_argument("--memory", action="append", metavar="NAME=SIZE[,NAME=SIZE...]",
                    help="memory budgets, a hard limit per component (local mode: a memory cgroup, past which "
                         "the kernel kills a process of it; compose: mem_limit): NAME as for --budget; SIZE in "
                         f"bytes or with a binary unit (256M = 256 MiB, 1G, 512MiB), at least "
                         f"{memory_rules.FLOOR_BYTES // 2**20}M and at most the machine's memory "
                         "(adds to SDLAB_MEMORY_BUDGETS)")
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
    ld.add_argument("--target", metavar="URL",
                    help="load a deployment the lab did not start (e.g. a cluster's ingress) at its base URL: "
                         "seeded and checked through its public API only; what needs the lab's stack (server "
                         "metrics, per-component CPU, cost, database checks) is skipped and named in the report")
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
    bn.add_argument("design", choices=design_names())  # one without a benchmark is refused when it runs
    bn.add_argument("--duration", type=int, default=10, help="seconds per target (default 10)")
    bn.add_argument("--connections", type=int, default=64, help="open connections (default 64)")

    estimate_command.add_parser(sub, design_names())

    tp = sub.add_parser("top", help="a live view: every component's CPU and memory, every service's rate and latency")
    tp.add_argument("--once", action="store_true", help="print one frame and exit (for scripts and tests)")
    tp.add_argument("--json", action="store_true", help="with --once: the frame as JSON")
    tp.add_argument("--interval", type=float, default=1.0, help="seconds between frames (default 1)")
    _compose_flag(tp)

    ev = sub.add_parser("evidence", help="copy a reference run (report, charts, summary) into docs/evidence/, "
                                          "or run every reference run again (--remeasure)")
    ev.add_argument("run", type=Path, nargs="?", help="the run's folder under results/")
    ev.add_argument("--remeasure", action="store_true",
                    help="run the command each docs/evidence/ folder names again, one at a time on a clean working "
                         "tree (every run at one commit), and replace its evidence; before-* baselines are kept")
    ev.add_argument("--only", metavar="GLOB", action="append",
                    help="with --remeasure: the folders to run again, a glob under docs/evidence/ (e.g. '<design>/*'); "
                         "repeat it to run several, in the order given")
    ev.add_argument("--dry-run", action="store_true", help="with --remeasure: list what would run, run nothing")

    dm = sub.add_parser("demo", help="start the stack, run a short load on each design, print the numbers")
    dm.add_argument("--duration", type=float, default=20, help="seconds of load per design (default 20)")

    for name in design_names():
        dc = sub.add_parser(name, help=f"{name}'s own commands (e.g. `sdlab {name} --help`)", add_help=False)
        dc.add_argument("design_args", nargs=argparse.REMAINDER)

    ch = sub.add_parser("chaos", help="inject a fault: kill, pause, resume, restart, throttle, switchover, toxic")
    ch.add_argument("action", choices=[*chaos.ACTIONS, "toxic"], metavar="ACTION",
                    help="kill|stop|pause|resume|restart|throttle|switchover|toxic (switchover: a replicated "
                         "shard's primary role handed to a replica by Patroni, e.g. `chaos switchover postgres-0`)")
    ch.add_argument("component")
    ch.add_argument("toxic", nargs="?", metavar="ARGUMENT",
                    help=f"with toxic: {'|'.join(TOXICS)}; with throttle: PAUSE_MS/PERIOD_MS (default 100/200)")
    _compose_flag(ch)
    ch.add_argument("--latency-ms", type=int, default=100)
    ch.add_argument("--jitter-ms", type=int, default=0)
    ch.add_argument("--rate-kbps", type=int, default=64)
    return p


def _compose_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compose", action="store_true",
                        help="act on the docker compose deployment (found by itself after `sdlab up --compose`)")
