"""Memory budgets where a user sees them: `sdlab status` (table and --json), `sdlab top`, a run's report."""

import json
import time

from rich.console import Console

from services.lab import top, ui
from services.lab.report.charts import budget_lines
from services.lab.state import ComponentStatus, LabState

MiB = 2**20


def rows() -> list[ComponentStatus]:
    return [ComponentStatus("shortener-1", "app", None, "a", "down", "killed by the kernel at its memory budget",
                            memory_budget_bytes=256 * MiB, oom_kills=1),
            ComponentStatus("shortener-2", "app", 12, "b", "ready", "200", memory_budget_bytes=256 * MiB, oom_kills=0),
            ComponentStatus("caddy", "caddy", 13, "c", "ready", "200")]


def test_status_json_carries_the_memory_budget_beside_the_cpu_budget(capsys):
    ui.print_status(rows(), {"shortener": 8080}, True, "127.0.0.1")
    components = {c["name"]: c for c in json.loads(capsys.readouterr().out)["components"]}
    assert components["shortener-2"]["memory_budget_bytes"] == 256 * MiB and "budget_cores" in components["shortener-2"]
    assert components["shortener-1"]["oom_kills"] == 1
    assert components["caddy"]["memory_budget_bytes"] is None and components["caddy"]["oom_kills"] is None


def test_status_table_has_a_memory_budget_column_only_when_one_is_set(monkeypatch):
    console = Console(record=True, width=250)
    monkeypatch.setattr(ui, "console", console)
    ui.print_status(rows(), {}, False, "127.0.0.1")
    text = console.export_text()
    assert "memory budget" in text and "CPU budget" not in text
    assert "256 MiB, 1 OOM kill(s)" in next(line for line in text.splitlines() if "shortener-1" in line)
    ui.print_status([ComponentStatus("caddy", "caddy", 13, "c", "ready", "200")], {}, False, "127.0.0.1")
    assert "memory budget" not in console.export_text()


class _Usage:
    def sample(self, state):
        return {"shortener-2": (12.0, 64.0), "caddy": (3.0, 30.0)}


class _Backend:
    def __init__(self, tmp_path):
        self.state = LabState(home=tmp_path, marker="m", designs=[])

    def status(self):
        return self.state, rows()


def test_top_shows_rss_against_the_memory_budget(tmp_path):
    f, _, _ = top.frame(_Backend(tmp_path), _Usage(), {}, time.monotonic())
    console = Console(record=True, width=250)
    console.print(top.render(f))
    text = console.export_text()
    assert "RSS % of memory budget" in text
    assert "25 of 256 MiB" in next(line for line in text.splitlines() if "shortener-2" in line)  # 64 of 256 MiB
    assert "- of 256 MiB, 1 OOM kill(s)" in next(line for line in text.splitlines() if "shortener-1" in line)
    frame = top.as_dict(f)["components"]
    assert frame[1]["memory_budget_bytes"] == 256 * MiB and frame[2]["memory_budget_bytes"] is None


def test_a_runs_report_says_the_memory_budgets_and_any_oom_kills():
    lines = budget_lines({"budgets": {"shortener-1": 0.2}, "memory_budgets": {"shortener-1": 256 * MiB},
                          "oom_kills": {"shortener-1": 2}, "bottleneck": "bottleneck: shortener-1, at its budget"})
    assert lines == ["- CPU budgets: shortener-1 0.2", "- memory budgets: shortener-1 256 MiB",
                     "- processes OOM-killed at a memory budget: shortener-1 2",
                     "- bottleneck: shortener-1, at its budget", ""]
    assert budget_lines({"budgets": {}, "memory_budgets": {}}) == []
