"""The capacity experiment's search and verdicts, on made-up step summaries."""

from __future__ import annotations

from pathlib import Path

from services.lab.capacity import capacity_experiment, miss_reason
from services.lab.experiment import Variant, VariantResult
from services.lab.load import LoadResult, LoadSpec


def _summary(rate: float, p99: float, achieved: float | None = None, failures: int = 0, dropped: int = 0) -> dict:
    requests = int(rate * 10)
    return {"offered_rps": rate, "achieved_rps": achieved if achieved is not None else rate, "requests": requests,
            "failures": failures, "p50_ms": p99 / 5, "p99_ms": p99, "dropped_iterations": dropped,
            "spec": {"duration_s": 10}}


def _result(summary: dict) -> VariantResult:
    return VariantResult(Variant(f"{summary['offered_rps']:.0f} req-s"), LoadResult(Path("."), summary))


def test_miss_reasons():
    assert miss_reason(_summary(100, 10), 50, 0.001) is None
    assert "p99 80 ms" in miss_reason(_summary(100, 80), 50, 0.001)
    assert "errors" in miss_reason(_summary(100, 10, failures=5), 50, 0.001)
    assert "achieved 50 of 100" in miss_reason(_summary(100, 10, achieved=50), 50, 0.001)
    assert "dropped" in miss_reason(_summary(100, 10, dropped=50), 50, 0.001)


def test_steps_rise_until_two_miss_and_the_knee_is_the_last_step_that_met():
    exp = capacity_experiment(design="d", load=LoadSpec(design="d"), question="?", rates=(100, 200, 400, 800, 1600))
    assert exp.name == "d.capacity" and exp.load.generator == "k6"
    results = {}
    for rate, p99 in ((100, 5), (200, 8), (400, 30), (800, 120)):
        results[str(rate)] = _result(_summary(rate, p99))
        nxt = exp.more(results)
        assert nxt is not None and nxt.same_stack and nxt.load["rate"] == {100: 200, 200: 400, 400: 800, 800: 1600}[rate]
    results["1600"] = _result(_summary(1600, 900, achieved=1000))
    assert exp.more(results) is None
    outcome = exp.evaluate(results)
    assert outcome.passed
    assert outcome.facts["knee (req/s)"] == 400
    assert "knee is 400 req/s" in outcome.claim and "At 800 req/s it saturated" in outcome.claim


def test_no_knee_fails_the_experiment():
    exp = capacity_experiment(design="d", load=LoadSpec(design="d"), question="?", rates=(100, 200))
    results = {"100": _result(_summary(100, 500)), "200": _result(_summary(200, 900))}
    assert exp.more(results) is None
    assert not exp.evaluate(results).passed
