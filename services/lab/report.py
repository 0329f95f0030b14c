"""Charts (PNG) and ``report.md`` for load runs and experiments."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def _shade(ax, fault_windows: list[dict], end: float, label: bool) -> None:
    for w in fault_windows:
        stop = w["end_s"] if w.get("end_s") is not None else end
        ax.axvspan(w["start_s"], stop, color="#f4a582" if w["kind"] == "kill" else "#b2abd2", alpha=0.35, lw=0)
        if label:
            ax.text(w["start_s"], ax.get_ylim()[1] * 0.92, f" {w['kind']} {w['component']}", fontsize=8, va="top")


def timeline_chart(series: dict[str, list[dict]], path: Path, title: str,
                   fault_windows: dict[str, list[dict]] | None = None) -> Path:
    """Throughput, p50/p99 and error rate over time; one line per variant; fault windows shaded."""
    fig, (ax_rps, ax_lat, ax_err) = plt.subplots(3, 1, figsize=(10, 8.5), sharex=True)
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
    ax_lat.set_yscale("log")
    ax_err.set_ylabel("errors (%)")
    ax_err.set_xlabel("seconds since load start")
    ax_rps.legend(loc="lower right", fontsize=8)
    ax_lat.legend(loc="upper right", fontsize=7, ncol=2)
    for ax in (ax_rps, ax_lat, ax_err):
        ax.grid(alpha=0.3)
    ax_rps.set_ylim(bottom=0)
    ax_err.set_ylim(0, max(1.0, ax_err.get_ylim()[1]))  # an all-zero error line sits on a readable 0-1% axis
    for windows in (fault_windows or {}).values():
        for ax in (ax_rps, ax_lat, ax_err):
            _shade(ax, windows, end, label=ax is ax_rps)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bar_chart(values: dict[str, float], path: Path, title: str, ylabel: str) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    names = list(values)
    bars = ax.bar(names, [values[n] for n in names], color=COLORS[: len(names)])
    for bar, name in zip(bars, names):
        ax.annotate(f"{values[name]:,.1f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=9)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fmt(value, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value:,}{unit}"


def machine_lines(summary: dict) -> list[str]:
    m = summary["machine"]
    return [
        f"- Machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, Python {m['python']}",
        f"- Commit: `{m['commit']}`",
        f"- Command: `{summary['command']}`",
    ]


def load_report(summary: dict, out: Path, chart: Path) -> Path:
    lines = [
        f"# Load run: {summary['name']}",
        "",
        *machine_lines(summary),
        f"- Load: {summary['offered']}, {summary['duration_s']} s, read:write "
        f"{summary['spec']['read_weight']}:{summary['spec']['write_weight']}, Zipf s={summary['spec']['zipf_s']}",
        "",
        "| offered | achieved req/s | p50 | p95 | p99 | failures | load generator CPU (avg / max) |",
        "|---|---|---|---|---|---|---|",
        f"| {summary['offered']} | {fmt(summary['achieved_rps'])} | {fmt(summary['p50_ms'], ' ms')} | "
        f"{fmt(summary['p95_ms'], ' ms')} | {fmt(summary['p99_ms'], ' ms')} | {summary['failures']} of "
        f"{summary['requests']} | {fmt(summary['generator_cpu_avg'], '%')} / {fmt(summary['generator_cpu_max'], '%')} |",
        "",
        f"![timeline]({chart.name})",
        "",
        "Locust is closed-loop: when the server slows down, it offers less load (coordinated",
        "omission), so compare offered and achieved rates, and distrust latencies when the load",
        "generator's CPU is near 100%.",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
