"""`sdlab estimate` from a real benchmark: a short `sdlab bench shortener` in a lab of its own, then the
fleet plan read from its folder, with the run named and its arithmetic redone here."""

from __future__ import annotations

import json
import re

import pytest

from tests.support.lab import Lab


def _ms(cost: dict, pattern: str) -> float:
    return sum(v for name, v in cost["core_ms"].items() if re.fullmatch(pattern, name) and v is not None)


def test_an_estimate_from_a_real_bench_run(tmp_path):
    results = tmp_path / "results"
    lab = Lab.create(tmp_path / "lab", port_start=24000, SDLAB_RESULTS=str(results))
    try:
        lab.run("bench", "shortener", "--duration", "3", timeout=600)
    finally:
        lab.run("down", check=False)
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    summary = json.loads((run / "summary.json").read_text())
    links = summary["tables"]["links"]  # measured after the creates: rows and pg_total_relation_size
    assert links["rows"] >= 100 and links["bytes"] > 8192 and links["bytes_per_row"] > 0

    plan = json.loads(lab.run("estimate", "shortener", "--rate", "2000", "--read-write", "9:1", "--json").stdout)
    (source,) = plan["runs"]
    assert source["path"] == str(run) and source["ops"] == ["create", "redirect"]
    assert source["commit"] == summary["machine"]["commit"] and source["command"].startswith("sdlab bench shortener")
    lines = {c["component"]: c for c in plan["components"]}
    api = lines["API instances"]
    # Whiteboard check: 1,800 redirects/s and 200 creates/s at peak factor 3 → × 3.
    expected = (5400 * _ms(summary["redirect_cost"], r"shortener-\d+")
                + 600 * _ms(summary["create_cost"], r"shortener-\d+")) / 1000
    assert api["cores"] == pytest.approx(expected, rel=1e-3) and api["measured"]
    assert api["count"] == max(1, -(-round(expected / 0.6, 6) // 1))
    storage = lines["PostgreSQL storage (links)"]
    assert storage["measured"] and f"{links['bytes'] / links['rows']:,.0f} B" in storage["arithmetic"]
    assert not any("Bytes per link row" in a for a in plan["not_measured"])

    text = lab.run("estimate", "shortener", "--rate", "2000", "--from", str(run)).stdout
    assert "## Fleet for shortener" in text and str(run) in text and "÷ 1000 =" in text and "Headroom at peak" in text
