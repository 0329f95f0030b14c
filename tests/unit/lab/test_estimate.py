"""``sdlab estimate``'s engine: the workload's parsing and refusals, the arithmetic of each line, which
runs it reads, and what it prints; fed with small summaries (no stack)."""

from __future__ import annotations

import json

import pytest

from services.lab.errors import LabCommandError
from services.lab.estimate import fleet as est
from services.lab.estimate.fleet import Measured, Term
from services.lab.estimate.report import Plan, as_json, markdown
from services.lab.estimate.runs import measured


def work(**changes) -> est.Workload:
    given = dict(rate=1000.0, daily_users=None, actions_per_user=10, read_write=(9, 1), peak_factor=2,
                 payload_bytes=100, retention_years=1, utilisation=0.5)
    return est.workload(**{**given, **changes})


def table(op: str, core_ms: dict, statements: float = 1.0, ops: int = 100) -> dict:
    return {"op": op, "ops": ops, "core_ms": core_ms, "pg_statements": statements}


class TwoOps(est.EstimateModel):
    read_op, write_op, measure_hint = "get", "put", "sdlab bench demo"

    def plan(self, work, measured):
        rates = {"get": work.peak("read"), "put": work.peak("write")}
        return [est.cores_line("app", est.terms(measured, rates, r"app-\d+"), work.utilisation)], ["a rule"]


def test_the_rate_splits_by_weight_and_peaks():
    w = work()
    assert w.peak_rate == 2000 and w.peak("read") == 1800 and w.peak("write") == 200 and w.average("write") == 100


def test_daily_users_make_the_rate():
    w = work(rate=None, daily_users=8_640_000, actions_per_user=5)
    assert w.rate == 500 and w.daily_users == 8_640_000 and "daily users" in w.source


@pytest.mark.parametrize("changes, words", [
    ({"rate": 0}, "--rate must be a positive"),
    ({"rate": -3}, "--rate must be a positive"),
    ({"rate": None}, "give the load one way"),
    ({"daily_users": 10}, "give the load one way"),
    ({"rate": None, "daily_users": 10, "actions_per_user": 0}, "must be positive"),
    ({"peak_factor": 0.5}, "--peak-factor"),
    ({"utilisation": 1.5}, "--utilisation"),
    ({"utilisation": 0}, "--utilisation"),
    ({"retention_years": 0}, "--retention"),
    ({"payload_bytes": 0}, "--payload-bytes"),
])
def test_bad_workloads_get_one_line_naming_the_fix(changes, words):
    with pytest.raises(LabCommandError, match=words):
        work(**changes)


def test_a_cores_line_is_rate_times_cost_over_the_budget():
    line = est.cores_line("app", [Term("get", 1800, 0.5), Term("put", 200, 2.0)], 0.5)
    # (1800 × 0.5 + 200 × 2.0) ÷ 1000 = 1.3 cores; ÷ 0.5 = 2.6 → 3
    assert line.cores == pytest.approx(1.3) and line.count == 3 and line.measured
    assert "1,800 get/s × 0.500 core-ms + 200 put/s × 2.000 core-ms" in line.arithmetic
    assert "= 1.30 cores" in line.arithmetic and "= 2.60 → 3" in line.arithmetic
    assert line.headroom == pytest.approx(1 - 1.3 / 3)


def test_an_exact_fit_is_not_rounded_up_and_a_tiny_load_still_counts_one():
    assert est.cores_line("app", [Term("get", 1000, 0.3)], 0.6).count == 1  # 0.3 ÷ 0.6 = 0.5 → 1 (at least 1)
    assert est.cores_line("app", [Term("get", 3000, 0.2)], 0.6).count == 1  # 0.6 ÷ 0.6 = 1.0 exactly
    assert est.cores_line("replicas", [Term("get", 10, 0.0)], 0.6, minimum=0).count == 0


def test_an_unmeasured_operation_is_named_and_left_out():
    line = est.cores_line("app", [Term("get", 1800, None), Term("put", 200, 2.0)], 0.5)
    assert line.cores == pytest.approx(0.4) and not line.measured and "get not measured, left out" in line.arithmetic


def test_copies_of_a_component_add_up_and_others_do_not_match():
    t = table("get", {"app-1": 0.25, "app-2": 0.5, "app-worker-1": 9.0, "postgres-0": 0.1})
    assert est.matching_ms(t, r"app-\d+") == 0.75
    assert est.matching_ms(t, "redis") is None


def test_storage_is_average_writes_times_a_year_times_bytes_per_row():
    line = est.storage_line("db", 100, 500, 2, measured=False)
    per_year = 100 * 86_400 * 365 * 500  # 1.58e12 B = 1.4 TiB
    assert line.unit == "TiB" and line.count == round(per_year * 2 / 2**40, 1) and not line.measured
    assert "100 rows/s × 86,400 × 365 × 500 B" in line.arithmetic


def test_bytes_per_write_come_from_the_kept_tables_over_the_counted_rows():
    facts = {"tables": {"orders": {"rows": 1000, "bytes": 200_000}, "order_items": {"rows": 2000, "bytes": 300_000}}}
    found = est.bytes_per_write(facts, ("orders", "order_items"), "orders")
    assert found is not None and found[0] == 500 and "÷ 1,000 orders rows" in found[1]
    assert est.bytes_per_write({}, ("orders",), "orders") is None
    assert est.bytes_per_write(facts, ("orders", "payments"), "orders") is None


def test_statements_per_second_are_rate_times_statements_per_op():
    measured_ = Measured({"put": table("put", {}, statements=2.5)}, {}, [])
    line = est.statements_line("pg", est.statement_terms(measured_, {"get": 1800, "put": 200}))
    assert line.count == 500 and "get not measured" in line.arithmetic


def test_the_line_builder_prices_the_shared_parts_from_their_components():
    measured_ = Measured({"put": table("put", {"caddy": 1.0, "kafka": 2.0, "redis": 0.5, "postgres-0": 1.5,
                                               "postgres-1": 0.5, "app-1": 3.0})}, {}, [])
    build = est.LineBuilder(work(), measured_)  # 200 puts/s at peak, 0.5 of a core a process
    brokers = build.brokers({"put": 200})
    assert (brokers.component, brokers.unit, brokers.count, brokers.cores) == ("Kafka brokers", "brokers", 1, 0.4)
    assert build.balancer({"put": 200}).cores == 0.2 and build.redis({"put": 200}).unit == "servers"
    shards = build.cpu("db", {"put": 200}, est.POSTGRES, "servers")
    assert shards.cores == 0.4 and shards.count == 1 and shards.unit == "servers"
    assert build.statements({"put": 200}).count == 200
    consumers = build.cpu("app", {"put": 200}, r"app-\d+")  # 0.6 cores ÷ 0.5 = 1.2 → 2
    partitions = est.LineBuilder.partitions("events", consumers, "consumer", brokers)
    assert partitions.count == 2 and not partitions.measured and partitions.component == "Kafka partitions (events)"
    assert partitions.arithmetic == "one per consumer (2), at least one per broker (1)"


def test_the_line_builder_stores_measured_bytes_per_write_or_the_payload_and_an_overhead():
    tables = {"tables": {"orders": {"rows": 1000, "bytes": 400_000}, "items": {"rows": 3000, "bytes": 600_000}}}
    measured_ = est.LineBuilder(work(), Measured({}, tables, [])).storage("db", ("orders", "items"), "orders", 50,
                                                                          "orders")
    assert measured_.measured and measured_.arithmetic.startswith("(orders 390.6 KiB + items 585.9 KiB) ÷ 1,000")
    assert "100 orders/s × 86,400 × 365 × 1,000 B" in measured_.arithmetic
    assumed = est.LineBuilder(work(), Measured({}, {}, [])).storage("db", ("orders",), "orders", 50, "orders")
    assert not assumed.measured and assumed.arithmetic.startswith("100 orders/s × 86,400 × 365 × 150 B")

def _run(root, name: str, summary: dict):
    folder = root / name
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def _load(op: str, ms: float, commit: str = "abc") -> dict:
    return {"spec": {"design": "demo"}, "command": "sdlab load demo", "machine": {"commit": commit, "cores": 2},
            "cost_per_op": table(op, {"app-1": ms})}


def test_the_newest_run_of_each_operation_is_read(tmp_path):
    _run(tmp_path, "20260101-000000-demo-load", _load("get", 1.0, "old"))
    _run(tmp_path, "20260102-000000-demo-load", _load("put", 2.0, "mid"))
    _run(tmp_path, "20260103-000000-demo-load", _load("get", 3.0, "new"))
    _run(tmp_path, "20260104-000000-other-load", {**_load("get", 9.0), "spec": {"design": "other"}})
    found = measured(TwoOps(), "demo", tmp_path)
    assert found.costs["get"]["core_ms"] == {"app-1": 3.0} and found.costs["put"]["core_ms"] == {"app-1": 2.0}
    assert [s["commit"] for s in found.sources] == ["new", "mid"]
    assert found.sources[0]["path"].endswith("20260103-000000-demo-load") and found.sources[0]["ops"] == ["get"]


def test_no_measured_run_is_refused_in_one_line(tmp_path):
    _run(tmp_path, "20260101-000000-demo-load", {**_load("get", 1.0), "cost_per_op": table("other", {})})
    with pytest.raises(LabCommandError, match=r"no measured cost of get or put for demo .*sdlab bench demo"):
        measured(TwoOps(), "demo", tmp_path)
    with pytest.raises(LabCommandError, match="no measured cost"):
        measured(TwoOps(), "demo", tmp_path / "missing")


def test_a_given_run_must_be_of_the_design(tmp_path):
    other = _run(tmp_path, "x", {**_load("get", 1.0), "spec": {"design": "other"}})
    with pytest.raises(LabCommandError, match="is not a run of demo"):
        measured(TwoOps(), "demo", tmp_path, [other])
    mine = _run(tmp_path, "y", _load("put", 1.0))
    assert measured(TwoOps(), "demo", tmp_path, [mine]).costs.keys() == {"put"}


def _plan(tmp_path) -> Plan:
    _run(tmp_path, "20260101-000000-demo-load", _load("get", 0.5))
    _run(tmp_path, "20260102-000000-demo-load", _load("put", 2.0))
    model, w = TwoOps(), work()
    found = measured(model, "demo", tmp_path)
    lines, assumptions = model.plan(w, found)
    return Plan("demo", w, found, lines, assumptions, model.read_op, model.write_op, {})


def test_the_markdown_shows_the_runs_the_arithmetic_and_the_assumptions(tmp_path):
    text = markdown(_plan(tmp_path))
    assert "**2,000/s**: 1,800 get/s + 200 put/s (read:write 9:1)" in text
    assert "20260102-000000-demo-load`: put (commit abc" in text
    assert "| app | 3 processes | (1,800 get/s × 0.500 core-ms + 200 put/s × 2.000 core-ms) ÷ 1000 = 1.30 cores" in text
    assert "Headroom at peak: 1.30 cores of work on 3 counted cores: 57% left" in text
    assert "- a rule" in text and "one-core processes" in text


def test_the_json_carries_counts_and_what_is_not_measured(tmp_path):
    found = as_json(_plan(tmp_path))
    assert found["components"][0]["count"] == 3 and found["cores_counted"] == 3
    assert found["workload"]["writes_per_s_at_peak"] == 200 and "a rule" in found["not_measured"]
    json.dumps(found)  # all of it serialisable


def _variant(name: str, ops: int, ms: float) -> dict:
    return {**_load("get", ms), "name": name, "cost_per_op": {**table("get", {"app-1": ms}), "ops": ops}}


def test_an_experiment_gives_each_operation_from_its_busiest_variant(tmp_path):
    _run(tmp_path, "20260101-000000-experiment-demo.capacity",
         {"experiment": "demo.capacity", "command": "sdlab experiment demo.capacity", "machine": {"commit": "x"},
          "variants": {"50 req-s": _variant("50 req-s", 500, 1.0), "100 req-s": _variant("100 req-s", 1000, 0.8)}})
    found = measured(TwoOps(), "demo", tmp_path)
    assert found.costs["get"]["core_ms"] == {"app-1": 0.8} and found.sources[0]["variants"] == ["100 req-s"]
