"""The scaling experiment's judgement, on made-up runs: it passes only where the result counts."""

from services.lab.budgets.bottleneck import Usage
from services.lab.experiments.experiment import VariantResult
from services.lab.experiments.scaling import (
    Scaling,
    scaled_is_bottleneck,
    scaling_experiment,
)
from services.lab.measure.load import LoadResult, LoadSpec


def run(variant, rps: float, used: float, machine: float, n: int, budget: float = 0.1) -> VariantResult:
    budgets = {f"app-{i + 1}": budget for i in range(n)}
    timeline = [{"t": t, "machine_cpu": machine,
                 "budget": {name: {"cores": used, "throttled": 0.8 if used >= 0.09 else 0.0} for name in budgets}}
                for t in range(5)]
    summary = {"achieved_rps": rps, "budgets": budgets, "bottleneck": "bottleneck: app-1, at its budget"}
    return VariantResult(variant, LoadResult(None, summary, timeline))


def experiment(lifted=None):
    return scaling_experiment(name="toy.scale-out", title="t", question="q", load=LoadSpec(design="toy"),
                              what="instances",
                              scaling=Scaling(component="app", budget=0.1, size=lambda n: {"instances": n},
                                              budgets={"postgres": 0.5}, lifted=lifted))


def test_variants_carry_the_budgets_and_the_topology():
    exp = experiment(lifted=0.5)
    assert [(v.name, v.instances, v.budgets) for v in exp.variants] == [
        ("1 instance", 1, {"postgres": 0.5, "app": 0.1}), ("2 instances", 2, {"postgres": 0.5, "app": 0.1}),
        ("4 instances", 4, {"postgres": 0.5, "app": 0.1}), ("4 instances, budget lifted", 4, {"postgres": 0.5, "app": 0.5})]


def test_scaling_with_the_part_at_its_budget_and_room_on_the_machine_passes(tmp_path):
    exp = experiment(lifted=0.5)
    v = exp.variants
    results = {v[0].name: run(v[0], 300, 0.098, 10, 1), v[1].name: run(v[1], 590, 0.097, 20, 2),
               v[2].name: run(v[2], 1150, 0.095, 40, 4), v[3].name: run(v[3], 1500, 0.3, 60, 4, budget=0.5)}
    outcome = exp.evaluate(results)
    assert outcome.passed, outcome.checks
    scaling = outcome.record["scaling"]
    assert scaling["efficiency"] == {"2": 0.98, "4": 0.96} and scaling["outcome"] == "pass"
    assert [p["n"] for p in scaling["points"]] == [1, 2, 4], "the lifted variant is not a point of the curve"
    assert scaling["points"][2]["bottleneck_throttled_pct"] == 80.0 and scaling["points"][2]["machine_cpu_pct"] == 40.0
    assert "1,500 req/s" in outcome.facts["budget lifted"]
    # Read from its timeline over the scaling's window, as the points are (not the run's summary line).
    assert "none at its budget (the machine 60% busy)" in outcome.facts["budget lifted"]
    (chart,) = exp.charts(tmp_path, results)
    assert chart.exists() and chart.stat().st_size > 10_000


def test_a_machine_that_ran_out_is_inconclusive_and_fails_the_experiment():
    exp = experiment()
    v = exp.variants
    outcome = exp.evaluate({v[0].name: run(v[0], 300, 0.098, 50, 1), v[1].name: run(v[1], 600, 0.098, 70, 2),
                            v[2].name: run(v[2], 700, 0.06, 95, 4)})
    assert not outcome.passed and outcome.record["scaling"]["outcome"] == "inconclusive"
    assert "machine was 95% busy" in outcome.checks[0].detail and "inconclusive" in outcome.claim


def test_skewed_copies_still_count_when_the_hottest_is_one_of_them_and_together_they_are_near_their_budgets():
    hot, warm, cool = Usage("pg-1", 0.05, 0.05, 1.0), Usage("pg-2", 0.05, 0.038, 0.5), Usage("pg-3", 0.05, 0.01, 0.0)
    assert scaled_is_bottleneck([hot, warm], hot)
    assert not scaled_is_bottleneck([hot, cool], hot), "together under 80% of their budgets"
    other = Usage("redis", 0.1, 0.1, 1.0)
    assert not scaled_is_bottleneck([hot, warm], other), "something else is the most throttled"


def test_the_verdict_reads_only_the_window_the_design_names():
    """A design whose load has a phase that is not its operations (users connecting) names the
    seconds that count: idle seconds would read a saturated part as below its budget."""
    idle = {"t": 0, "machine_cpu": 5, "budget": {"app-1": {"cores": 0.0, "throttled": 0.0}}}

    def runs(exp):
        v = exp.variants[0]
        result = run(v, 300, 0.098, 10, 1)
        result.load.timeline[:0] = [dict(idle, t=-i) for i in range(1, 6)]  # five idle seconds first
        return {v.name: result}

    def points(window):
        exp = scaling_experiment(name="toy.scale-out", title="t", question="q", load=LoadSpec(design="toy"),
                                 what="instances", scaling=Scaling(component="app", budget=0.1, counts=(1,),
                                                                   size=lambda n: {"instances": n}, window=window))
        results = runs(exp)
        point = exp.evaluate(results).record["scaling"]["points"][0]
        column, line = exp.columns[-1]
        assert column == "bottleneck" and line(*results.values()) == point["bottleneck"]  # the report's column agrees
        return point

    everything = points(lambda rows: rows)
    assert not everything["scaled_at_budget"] and "none at its budget" in everything["bottleneck"]
    busy = points(lambda rows: [r for r in rows if r["t"] >= 0])
    assert busy["scaled_at_budget"] and busy["bottleneck"].startswith("bottleneck: app-1, at its budget")
    assert busy["machine_cpu_pct"] == 10.0
