"""Terminal output for the CLI: progress while starting, the component table, one-line errors."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict

from rich.console import Console
from rich.table import Table

from services.lab.budgets import memory as memory_budgets
from services.lab.measure.run_summary import generator_label
from services.lab.state import ComponentStatus


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # Rich exits with 1 here; a reader that closed our stdout is a normal end (cli.main: 0).
        self.quiet = True
        raise BrokenPipeError


console = _Console(highlight=False, soft_wrap=True)
err_console = _Console(stderr=True, highlight=False)

STATE_STYLE = {"ready": "green", "degraded": "yellow", "external": "green", "unready": "yellow", "paused": "magenta", "down": "red", "external-down": "red"}


class Progress:
    """Prints one line per component as it starts and becomes ready, with a heartbeat while waiting.

    Plain lines work the same in a terminal, a CI log and a pipe.
    """

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.pending: dict[str, str] = {}
        self.last_heartbeat = 0.0

    def __call__(self, name: str, event: str, detail: str) -> None:
        elapsed = time.monotonic() - self.start
        if event == "starting":
            self.pending[name] = "starting"
            say(f"[{elapsed:5.1f}s] starting {name:<14} {detail}")
        elif event == "ready":
            self.pending.pop(name, None)
            console.print(f"\\[{elapsed:5.1f}s] [green]ready[/]    {name:<14} after {detail}")
        elif event == "stopped":
            console.print(f"stopped {name}")
        elif event == "waiting":
            self.pending[name] = detail
            if elapsed - self.last_heartbeat >= 3 and self.pending:
                self.last_heartbeat = elapsed
                waiting = ", ".join(f"{n} ({why})" for n, why in list(self.pending.items())[:3])
                console.print(f"[{elapsed:5.1f}s] waiting for {waiting}", style="dim", markup=False)


def lag_text(lag_bytes: int | None, lag_s: float | None) -> str:
    """A replica's lag as ``status`` and ``top`` print it: bytes, then seconds when known."""
    if lag_bytes is None and lag_s is None:
        return "-"
    return " / ".join(part for part in ("" if lag_bytes is None else f"{lag_bytes:,} B",
                                        "" if lag_s is None else f"{lag_s:.1f} s") if part)


def memory_cell(limit: int | None, oom_kills: int | None) -> str:
    """A memory budget as ``status`` prints it: ``256 MiB``, with the OOM kills at it when there were any."""
    if limit is None:
        return "-"
    return memory_budgets.show(limit) + (f", {oom_kills} OOM kill(s)" if oom_kills else "")


def print_status(rows: list[ComponentStatus], ports: dict[str, int], as_json: bool, host: str) -> None:
    if as_json:
        payload = {
            "components": [asdict(r) for r in rows],
            "urls": {design: f"http://{host}:{port}" for design, port in ports.items()},
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    table = Table(title="System Design Lab", title_justify="left")
    budgeted = any(r.budget_cores is not None for r in rows)
    memory_budgeted = any(r.memory_budget_bytes is not None for r in rows)
    replicated = any(r.role is not None for r in rows)
    for col in (("component", "pid", "address", "state", "detail") + (("role", "lag") if replicated else ())
                + (("CPU budget",) if budgeted else ()) + (("memory budget",) if memory_budgeted else ())):
        table.add_column(col)
    for r in rows:
        style = STATE_STYLE.get(r.state, "")
        cells = [r.name, str(r.pid or "-"), r.address, f"[{style}]{r.state}[/]", r.detail[:60]]
        if replicated:
            cells += [r.role or "-", lag_text(r.lag_bytes, r.lag_s)]
        if budgeted:
            cells.append("-" if r.budget_cores is None else f"{r.budget_cores:g} core")
        if memory_budgeted:
            cells.append(memory_cell(r.memory_budget_bytes, r.oom_kills))
        table.add_row(*cells)
    console.print(table)
    for design, port in ports.items():
        console.print(f"{design}: http://{host}:{port}  (API docs at /docs)")


def say(message: str) -> None:
    """Plain text, no Rich markup: lab messages contain brackets such as "[fault @ 7.2s]"."""
    console.print(message, markup=False)


def error(message: str) -> None:
    first, *rest = message.splitlines() or [""]
    err_console.print(f"sdlab: error: {first}", markup=False, soft_wrap=True)
    for line in rest:
        err_console.print(f"  {line}", markup=False, style="dim", soft_wrap=True)


def print_load_summary(summary: dict, report_path) -> None:
    fail_pct = 100.0 * summary["failures"] / summary["requests"] if summary["requests"] else 0.0
    loop = generator_label(summary)
    p50, p99 = summary["p50_ms"] or 0, summary["p99_ms"] or 0
    console.print(
        f"{summary['name']}: {summary['achieved_rps']:,.0f} req/s achieved ({summary['offered']}), "
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms ({loop}), errors {fail_pct:.2f}%, "
        f"load generator CPU {summary['generator_cpu_avg'] or 0:.0f}% avg", markup=False)
    cost = summary.get("cost_per_op") or {}
    if cost.get("ops"):
        statements = cost.get("pg_statements")
        console.print(f"one {cost['op']} costs {cost['core_ms_total']:.2f} core-ms (every process of the stack)"
                      + ("" if statements is None else f" and {statements:.2f} PostgreSQL statements"), markup=False)
    if summary.get("loop") == "open" and summary.get("dropped_iterations"):
        console.print(f"[yellow]warning:[/] {summary['dropped_iterations']} requests dropped: the generator "
                      "or the server could not keep up with the offered rate")
    if summary.get("loop") != "open":
        console.print("note: closed-loop latencies include Locust's own scheduling; quote `--open` runs", style="dim")
    if (summary.get("generator_cpu_max") or 0) >= 95:
        console.print("[yellow]warning:[/] the load generator hit 100% CPU: the server may be faster than measured")
    failed = [c for c in summary.get("checks", []) if not c["passed"]]
    if failed:
        console.print(f"[red]failed checks:[/] {'; '.join(c['description'] for c in failed)}")
    console.print(f"report: {report_path}")


def print_bench(summary: dict, out) -> None:
    """A ceiling benchmark's figures against its ceiling, or a benchmark's named figures and goals."""
    if "figures" not in summary:
        goals = summary.get("goals", {})
        table = Table(title="sdlab bench", title_justify="left")
        for col in ("figure", "value", "goal"):
            table.add_column(col)
        for key, value in summary.items():
            if key not in ("machine", "command", "goals") and not isinstance(value, (dict, list)):
                table.add_row(key, f"{value:,}" if isinstance(value, (int, float)) else str(value), goals.get(key, ""))
        console.print(table)
        console.print(f"results: {out}")
        return
    table = Table(title=f"sdlab bench ({summary['generator']}, {summary['connections']} connections, "
                        f"{summary['duration_s']} s each, {summary['popularity']})", title_justify="left")
    for col in ("target", "req/s", "p50", "p99", "ratio to ceiling"):
        table.add_column(col)
    for f in summary["figures"]:
        table.add_row(f["target"], f"{f['rps']:,.0f}", f"{f['p50_ms']:.2f} ms", f"{f['p99_ms']:.2f} ms", f"{f['ratio']:.2f}x")
    console.print(table)
    console.print(f"results: {out}")
