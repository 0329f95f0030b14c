import pytest

from services.lab.budgets.bottleneck import (
    ScalingPoint,
    Usage,
    machine_share,
    name,
    usage_over,
    usage_with_prefix,
    verdict,
)


def test_the_most_throttled_component_at_its_budget_is_named():
    usages = [Usage("postgres-0", 0.1, 0.098, 0.74), Usage("postgres-1", 0.1, 0.095, 0.81),
              Usage("shop-1", 0.5, 0.2, 0.0)]
    assert name(usages, 0.4) == ("bottleneck: postgres-1, at its budget (0.10 of 0.1 core), throttled 81% of "
                                 "periods; also at budget: postgres-0")


def test_a_busy_machine_outranks_every_budget():
    assert name([Usage("postgres-0", 0.1, 0.1, 0.9)], 0.93).startswith("bottleneck: the machine (93% of its cores")


def test_nothing_at_budget_says_the_limit_is_elsewhere():
    assert "none at its budget (the machine 35% busy)" in name([Usage("redis", 0.5, 0.1, 0.0)], 0.35)


def test_usage_and_machine_share_average_the_timeline_rows():
    rows = [{"machine_cpu": 40, "budget": {"redis": {"cores": 0.2, "throttled": 0.5}}},
            {"machine_cpu": 60, "budget": {"redis": {"cores": 0.4, "throttled": 0.7}}}, {"machine_cpu": None}]
    (redis,) = usage_over(rows, {"redis": 0.5, "kafka": 1.0})
    assert (redis.used_cores, redis.throttled_share) == (pytest.approx(0.3), pytest.approx(0.6))
    assert not redis.at_budget and machine_share(rows) == 0.5 and machine_share([]) is None


def test_usage_with_a_prefix_averages_only_the_components_so_named():
    rows = [{"budget": {"postgres-0": {"cores": 0.1, "throttled": 0.9},
                        "postgres-0-1": {"cores": 0.04, "throttled": 0.5},
                        "postgres-0-2": {"cores": 0.02, "throttled": 0.1},
                        "redis": {"cores": 0.3, "throttled": 0.0}}},
            {"budget": {"postgres-0": {"cores": 0.08, "throttled": 0.7},
                        "postgres-0-1": {"cores": 0.02, "throttled": 0.3}}},
            {}]
    budgets = {"postgres-0": 0.1, "postgres-0-1": 0.04, "postgres-0-2": 0.04, "redis": 0.5}
    replicas = usage_with_prefix(rows, budgets, "postgres-0-")
    assert [(u.component, u.budget_cores) for u in replicas] == [("postgres-0-1", 0.04), ("postgres-0-2", 0.04)]
    assert (replicas[0].used_cores, replicas[0].throttled_share) == (pytest.approx(0.03), pytest.approx(0.4))
    assert (replicas[1].used_cores, replicas[1].throttled_share) == (0.02, 0.1)  # one second read it
    servers = usage_with_prefix(rows, budgets, "postgres")
    assert [u.component for u in servers] == ["postgres-0", "postgres-0-1", "postgres-0-2"]
    assert servers[0] == usage_over(rows, {"postgres-0": 0.1})[0]
    assert usage_with_prefix(rows, budgets, "kafka") == [] and usage_with_prefix(rows, {}, "postgres") == []


def test_scaling_passes_only_when_the_scaled_part_is_the_bottleneck_and_the_machine_has_room():
    good = verdict([ScalingPoint(1, 332, True, 0.08), ScalingPoint(2, 640, True, 0.16), ScalingPoint(4, 1200, True, 0.3)])
    assert good["outcome"] == "pass" and [p["efficiency"] for p in good["points"]] == [1.0, 0.96, 0.9]
    busy = verdict([ScalingPoint(1, 1931, True, 0.6), ScalingPoint(2, 1737, True, 0.97)])
    assert busy["outcome"] == "inconclusive" and "machine was 97% busy" in busy["why"][0]
    slack = verdict([ScalingPoint(1, 100, True, 0.2), ScalingPoint(2, 150, False, 0.3)])
    assert slack["outcome"] == "inconclusive" and "not at its budget" in slack["why"][0]
    miss = verdict([ScalingPoint(1, 100, True, 0.2), ScalingPoint(2, 150, True, 0.3), ScalingPoint(4, 300, True, 0.95)])
    assert miss["outcome"] == "fail" and miss["points"][1]["efficiency"] == 0.75
