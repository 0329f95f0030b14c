"""Charts (PNG) and ``report.md`` for load runs and experiments."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogFormatter  # noqa: E402

from services.lab.analysis import fmt  # noqa: E402
from services.lab.budgets import memory as memory_budgets  # noqa: E402
from services.lab.budgets import rules as budgets  # noqa: E402
from services.lab.measure.cost import cost_lines  # noqa: E402
from services.lab.measure.run_summary import generator_label  # noqa: E402

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
LABEL_STEP = 0.1  # a fault label's line, as a share of the panel's height


def budget_lines(summary: dict) -> list[str]:
    """The budgets in force and what limited the run (the line is there with or without budgets)."""
    lines = [f"- CPU budgets: {budgets.describe(summary['budgets'])}"] if summary.get("budgets") else []
    if summary.get("memory_budgets"):
        lines.append(f"- memory budgets: {memory_budgets.describe(summary['memory_budgets'])}")
    if summary.get("oom_kills"):
        lines.append("- processes OOM-killed at a memory budget: "
                     + ", ".join(f"{name} {n}" for name, n in sorted(summary["oom_kills"].items())))
    if summary.get("bottleneck"):
        lines.append(f"- {summary['bottleneck']}")
    return lines + ([""] if lines else [])


def log_axis(ax) -> None:
    """A logarithmic y axis whose ticks read as plain numbers (20, 100, 2000), not 2x10^1."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))  # labels minor ticks only on a short range


def _shade(ax, fault_windows: list[dict], end: float, label: bool) -> None:
    for i, w in enumerate(fault_windows):
        stop = w["end_s"] if w.get("end_s") is not None else end
        ax.axvspan(w["start_s"], stop, color="#f4a582" if w["kind"] == "kill" else "#b2abd2", alpha=0.35, lw=0)
        if label:
            # One line each, from the top down: windows that start a moment apart would overprint.
            ax.text(w["start_s"], 0.97 - LABEL_STEP * i, f" {w['kind']} {w['component']}", fontsize=8, va="top",
                    transform=ax.get_xaxis_transform())


def timeline_chart(series: dict[str, list[dict]], path: Path, title: str,
                   fault_windows: dict[str, list[dict]] | None = None) -> Path:
    """Throughput, p50/p99 and error rate over time; one line per variant; fault windows shaded."""
    fig, (ax_rps, ax_lat, ax_err) = plt.subplots(3, 1, figsize=(12, 8.5), sharex=True)
    end = 0.0
    for i, (name, rows) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        t = [r["t"] for r in rows]
        end = max(end, t[-1] if t else 0)
        ax_rps.plot(t, [r["requests"] for r in rows], color=color, label=name, lw=1.4)
        ax_lat.plot(t, [r["p99_ms"] for r in rows], color=color, lw=1.4, label=f"{name} p99")
        ax_lat.plot(t, [r["p50_ms"] for r in rows], color=color, lw=1.0, ls="--", label=f"{name} p50")
        ax_err.plot(t, [100.0 * r["failures"] / r["requests"] if r["requests"] else 0.0 for r in rows],
                    color=color, lw=1.4, label=name)
    ax_rps.set_ylabel("requests/s")
    ax_lat.set_ylabel("latency (ms)")
    log_axis(ax_lat)
    ax_err.set_ylabel("errors (%)")
    ax_err.set_xlabel("seconds since load start")
    for ax in (ax_rps, ax_lat, ax_err):
        ax.grid(alpha=0.3)
    legend_outside(ax_rps)
    legend_outside(ax_lat)
    windows = [w for each in (fault_windows or {}).values() for w in each]
    # Headroom over the busiest second for the fault labels, one line each.
    ax_rps.set_ylim(0, ax_rps.get_ylim()[1] * (1 + 1.5 * LABEL_STEP * len(windows)) if windows else None)
    ax_err.set_ylim(0, max(1.0, ax_err.get_ylim()[1]))  # an all-zero error line sits on a readable 0-1% axis
    for ax in (ax_rps, ax_lat, ax_err):
        _shade(ax, windows, end, label=ax is ax_rps)
    fig.suptitle(title)
    return save(fig, path)


def save(fig, path: Path) -> Path:
    """Lay out, write and close a chart (matplotlib keeps every open figure until closed)."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# A bar chart turns logarithmic when its values span this many decades: below, a linear axis
# compares the bars truly; above, the small bars would be invisible (their values stay written on them).
LOG_FROM_DECADES = 2


def bar_chart(values: dict[str, float], path: Path, title: str, ylabel: str) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    names = list(values)
    bars = ax.bar(names, [values[n] for n in names], color=COLORS[: len(names)])
    for bar, name in zip(bars, names):
        ax.annotate(f"{values[name]:,.1f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=9)
    positive = [v for v in values.values() if v > 0]
    if positive and max(positive) >= 10**LOG_FROM_DECADES * min(positive):
        log_axis(ax)
        ylabel = f"{ylabel[:-1]}, log scale)" if ylabel.endswith(")") else f"{ylabel} (log scale)"
    ax.margins(y=0.15)  # room above the tallest bar for its value
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def legend_outside(ax, **kw) -> None:
    """The legend right of the axes, where it can cover no data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8, **kw)


def capacity_chart(points: list[dict], slo_p99_ms: float, path: Path, title: str, knee_rate: float | None,
                   unit: str = "requests/s", latency: str = "latency") -> Path:
    """Latency (p50, p99) and achieved rate against offered rate; the objective and the knee marked.

    A point is one run of a step (``try`` 1, or 2 for a rate run once more after a miss); each is
    drawn as a first try or a retry, and the lines join each rate's run the verdict counts (``best``).
    """
    points = sorted(points, key=lambda p: (p["offered"], p.get("try", 1)))
    best = [p for p in points if p.get("best", True)]
    offered = [p["offered"] for p in best]
    fig, (ax_lat, ax_rate) = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    ax_lat.plot(offered, [_nan(p["p99"]) for p in best], "-", color=COLORS[1], label="p99 (each rate's better try)")
    ax_lat.plot(offered, [_nan(p["p50"]) for p in best], "--", color=COLORS[0], label="p50 (the same run)")
    ax_rate.plot(offered, [p["achieved"] for p in best], "-", color=COLORS[2], label="achieved")
    tries = {"first try": "o", "retry (the rate run once more)": "s"}
    for (kind, marker), retry in zip(tries.items(), (False, True)):
        run = [p for p in points if (p.get("try", 1) > 1) == retry]
        x, hollow = [p["offered"] for p in run], {"mfc": "none"} if retry else {}
        for ax, key, color in ((ax_lat, "p99", COLORS[1]), (ax_lat, "p50", COLORS[0]), (ax_rate, "achieved", COLORS[2])):
            ax.plot(x, [_nan(p[key]) for p in run], marker, ls="none", color=color, **hollow)
    missed = [p for p in best if not p["met"]]
    ax_lat.plot([p["offered"] for p in missed], [_nan(p["p99"]) for p in missed], "x", color="black", ms=9,
                label="missed the objective")
    ax_lat.axhline(slo_p99_ms, color="grey", ls=":", lw=1.2, label=f"objective: p99 <= {slo_p99_ms:.0f} ms")
    log_axis(ax_lat)  # from a few ms below the knee to seconds past it
    ax_lat.set_ylabel(f"{latency}\n(ms, open loop, log scale)")
    ax_rate.plot(offered, offered, ls=":", color="grey", lw=1.2, label="achieved = offered")
    ax_rate.set_ylabel(f"achieved ({unit})")
    ax_rate.set_xlabel(f"offered rate ({unit}, open loop)")
    knee = next((p for p in best if p["offered"] == knee_rate), None)
    if knee is not None:
        for ax in (ax_lat, ax_rate):
            ax.axvline(knee["offered"], color=COLORS[3], ls="--", lw=1.0)
        # At the foot of the knee's line: right of it and low down, the achieved line never runs.
        ax_rate.annotate(f" knee {knee['offered']:,.0f} {unit}", (knee["offered"], 0.04), xycoords=("data", "axes fraction"),
                         fontsize=9, color=COLORS[3], va="bottom")
    shapes = [Line2D([], [], marker=m, ls="none", color="black", mfc="none" if i else "black", label=kind)
              for i, (kind, m) in enumerate(tries.items())]
    for ax in (ax_lat, ax_rate):
        ax.grid(alpha=0.3)
        legend_outside(ax, handles=[*ax.get_legend_handles_labels()[0], *shapes])
    fig.suptitle(title)
    return save(fig, path)


def scaling_chart(points: list[dict], scaling, path: Path, title: str, what: str) -> Path:
    """Throughput against N with the ideal line (N x one copy); below, each copy's CPU against its budget."""
    points = sorted(points, key=lambda p: p["n"])
    ns = [p["n"] for p in points]
    fig, (ax_rate, ax_cpu) = plt.subplots(2, 1, figsize=(10, 8))
    base = points[0]["throughput"] / points[0]["n"]
    ax_rate.plot(ns, [base * n for n in ns], ls=":", color="grey", label="ideal: N x one")
    ax_rate.plot(ns, [0.8 * base * n for n in ns], ls="--", color="grey", lw=0.8, label="goal: 0.8 x ideal")
    ax_rate.plot(ns, [p["throughput"] for p in points], "o-", color=COLORS[0], label="measured")
    for p in points:
        ax_rate.annotate(f" {p['throughput']:,.0f}", (p["n"], p["throughput"]), fontsize=9)
    ax_rate.set_xticks(ns)
    ax_rate.set_xlabel(f"{what} (each held to {scaling.budget:g} core)")
    ax_rate.set_ylabel(f"throughput ({scaling.unit})")
    labels = [f"N={p['n']} #{i + 1}" for p in points for i in range(len(p["scaled_used_cores"]))]
    used = [c for p in points for c in p["scaled_used_cores"]]
    ax_cpu.bar(range(len(used)), used, color=COLORS[2], label="cores used (mean over the run)")
    ax_cpu.axhline(scaling.budget, color=COLORS[1], ls="--", lw=1.2, label=f"budget {scaling.budget:g} core")
    ax_cpu.set_xticks(range(len(used)), labels, rotation=45, ha="right", fontsize=8)
    ax_cpu.set_ylabel(f"CPU of each {scaling.component}\n(cores)")
    ax_cpu.set_ylim(0, 1.2 * max([*used, scaling.budget]))  # the budget line clear of the frame
    machine = ", ".join(f"N={p['n']}: {p['machine_cpu_pct']}%" for p in points)
    ax_cpu.set_title(f"each {scaling.component} against its budget (machine busy: {machine})", fontsize=9)
    for ax in (ax_rate, ax_cpu):
        ax.grid(alpha=0.3)
        legend_outside(ax)  # beside the panel: a legend inside covered the first bars
    fig.suptitle(title)
    return save(fig, path)


def machine_lines(summary: dict) -> list[str]:
    m = summary["machine"]
    return [
        f"- Machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, Python {m['python']}",
        f"- Commit: `{m['commit']}`",
        f"- Command: `{summary['command']}`",
    ]


def load_report(summary: dict, out: Path, chart: Path) -> Path:
    spec = summary["spec"]
    open_loop = summary.get("loop") == "open"
    generator = generator_label(summary)
    dropped = f" | {summary.get('dropped_iterations', 0)}" if open_loop else ""
    lines = [
        f"# Load run: {summary['name']}",
        "",
        *machine_lines(summary),
        *([f"- Target: {summary['target']} (a deployment the lab did not start: its public API only)"]
          if summary.get("target") else []),
        f"- Load ({generator}): {summary['offered']}, {summary['duration_s']} s, "
        + (f"read:write {spec['read_weight']}:{spec['write_weight']}, Zipf s={spec['zipf_s']}"
           if summary.get("generator") != "script" else
           ", ".join(f"{k}={v}" for k, v in (spec.get("options") or {}).items()) or "default options")
        + f", seed {spec['seed_count']}",
        "",
        "| offered | achieved req/s | p50 | p95 | p99 | failures |" + (" dropped |" if open_loop else "")
        + " load generator CPU (avg / max) |",
        "|---|---|---|---|---|---|" + ("---|" if open_loop else "") + "---|",
        f"| {summary['offered']} | {fmt(summary['achieved_rps'])} | {fmt(summary['p50_ms'], ' ms', 2)} | "
        f"{fmt(summary['p95_ms'], ' ms', 2)} | {fmt(summary['p99_ms'], ' ms', 2)} | {summary['failures']} of "
        f"{summary['requests']}{dropped} | {fmt(summary['generator_cpu_avg'], '%')} / {fmt(summary['generator_cpu_max'], '%')} |",
        "",
        "| endpoint | requests | failures | p50 | p99 | max |",
        "|---|---|---|---|---|---|",
        *[f"| `{name}` | {e.get('requests', 0)} | {e.get('failures', 0)} | {fmt(e.get('p50_ms'), ' ms', 2)} | "
          f"{fmt(e.get('p99_ms'), ' ms', 2)} | {fmt(e.get('max_ms'), ' ms', 1)} |"
          for name, e in summary["endpoints"].items()],
        "",
        *cost_lines(summary.get("cost_per_op")),
        *budget_lines(summary),
        *[f"- [{'x' if c['passed'] else ' '}] {c['description']}" + (f" ({c['detail']})" if c["detail"] else "")
          for c in summary.get("checks", [])],
        *[f"- skipped: {s['description']} ({s['reason']})" for s in summary.get("skipped", [])],
        "",
        f"![timeline]({chart.name})",
        "",
        summary["latency_note"],
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
