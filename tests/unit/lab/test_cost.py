"""The cost per operation: the background subtracted at its own rate, restarts, the report's table."""

from services.lab.measure.cost import Reading, cost_lines, cost_per_op, idle_rates


def reading(at, cpu, statements=None, pids=None):
    return Reading(at, cpu, statements=statements or {}, pids=pids or {n: 1 for n in cpu})


def test_background_is_subtracted_at_its_rate_over_the_run():
    # Idle: the app burns 0.01 core and the server runs 10 statements/s.
    idle = [reading(0, {"app": 0.00, "pg": 0.0}, {"pg": 0}), reading(1, {"app": 0.01, "pg": 0.0}, {"pg": 10}),
            reading(2, {"app": 0.02, "pg": 0.0}, {"pg": 20})]
    # 10 s of load, 100 operations: the app used 1.1 s of CPU, the server ran 700 statements.
    run = (reading(10, {"app": 1.0, "pg": 2.0}, {"pg": 100}), reading(20, {"app": 2.1, "pg": 2.5}, {"pg": 800}))
    cost = cost_per_op(idle, run, "checkout", 100)
    assert cost["core_ms"]["app"] == (1.1 - 0.1) * 1000 / 100  # 10 ms each
    assert cost["core_ms"]["pg"] == 5.0
    assert cost["pg_statements"] == (700 - 100) / 100  # 6 each
    assert cost["core_ms_total"] == 15.0
    assert cost["idle"]["pg_statements_per_s"] == 10.0


def test_the_background_is_the_median_slice_so_a_seeding_aftermath_is_not_subtracted():
    idle = [reading(0, {"pg": 0.0}), reading(1, {"pg": 0.5}), reading(2, {"pg": 0.51}), reading(3, {"pg": 0.52})]
    cpu, _, span = idle_rates(idle)
    assert round(cpu["pg"], 3) == 0.01 and span == 3


def test_a_component_restarted_during_the_run_counts_from_its_new_start():
    idle = [reading(0, {"app": 0.0}), reading(1, {"app": 0.0})]
    run = (reading(10, {"app": 50.0}, pids={"app": 1}), reading(20, {"app": 0.3}, pids={"app": 2}))
    assert cost_per_op(idle, run, "request", 100)["core_ms"]["app"] == 3.0


def test_no_operation_completed_divides_nothing():
    idle = [reading(0, {"app": 0.0}), reading(1, {"app": 0.0})]
    cost = cost_per_op(idle, (reading(2, {"app": 0.0}), reading(3, {"app": 1.0})), "message", 0)
    assert cost["core_ms_total"] is None and cost["core_ms"]["app"] is None
    assert "no operation completed" in cost_lines(cost)[0]


def test_the_report_table_lists_components_busiest_first_with_totals():
    idle = [reading(0, {"a": 0.0, "b": 0.0}, {"b": 0}), reading(1, {"a": 0.0, "b": 0.0}, {"b": 0})]
    run = (reading(2, {"a": 0.0, "b": 0.0}, {"b": 0}), reading(3, {"a": 0.1, "b": 0.3}, {"b": 40}))
    lines = cost_lines(cost_per_op(idle, run, "redirect", 10, {"postgres-9": "unreachable"}))
    rows = [line for line in lines if line.startswith("| ")]
    assert rows[1].startswith("| b | 30.00 | 4.00") and rows[2].startswith("| a | 10.00")
    assert rows[-1] == "| **total** | **40.00** | **4.00** |"
    assert any("postgres-9 (unreachable)" in line for line in lines)
