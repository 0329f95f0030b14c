"""`sdlab evidence` keeps what a reader needs (report, charts, summary) and no raw output."""

from __future__ import annotations

import json

import pytest

from services.lab.errors import LabCommandError
from services.lab.report.evidence import copy_evidence


def test_an_experiment_run_is_copied_without_raw_output(tmp_path):
    run = tmp_path / "20261124-120000-experiment-demo.capacity"
    (run / "250-req-s").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"experiment": "demo.capacity"}))
    for name in ("report.md", "capacity.png", "locust_stats.csv", "acks.jsonl"):
        (run / name).write_text("x")
    (run / "250-req-s" / "k6-report.html").write_text("x")
    target = copy_evidence(run, root=tmp_path / "evidence")
    assert target == tmp_path / "evidence" / "demo" / "capacity"
    assert sorted(p.name for p in target.iterdir()) == ["SOURCE", "capacity.png", "report.md", "summary.json"]
    (run / "capacity.png").unlink()
    copy_evidence(run, root=tmp_path / "evidence")  # a newer run replaces the old one whole
    assert not (target / "capacity.png").exists()


def test_a_bench_run_a_load_run_and_a_non_run(tmp_path):
    bench = tmp_path / "20261124-120000-bench-demo"
    bench.mkdir()
    (bench / "summary.json").write_text(json.dumps({"figures": []}))
    assert copy_evidence(bench, root=tmp_path / "e").name == "bench"
    load = tmp_path / "20261124-120000-open-300"
    load.mkdir()
    (load / "summary.json").write_text(json.dumps({"name": "open-300", "spec": {"design": "demo"}}))
    (load / "wrk-c2.txt").write_text("Requests/sec: 1")
    assert sorted(p.name for p in copy_evidence(load, root=tmp_path / "e").iterdir()) == [
        "SOURCE", "summary.json", "wrk-c2.txt"]
    with pytest.raises(LabCommandError, match="not a finished run"):
        copy_evidence(tmp_path, root=tmp_path / "e")
