"""An estimate as a document: markdown (the default, for the docs and the terminal) or JSON (scripts)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from services.lab.estimate.fleet import Line, Measured, Workload, number

SINGULAR = {"processes": "process", "servers": "server", "brokers": "broker", "partitions": "partition"}
GENERAL_ASSUMPTIONS = (
    "Every count is of one-core processes or servers, the unit the lab measures in; a server with k cores "
    "stands for k of them, but one Python process uses one core at most.",
    "Cost per operation is taken as constant: it was measured on the machine named above at the run's rate, "
    "and a busier process (batching, caches) or another CPU changes it.",
)


@dataclass
class Plan:
    design: str
    workload: Workload
    measured: Measured
    lines: list[Line]
    assumptions: list[str]
    read_op: str | None
    write_op: str
    knobs: dict[str, str]

    @property
    def model_ops(self) -> tuple[str, ...]:
        return tuple(op for op in (self.read_op, self.write_op) if op)

    def headroom(self) -> tuple[float, float] | None:
        """Cores needed at peak and cores counted, over every CPU line."""
        cpu = [line for line in self.lines if line.cores is not None]
        if not cpu:
            return None
        return sum(line.cores for line in cpu), sum(line.count for line in cpu)

    def not_measured(self) -> list[str]:
        missing = [op for op in self.model_ops if op not in self.measured.costs]
        found = [f"no measured cost of {op} in the runs read: its share is left out of every count"
                 for op in missing]
        return found + self.assumptions + list(GENERAL_ASSUMPTIONS)


def as_json(plan: Plan) -> dict:
    work = plan.workload
    totals = plan.headroom()
    return {
        "design": plan.design,
        "workload": {**asdict(work), "peak_rate": work.peak_rate,
                     "reads_per_s_at_peak": work.peak("read"), "writes_per_s_at_peak": work.peak("write")},
        "runs": plan.measured.sources,
        "costs": plan.measured.costs,
        "components": [{**asdict(line), "headroom": line.headroom} for line in plan.lines],
        "cores_at_peak": totals[0] if totals else None,
        "cores_counted": totals[1] if totals else None,
        "not_measured": plan.not_measured(),
    }


def markdown(plan: Plan) -> str:
    work = plan.workload
    read_op, write_op = plan.read_op, plan.write_op
    split = (f"{number(work.peak('read'))} {read_op}/s + {number(work.peak('write'))} {write_op}/s "
             f"(read:write {work.read_weight}:{work.write_weight})") if read_op else f"all {write_op}s"
    lines = [f"## Fleet for {plan.design}", "",
             f"Workload: {number(work.rate)} operations/s on average ({work.source}), × {work.peak_factor:g} at peak = "
             f"**{number(work.peak_rate)}/s**: {split}; payload {work.payload_bytes:,} B; kept {work.retention_years:g} years; "
             f"each process planned at {work.utilisation:g} of a core at peak."
             + (" Options: " + ", ".join(f"{k}={v}" for k, v in work.options.items()) + "." if work.options else ""),
             "", "Measured in:"]
    for source in plan.measured.sources:
        variants = f", variant {', '.join(source['variants'])}" if source.get("variants") else ""
        lines.append(f"- `{source['path']}`: {', '.join(source['ops']) or 'figures'}{variants} "
                     f"(commit {source['commit']}, {source['machine']}, `{source['command']}`)")
    lines += ["", "| component | count | arithmetic |", "|---|---|---|"]
    for line in plan.lines:
        mark = "" if line.measured else " (assumed)"
        count = f"{line.count:,.0f} {SINGULAR.get(line.unit, line.unit) if line.count == 1 else line.unit}" \
            if line.unit in SINGULAR else f"{line.count:,} {line.unit}"
        room = f"; headroom {line.headroom:.0%}" if line.headroom is not None else ""
        lines.append(f"| {line.component}{mark} | {count} | {line.arithmetic}{room} |")
    totals = plan.headroom()
    if totals:
        needed, counted = totals
        lines += ["", f"Headroom at peak: {needed:.2f} cores of work on {counted:,.0f} counted cores: "
                      f"{1 - needed / counted:.0%} left, so the peak may grow ×{counted / needed:.2f} before every "
                      f"process runs at 100%." if needed else "Headroom at peak: no measured CPU work."]
    if plan.knobs:
        lines += ["", "Knobs of this design (`--option KEY=VALUE`): "
                  + "; ".join(f"`{key}`: {what}" for key, what in plan.knobs.items()) + "."]
    lines += ["", "Not measured (assumptions):"] + [f"- {text}" for text in plan.not_measured()]
    return "\n".join(lines) + "\n"
