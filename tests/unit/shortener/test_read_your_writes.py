"""shortener.read-your-writes: what the read-backs logged becomes the stale share and the checks."""

from __future__ import annotations

import json
from pathlib import Path

from loadtests.shortener.read_your_writes import (
    MODES,
    READ_BACK,
    READ_YOUR_WRITES,
    _after_load,
    evaluate,
)
from services.lab.contract import LoadResult
from services.lab.experiments.experiment import Variant, VariantResult


def _log(tmp_path: Path, name: str, statuses: list[int], token: bool) -> LoadResult:
    out = tmp_path / name.replace(" ", "-").replace(",", "")
    out.mkdir(parents=True)
    lines = [{"event": "acknowledged", "code": f"c{i}"} for i in range(len(statuses))]
    lines += [{"event": "read_after_create", "status": s, "token": token, "ms": 3.0} for s in statuses]
    (out / "acks.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    server = {"db_routed_reads_total{reason=stale_ok,served_by=replica}": 90.0,
              "db_routed_reads_total{reason=replica_behind,served_by=primary}": 10.0}
    summary = {"endpoints": {READ_BACK: {"p50_ms": 2.0, "p99_ms": 9.0}}, "server": server}
    return LoadResult(out, summary)


def _results(tmp_path: Path, token_statuses: list[int]) -> dict[str, VariantResult]:
    statuses = {"replica, no token": [200] * 95 + [404] * 5, "replica, LSN token": token_statuses,
                "primary": [200] * 100}
    results = {}
    for name in MODES:
        load = _log(tmp_path, name, statuses[name], token=name != "primary")
        results[name] = VariantResult(Variant(name), load, _after_load(None, None, load))
    return results


def test_the_stale_share_is_counted_and_the_token_and_primary_see_every_write(tmp_path):
    outcome = evaluate(_results(tmp_path, [200] * 100))
    assert outcome.passed, [c for c in outcome.checks if not c.passed]
    assert "5.00% of reads were stale (5 of 100 answered 404, 0 timed out)" in outcome.claim
    assert outcome.record["read_back"]["replica, no token"]["stale"] == 5


def test_a_stale_read_with_the_token_fails_the_experiment(tmp_path):
    outcome = evaluate(_results(tmp_path, [200] * 99 + [404]))
    failed = [c.description for c in outcome.checks if not c.passed]
    assert failed == ["with the LSN token: 0 stale reads"]


def test_a_500_read_back_is_a_failure_not_a_stale_read(tmp_path):
    outcome = evaluate(_results(tmp_path, [200] * 99 + [500]))
    assert [c.description for c in outcome.checks if not c.passed] == [
        "no read failed (a 404 counts as stale, a 503 as timed out, anything else as failed)"]


def test_a_few_reads_timed_out_on_a_slow_replica_are_counted_and_more_fail(tmp_path):
    few = evaluate(_results(tmp_path / "few", [200] * 995 + [503] * 5))
    assert few.passed and few.record["read_back"]["replica, LSN token"]["timed_out"] == 5
    many = evaluate(_results(tmp_path / "many", [200] * 994 + [503] * 6))
    assert [c.description for c in many.checks if not c.passed] == ["reads timed out (503) below 0.5% in every variant"]


def test_the_variants_share_one_stack_with_one_small_replica():
    variants = READ_YOUR_WRITES.variants
    assert [v.load["options"]["read_after_create"] for v in variants] == ["stale", "token", "primary"]
    assert all(v.replicas == 1 and v.budgets == {"postgres-0-1": 0.05} for v in variants)
    assert [v.same_stack for v in variants] == [False, True, True]
