"""``sdlab estimate DESIGN``: from measured cost per operation to a fleet, arithmetic shown.

A design declares how its measured costs map to components (:class:`EstimateModel`, its plugin's
``estimate_model``); the engine turns a workload into rates and does the arithmetic, one line per
component, so that a reader can redo it on a whiteboard:

    rate (ops/s at peak) × cost (core-ms per op) ÷ 1000 = cores; cores ÷ utilisation = count

The parts every design shares (balancer, Redis, Kafka, statements, partitions, storage) are priced
by :class:`LineBuilder`. A count is of one-core processes (or servers): the unit the lab measures
in. A process is planned to use ``utilisation`` of its core at peak; the headroom is what is left
of the counted cores then.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from services.lab.errors import LabCommandError

SECONDS_PER_DAY = 86_400
DAYS_PER_YEAR = 365


@dataclass(frozen=True)
class Workload:
    """What the fleet must carry: an average rate, its read/write split, its peak, what it stores."""

    rate: float  # operations/s on average (reads + writes)
    read_weight: int
    write_weight: int
    peak_factor: float
    payload_bytes: int
    retention_years: float
    utilisation: float  # of one core per process at peak
    options: dict[str, str] = field(default_factory=dict)  # the design's own knobs (group size, ...)
    source: str = ""  # how the rate was given, for the output
    daily_users: float | None = None  # when the rate came from them

    @property
    def peak_rate(self) -> float:
        return self.rate * self.peak_factor

    def share(self, kind: str) -> float:
        total = self.read_weight + self.write_weight
        return (self.read_weight if kind == "read" else self.write_weight) / total

    def peak(self, kind: str) -> float:
        """Reads or writes per second at peak."""
        return self.peak_rate * self.share(kind)

    def average(self, kind: str) -> float:
        return self.rate * self.share(kind)


def workload(*, rate: float | None, daily_users: float | None, actions_per_user: float, read_write: tuple[int, int],
             peak_factor: float, payload_bytes: int, retention_years: float, utilisation: float,
             options: dict[str, str] | None = None) -> Workload:
    """The workload from the command's flags, or a one-line reason naming the fix."""
    if (rate is None) == (daily_users is None):
        raise LabCommandError("give the load one way: --rate OPS_PER_S, or --daily-users N (with --actions-per-user)")
    if rate is not None and not rate > 0:
        raise LabCommandError(f"--rate must be a positive number of operations/s, not {rate:g}")
    if daily_users is not None:
        if not daily_users > 0 or not actions_per_user > 0:
            raise LabCommandError("--daily-users and --actions-per-user must be positive")
        rate = daily_users * actions_per_user / SECONDS_PER_DAY
        source = f"{daily_users:,.0f} daily users × {actions_per_user:g} actions ÷ 86,400 s"
    else:
        source = "--rate"
    for flag, value in (("--peak-factor", peak_factor), ("--retention", retention_years)):
        if not value > 0:
            raise LabCommandError(f"{flag} must be positive, not {value:g}")
    if peak_factor < 1:
        raise LabCommandError(f"--peak-factor is the peak over the average: 1 or more, not {peak_factor:g}")
    if not 0 < utilisation <= 1:
        raise LabCommandError(f"--utilisation is the share of a core a process may use at peak: in (0, 1], not {utilisation:g}")
    if payload_bytes <= 0:
        raise LabCommandError(f"--payload-bytes must be positive, not {payload_bytes}")
    read, write = read_write
    return Workload(float(rate), read, write, peak_factor, payload_bytes, retention_years, utilisation,
                    dict(options or {}), source, daily_users)


@dataclass
class Line:
    """One component of the plan: its count and the arithmetic that gave it."""

    component: str
    count: float
    unit: str
    arithmetic: str
    measured: bool = True  # False: its input is an assumption, not a measurement
    cores: float | None = None  # CPU demand at peak, for the headroom

    @property
    def headroom(self) -> float | None:
        """The share of the counted cores left at peak."""
        if self.cores is None or not self.count:
            return None
        return 1 - self.cores / self.count


@dataclass(frozen=True)
class Term:
    """``rate`` operations/s of ``op``, each costing ``per_op``."""

    op: str
    rate: float
    per_op: float | None  # core-ms (or statements) one operation costs; None: not measured


def matching_ms(table: dict | None, pattern: str) -> float | None:
    """Core-ms per operation of the components whose names match ``pattern`` (copies add up: they
    share the work). None when the table has no such component."""
    if not table:
        return None
    found = [v for name, v in table.get("core_ms", {}).items() if re.fullmatch(pattern, name) and v is not None]
    return round(sum(found), 4) if found else None


def terms(measured: Measured, rates: dict[str, float], pattern: str) -> list[Term]:
    """One Term per operation: its rate and the core-ms of the components matching ``pattern``."""
    return [Term(op, rate, matching_ms(measured.costs.get(op), pattern) if op in measured.costs else None)
            for op, rate in rates.items()]


def statement_terms(measured: Measured, rates: dict[str, float]) -> list[Term]:
    """One Term per operation: its rate and the PostgreSQL statements it sends (all servers)."""
    return [Term(op, rate, (measured.costs.get(op) or {}).get("pg_statements")) for op, rate in rates.items()]


def cores_line(component: str, terms: list[Term], utilisation: float, unit: str = "processes",
               minimum: int = 1) -> Line:
    """``sum(rate × core-ms) ÷ 1000 = cores; cores ÷ utilisation = count``. Terms without a measured
    cost are named in the arithmetic and left out of the sum; the line is then not measured."""
    known = [t for t in terms if t.per_op is not None]
    cores = sum(t.rate * t.per_op for t in known) / 1000
    count = max(minimum, math.ceil(round(cores / utilisation, 6)))
    parts = " + ".join(f"{number(t.rate)} {t.op}/s × {_cost(t.per_op)} core-ms" for t in known) or "0"
    missing = [t.op for t in terms if t.per_op is None]
    text = f"({parts}) ÷ 1000 = {cores:.2f} cores; ÷ {utilisation:g} a process = {cores / utilisation:.2f} → {count}"
    if count == minimum and cores / utilisation < minimum:
        text += f" (at least {minimum})"
    if missing:
        text += f"; {', '.join(missing)} not measured, left out"
    return Line(component, count, unit, text, measured=not missing, cores=cores)


def storage_line(component: str, writes_per_s: float, bytes_per_row: float, years: float, measured: bool,
                 what: str = "rows") -> Line:
    """Average writes/s × 86,400 × 365 × bytes per row = a year; × the retention = what is kept."""
    per_year = writes_per_s * SECONDS_PER_DAY * DAYS_PER_YEAR * bytes_per_row
    kept = per_year * years
    text = (f"{number(writes_per_s)} {what}/s × 86,400 × 365 × {bytes_per_row:,.0f} B = {_bytes(per_year)} a year; "
            f"× {years:g} years = {_bytes(kept)}")
    return Line(component, *_size(kept), text, measured=measured)


def bytes_per_write(facts: dict, kept: tuple[str, ...], counted: str) -> tuple[float, str] | None:
    """Bytes one write leaves on disk, from a run's ``tables``: the kept tables' total size over the
    rows of the one that counts writes (an order's items weigh on the order). None: not measured."""
    tables = facts.get("tables") or {}
    rows = (tables.get(counted) or {}).get("rows")
    if not rows or any(t not in tables for t in kept):
        return None
    total = sum(tables[t]["bytes"] for t in kept)
    parts = " + ".join(f"{t} {_bytes(tables[t]['bytes'])}" for t in kept)
    return total / rows, (f"({parts}) ÷ {rows:,} {counted} rows = {total / rows:,.0f} B (measured, with the run's "
                          f"own payloads: --payload-bytes does not change it)")


def memory_line(component: str, items: float, bytes_each: float, item: str, measured: bool) -> Line:
    total = items * bytes_each
    return Line(component, *_size(total),
                f"{number(items)} {item} × {_bytes(bytes_each)} = {_bytes(total)}", measured=measured)


def statements_line(component: str, terms: list[Term]) -> Line:
    """PostgreSQL statements a second at peak: rate × statements per operation (each a round trip).
    Each Term's ``per_op`` is statements per operation."""
    known = [t for t in terms if t.per_op is not None]
    total = sum(t.rate * t.per_op for t in known)
    parts = " + ".join(f"{number(t.rate)} {t.op}/s × {t.per_op:.2f}" for t in known) or "0"
    missing = [t.op for t in terms if t.per_op is None]
    return Line(component, round(total), "statements/s", f"{parts} = {number(total)} statements/s"
                + (f"; {', '.join(missing)} not measured, left out" if missing else ""), measured=not missing)


def _size(value: float) -> tuple[float, str]:
    """A count and its unit: GiB, or TiB from 1 TiB up."""
    return (round(value / 2**40, 1), "TiB") if value >= 2**40 else (round(value / 2**30, 2), "GiB")


def _cost(value: float) -> str:
    """Core-ms with three decimals, or two significant digits below 0.01 (a delivery's share)."""
    return f"{value:.3f}" if value >= 0.01 or value == 0 else f"{value:.2g}"


def number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.3g}"


def _bytes(value: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:,.1f} {unit}"
    return f"{value:,.0f} B"


@dataclass
class Measured:
    """The cost tables found for a design's operations, and the runs they came from."""

    costs: dict[str, dict]  # op -> a ``cost_per_op`` table
    facts: dict[str, Any]  # the runs' other figures (newest first wins), for a design's own lines
    sources: list[dict]  # {path, commit, machine, command, ops}


class EstimateModel:
    """A design's mapping from measured costs to a fleet. Subclasses say which operation a read and a
    write is, where a run records their costs, and which components they size (:meth:`plan`)."""

    read_op: str | None = None  # the operation a read is (None: the design's rate is all writes)
    write_op: str = ""
    default_read_write: tuple[int, int] = (10, 1)
    default_payload_bytes: int = 200
    measure_hint: str = ""  # the command that measures its costs
    knobs: ClassVar[Mapping[str, str]] = {}  # its own workload options (``--option KEY=VALUE``) and what each means

    @property
    def ops(self) -> tuple[str, ...]:
        return tuple(op for op in (self.read_op, self.write_op) if op)

    def costs(self, summary: dict) -> dict[str, dict]:
        """The cost tables a run's ``summary.json`` carries: a load run's ``cost_per_op`` of one of
        this design's operations. A design's benchmark that records more says so by overriding."""
        table = summary.get("cost_per_op") or {}
        return {table["op"]: table} if table.get("op") in self.ops and table.get("ops") else {}

    def plan(self, work: Workload, measured: Measured) -> tuple[list[Line], list[str]]:
        """The plan's lines and the assumptions it rests on that no run measured."""
        raise NotImplementedError


POSTGRES = r"postgres-\d+"  # every PostgreSQL server of a run, primaries and shards alike
PARTITION_RULE = ("Kafka partitions follow a rule, not a measurement: a consumer group reads a partition with "
                  "one consumer.")


@dataclass(frozen=True)
class LineBuilder:
    """The lines every plan has, priced for one workload from one set of measured costs: a design's
    model names its operations' rates and its own processes, the lab's shared parts are named here."""

    work: Workload
    measured: Measured

    def cpu(self, component: str, rates: dict[str, float], pattern: str, unit: str = "processes",
            minimum: int = 1) -> Line:
        """Processes (or servers) for the components matching ``pattern``, each operation at its rate."""
        return cores_line(component, terms(self.measured, rates, pattern), self.work.utilisation, unit, minimum)

    def balancer(self, rates: dict[str, float]) -> Line:
        return self.cpu("load balancer (Caddy)", rates, "caddy")

    def redis(self, rates: dict[str, float]) -> Line:
        return self.cpu("Redis (CPU)", rates, "redis", unit="servers")

    def brokers(self, rates: dict[str, float]) -> Line:
        return self.cpu("Kafka brokers", rates, "kafka", unit="brokers")

    def statements(self, rates: dict[str, float]) -> Line:
        return statements_line("PostgreSQL statements", statement_terms(self.measured, rates))

    @staticmethod
    def partitions(topic: str, consumers: Line, consumer: str, brokers: Line) -> Line:
        """One partition per consumer of the topic's group, at least one per broker (:data:`PARTITION_RULE`)."""
        return Line(f"Kafka partitions ({topic})", max(consumers.count, brokers.count), "partitions",
                    f"one per {consumer} ({consumers.count:.0f}), at least one per broker ({brokers.count:.0f})",
                    measured=False)

    def storage(self, component: str, kept: tuple[str, ...], counted: str, row_overhead: int, what: str) -> Line:
        """What the average writes keep: bytes per write from the runs' tables (that arithmetic first),
        else the payload plus ``row_overhead`` bytes, and the line is then not measured."""
        found = bytes_per_write(self.measured.facts, kept, counted)
        row = found[0] if found else self.work.payload_bytes + row_overhead
        line = storage_line(component, self.work.average("write"), row, self.work.retention_years, bool(found), what)
        if found:
            line.arithmetic = f"{found[1]}; {line.arithmetic}"
        return line
