"""The shop's own lab command: ``sdlab shop reshard --to N`` (and ``--rollback``).

It grows the running lab to N PostgreSQL servers, brings the new ones to the shop's schema, and
has :class:`shop.reshard.Resharder` move buckets onto them while whatever load is running goes
on. The report (buckets and rows moved, per-bucket write block, verification) is printed and
stored as ``reshard.json`` with the machine, the commit and the command.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from loadtests.shop.checks import part_url
from services.lab.backends.selection import select_backend
from services.lab.config import LabSettings
from services.lab.contract import DesignCommand
from services.lab.errors import LabCommandError
from services.lab.machine import invoked_command, machine_spec
from services.lab.measure.load import results_dir
from shop import migrate
from shop.reshard import Resharder, ReshardError, ReshardReport


def _arguments(parser) -> None:
    parser.add_argument("--to", type=int, help="PostgreSQL servers to spread the buckets over (adds the missing ones)")
    parser.add_argument("--rollback", action="store_true", help="move the last reshard's buckets back")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds the instances get to load the new map before sources are cleaned (default 2)")


def run_reshard(settings: LabSettings, to: int | None, rollback: bool, say: Callable[[str], None],
                settle_s: float = 2.0, out: Path | None = None) -> tuple[ReshardReport, dict]:
    backend = select_backend(settings)
    state = backend.state()
    if "shop" not in state.designs:
        raise LabCommandError("the running lab has no shop; start it with `sdlab up shop`")
    resharder = Resharder(part_url(state, "postgres-0"), say, settle_s=settle_s)

    async def current_count() -> int:
        try:
            return len((await resharder.current()).shards)
        finally:
            await resharder.close()

    async def run(urls: list[str] | None) -> ReshardReport:
        try:
            return await (resharder.rollback() if urls is None else resharder.reshard(urls))
        finally:
            await resharder.close()

    try:
        if rollback:
            report = asyncio.run(run(None))
        else:
            have = asyncio.run(current_count())
            if to is None or to < have:
                raise LabCommandError(f"--to must be at least the current {have} servers (resharding only adds)")
            urls = backend.add_postgres(to)[:to]
            for url in urls[have:]:
                migrate.upgrade(url)
            say(f"{to - have} new PostgreSQL server(s) at the shop's schema" if to > have else "no server to add")
            report = asyncio.run(run(urls))
    except ReshardError as exc:
        raise LabCommandError(str(exc)) from None
    return report, write_report(settings, report, out)


def write_report(settings: LabSettings, report: ReshardReport, out: Path | None = None) -> dict:
    summary = {**report.as_dict(), "machine": machine_spec(), "command": invoked_command()}
    out = out or results_dir("shop-reshard", settings.results)
    (out / "reshard.json").write_text(json.dumps(summary, indent=2, default=str))
    summary["path"] = str(out / "reshard.json")
    return summary


def _run(settings: LabSettings, options, say: Callable[[str], None]) -> None:
    if not options.rollback and options.to is None:
        raise LabCommandError("say --to N (servers to spread the buckets over) or --rollback")
    _, s = run_reshard(settings, options.to, options.rollback, say, options.settle)
    say(f"moved {s['buckets_moved']} of {s['buckets']} buckets ({s['share_moved']:.1%}) and {s['rows_moved']:,} rows "
        f"from {s['from_shards']} to {s['to_shards']} servers in {s['seconds']:.1f} s; writes to a moving bucket "
        f"blocked p50 {s['block_ms_p50']:.0f} ms, max {s['block_ms_max']:.0f} ms; every bucket verified "
        f"(row counts and checksums): {'yes' if s['verified'] else 'NO'}; map v{s['map_version']}")
    say(f"report: {s['path']}")


def reshard_action(ctx, argument: str) -> str:
    """The fault-schedule action ``reshard N``: the same reshard, its report in the run's folder."""
    if not argument.isdigit():
        raise LabCommandError(f"reshard needs a server count, not {argument!r}")
    _, s = run_reshard(ctx.settings, int(argument), False, lambda line: None, out=ctx.out_dir)
    return (f"resharded to {s['to_shards']} servers: {s['buckets_moved']} buckets, {s['rows_moved']:,} rows, "
            f"block p50 {s['block_ms_p50']:.0f} ms, max {s['block_ms_max']:.0f} ms, verified {s['verified']}")


FAULT_ACTIONS = {"reshard": reshard_action}
COMMANDS = [DesignCommand("reshard", "move buckets onto more PostgreSQL servers, live (or --rollback)", _arguments, _run)]
