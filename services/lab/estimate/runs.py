"""Which measured runs an estimate reads: the folders given (``--from``), or the newest runs of the
design under the results folder, one per operation whose cost the design needs."""

from __future__ import annotations

import json
from pathlib import Path

from services.lab.errors import LabCommandError
from services.lab.estimate.fleet import EstimateModel, Measured


def _summary(folder: Path) -> dict | None:
    try:
        found = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def of_design(summary: dict, design: str) -> bool:
    """A load run names its design in its spec; a benchmark in its command (``sdlab bench DESIGN``);
    an experiment in its name (``DESIGN.NAME``)."""
    spec = summary.get("spec")
    if isinstance(spec, dict) and spec.get("design") == design:
        return True
    if str(summary.get("experiment", "")).startswith(f"{design}."):
        return True
    return str(summary.get("command", "")).split()[:3] == ["sdlab", "bench", design]


def _costs(model: EstimateModel, summary: dict) -> dict[str, dict]:
    """The run's cost tables; an experiment's from its variants, each operation's from the variant
    that completed the most of it (the longest, busiest window)."""
    found = model.costs(summary)
    for variant in (summary.get("variants") or {}).values():
        for op, table in model.costs(variant).items():
            if table.get("ops", 0) > found.get(op, {}).get("ops", 0):
                found[op] = {**table, "variant": variant.get("name")}
    return found


def _source(folder: Path, summary: dict, ops: list[str], tables: list[dict]) -> dict:
    machine = summary.get("machine") or {}
    return {"path": str(folder), "commit": machine.get("commit", "unknown"),
            "machine": f"{machine.get('cpu_model', 'unknown CPU')}, {machine.get('cores', '?')} cores",
            "command": summary.get("command", "unknown"), "ops": ops,
            "variants": sorted({t["variant"] for t in tables if t.get("variant")})}


def measured(model: EstimateModel, design: str, results: Path, given: list[Path] | None = None) -> Measured:
    """The cost of each of the design's operations from the newest run that carries it (or from the
    given folders, earlier ones first); a one-line refusal when no run carries any."""
    if given:
        folders = []
        for folder in given:
            summary = _summary(folder)
            if summary is None or not of_design(summary, design):
                raise LabCommandError(f"{folder} is not a run of {design} (no summary.json of its `sdlab bench`, "
                                      f"`sdlab load` or `sdlab experiment` there): point --from at one")
            folders.append(folder)
    else:
        # A run's folder starts with its start time (YYYYmmdd-HHMMSS), so the name sorts by age.
        folders = sorted((p for p in results.iterdir() if p.is_dir()), key=lambda p: p.name,
                         reverse=True) if results.is_dir() else []
    costs: dict[str, dict] = {}
    facts: dict = {}
    sources = []
    for folder in folders:
        summary = _summary(folder)
        if summary is None or not of_design(summary, design):
            continue
        fresh = {op: table for op, table in _costs(model, summary).items() if op not in costs}
        if not fresh and not given:
            continue
        costs.update(fresh)
        facts = {**summary, **facts}
        sources.append(_source(folder, summary, sorted(fresh), list(fresh.values())))
        if not given and set(model.ops) <= set(costs):
            break
    if not costs:
        where = ", ".join(str(p) for p in given) if given else str(results)
        raise LabCommandError(f"no measured cost of {' or '.join(model.ops)} for {design} in {where}: "
                              f"run `{model.measure_hint or f'sdlab bench {design}'}` first, or point --from at such a run")
    return Measured(costs, facts, sources)
