"""The arithmetic of the shop's experiments: placing each checkout on its shards from the generator's
log, success by class, recovery after a fault, listing tails, hostile-retry counts and the per-checkout
CPU projection."""

from __future__ import annotations

import pytest

from loadtests.shop import analysis as a
from loadtests.shop.idempotency import retry_figures
from loadtests.shop.outage import outage_figures
from loadtests.shop.scatter_gather import listing_figures
from loadtests.shop.shard_scaling import WARMUP_S, scaling_figures
from shop.sharding import bucket_of_key, compose_id, initial_map

T0 = 1_800_000_000.0  # the run's started_at (wall clock, seconds)
ASSIGNMENT = list(initial_map(("a", "b"), 256).assignment)  # bucket b on shard b % 2


def product_on(shard: int, n: int = 0) -> str:
    return str(compose_id(1000 + n, 2 * n + shard, n))  # bucket 2n + shard: on shard `shard`


def user_on(shard: int, start: int = 0) -> str:
    return next(f"buyer_{i:05d}" for i in range(start, 10_000) if bucket_of_key(f"buyer_{i:05d}", 256) % 2 == shard)


def attempt(key: str, user: str, product: str, at_s: float, *answers: tuple[int, str | None]) -> list[dict]:
    t = (T0 + at_s) * 1000
    out = [{"event": "attempted", "user": user, "key": key, "product": product, "t": t}]
    for i, (status, code) in enumerate(answers):
        out.append({"event": "answer", "user": user, "key": key, "product": product, "try": i, "status": status,
                    "code": code, "replayed": False, "ms": 10.0, "t": t + 100 * i})
        if status == 201:
            out.append({"event": "acknowledged", "user": user, "key": key, "order_id": str(i)})
    return out


def listing(at_s: float, ms: float, partial: bool, status: int = 200) -> dict:
    return {"event": "listing", "t": (T0 + at_s) * 1000, "ms": ms, "status": status, "partial": partial,
            "missing": [1] if partial else None}


# --- shard attribution -----------------------------------------------------------------------------

def test_each_checkout_is_placed_on_its_buyers_and_its_products_shard():
    u0, u1 = user_on(0), user_on(1)
    records = [*attempt("k1", u0, product_on(0), 1.0, (201, None)),
               *attempt("k2", u0, product_on(1, 3), 2.0, (503, "shard_unavailable"), (201, None)),
               *attempt("k3", u1, product_on(0, 5), 3.5, (503, "shard_unavailable"), (503, "shard_unavailable"))]
    c1, c2, c3 = a.checkouts(records, T0, ASSIGNMENT)
    assert (c1.user_shard, c1.product_shard, c1.shards) == (0, 0, {0})
    assert (c2.user_shard, c2.product_shard, c2.shards) == (0, 1, {0, 1})
    assert (c3.user_shard, c3.product_shard) == (1, 0)
    assert [round(c.t, 3) for c in (c1, c2, c3)] == [1.0, 2.0, 3.5]
    assert (c1.ok, c2.ok, c3.ok) == (True, True, False)  # a 503 then a 201 ends 201
    assert c3.status == 503 and c3.final["code"] == "shard_unavailable"
    assert a.statuses([c1, c2, c3]) == {"201": 2, "503 shard_unavailable": 1}
    assert a.every_answer_status([c1, c2, c3]) == {201: 2, 503: 3}


def test_the_final_answer_is_the_first_final_one_and_in_use_is_not_final():
    u = user_on(0)
    (c,) = a.checkouts(attempt("k", u, product_on(0), 0, (0, None), (409, "idempotency_key_in_use"), (201, None),
                               (201, None)), T0, ASSIGNMENT)
    assert c.final["try"] == 2 and c.ok
    (d,) = a.checkouts(attempt("k", u, product_on(0), 0, (0, None), (409, "idempotency_key_in_use")), T0, ASSIGNMENT)
    assert d.status == 409 and not a.is_final(d.final)  # gave up on "in use": ends on it, not final
    assert a.is_final({"status": 409, "code": "out_of_stock"}) and a.is_final({"status": 402})


def test_a_request_the_generator_cut_at_the_end_of_the_run_is_not_an_unanswered_one():
    u = user_on(0)
    records = attempt("k", u, product_on(0), 14.85, (503, "shard_unavailable"), (503, "shard_unavailable"), (0, None))
    (cut,) = a.checkouts(records, T0, ASSIGNMENT, ends_at=15.0)  # its third try started at 15.05 s
    assert cut.status == 503 and cut.final["code"] == "shard_unavailable" and len(cut.answers) == 2
    (timed_out,) = a.checkouts(records, T0, ASSIGNMENT, ends_at=20.0)  # before the end: a real non-answer
    assert timed_out.status == 0 and len(timed_out.answers) == 3


# --- recovery, percentiles, server counts ------------------------------------------------------------

def test_recovery_is_the_first_whole_second_after_the_resume_back_near_the_baseline():
    series = {8: (10, 10), 12: (0, 10), 20: (2, 10), 21: (9, 10), 22: (1, 2), 23: (10, 10)}
    assert a.recovery_time(series, 20.3, baseline=1.0) == pytest.approx(2.7)  # 21 is 90% < 95%; 22 has 2 < 3
    assert a.recovery_time(series, 20.3, baseline=0.9) == pytest.approx(0.7)  # 90% >= 95% of 90%
    assert a.recovery_time({21: (1, 10)}, 20.0, baseline=1.0) is None
    assert a.per_second(a.checkouts(attempt("k", user_on(0), product_on(0), 4.5, (201, None)), T0, ASSIGNMENT)) == \
        {4: (1, 1)}


def test_server_status_counts_come_from_the_http_requests_counter():
    delta = {"http_requests_total{method=GET,route=/api/v1/products,status=200}": 10.0,
             "http_requests_total{method=POST,route=/api/v1/checkout,status=503}": 4.0,
             "http_requests_total{method=POST,route=/api/v1/checkout,status=500}": 1.0,
             "shop_checkouts_total{outcome=paid}": 3.0}
    assert a.server_statuses(delta)[("/api/v1/checkout", 503)] == 4
    assert a.server_errors(delta) == {"/api/v1/checkout 500": 1}


# --- shard outage ----------------------------------------------------------------------------------

def test_outage_figures_split_checkouts_by_the_shards_they_need_and_time():
    u0, u1 = user_on(0), user_on(1)
    p0, p1 = product_on(0), product_on(1)
    records = [*attempt("before", u0, p1, 3.0, (201, None)),
               *attempt("up", u0, p0, 12.0, (201, None)),
               *attempt("up-fail", u0, p0, 13.0, (503, "shard_unavailable")),
               *attempt("hit-user", u1, p0, 12.5, (503, "shard_unavailable")),
               *attempt("hit-product", u0, p1, 14.0, (503, "shard_unavailable"), (201, None)),
               *attempt("after", u1, p1, 21.5, (201, None)),
               listing(5.0, 8.0, False), listing(12.0, 255.0, True), listing(15.0, 260.0, True),
               listing(16.0, 9.0, False), listing(22.0, 7.0, False)]
    summary = {"started_at": T0, "duration_s": 30.0, "server": {},
               "fault_windows": [{"component": "postgres-1", "kind": "pause", "start_s": 10.0, "end_s": 20.0}]}
    f = outage_figures(records, summary, ASSIGNMENT)
    assert f["window"] == [10.0, 20.0]
    assert f["before"] == {"checkouts": 1, "ok": 1, "rate": 1.0}
    assert f["during_up"] == {"checkouts": 2, "ok": 1, "rate": 0.5}
    assert f["during_hit"]["checkouts"] == 2 and f["hit_statuses"] == {"503 shard_unavailable": 1, "201": 1}
    assert f["hit_without_message"] == 0 and not f["client_5xx"] and not f["server_5xx"]
    assert f["listings_during"]["partial"] == 2 and f["listings_during"]["answered"] == 3
    assert f["listings_outside"]["partial"] == 0
    assert f["recovery_s"] is None  # one checkout after the resume: fewer than 3 in its second
    assert f["series"]["up_rate"][12] == 100.0 and f["series"]["hit_rate"][12] == 0.0
    assert outage_figures(records, {**summary, "fault_windows": []}, ASSIGNMENT) == \
        {"error": "no pause of postgres-1 in this run"}


# --- hostile retries ---------------------------------------------------------------------------------

def test_retry_counts_tell_copies_timeouts_in_use_and_replays_apart():
    u = user_on(0)
    t = (T0 + 1) * 1000
    base = {"event": "answer", "user": u, "key": "k", "product": product_on(0), "ms": 1.0}
    records = [{"event": "attempted", "user": u, "key": "k", "product": product_on(0), "t": t},
               {**base, "try": 0, "status": 0, "code": None, "replayed": False, "t": t},
               {**base, "try": 1, "status": 409, "code": "idempotency_key_in_use", "replayed": False, "t": t},
               {**base, "try": 2, "status": 409, "code": "idempotency_key_in_use", "replayed": False, "t": t},
               {**base, "try": 3, "status": 201, "code": None, "replayed": True, "t": t + 200},
               {"event": "acknowledged", "user": u, "key": "k", "order_id": "1"}]
    x = retry_figures(records, {"started_at": T0, "server": {}}, ASSIGNMENT)
    assert (x["checkouts"], x["requests"], x["duplicates_sent"], x["concurrent_copies"]) == (1, 4, 3, 2)
    assert (x["timeouts"], x["in_use"], x["replays"], x["created"]) == (1, 2, 1, 0)
    assert (x["acknowledged_keys"], x["declined_keys"], x["unanswered_keys"]) == (1, 0, 0)
    assert x["final_statuses"] == {"201": 1} and not x["client_5xx"]


# --- scatter-gather --------------------------------------------------------------------------------

def test_listings_are_measured_in_the_throttle_window_or_after_the_warm_up():
    records = [listing(0.5, 900.0, False), listing(3.0, 10.0, False), listing(6.0, 300.0, True),
               listing(8.0, 20.0, False, status=503)]
    plain = listing_figures(records, {"started_at": T0, "duration_s": 10.0, "server": {}})
    assert plain["window"] == [2.0, 10.0] and plain["listings"] == 3 and plain["answered"] == 2
    assert (plain["partial"], plain["errors"], plain["max_ms"]) == (1, 1, 300.0)
    slow = listing_figures(records, {"started_at": T0, "duration_s": 10.0, "server": {},
                                     "fault_windows": [{"component": "postgres-1", "kind": "throttle",
                                                        "start_s": 5.0, "end_s": 9.0}]})
    assert slow["window"] == [5.0, 9.0] and slow["listings"] == 2


# --- CPU per checkout and the projection ------------------------------------------------------------

def test_cost_per_checkout_is_cpu_over_rate_in_core_milliseconds():
    assert a.component_group("postgres-3") == "postgres" and a.component_group("shop-payments-1") == "shop-payments"
    assert a.cpu_by_group({"postgres-0": 20.0, "postgres-1": 30.0, "shop-1": 60.0, "shop-2": 40.0}) == \
        {"postgres": 50.0, "shop": 100.0}
    assert a.cost_per_checkout({"postgres": 50.0, "shop": 100.0}, 100.0) == {"postgres": 5.0, "shop": 10.0}
    assert a.cost_per_checkout({"shop": 100.0}, 0) == {}
    timeline = [{"t": 0, "cpu": {"x": 100.0}}, {"t": 1, "cpu": {"x": 50.0}}, {"t": 2, "cpu": {}},
                {"t": 3, "cpu": {"x": 30.0}, "machine_cpu": 90.0}, {"t": 4, "machine_cpu": 70.0}]
    assert a.mean_cpu(timeline, 1, 4) == {"x": 40.0}  # seconds without a sample are left out
    assert a.mean_machine_cpu(timeline, 1, 5) == 80.0


def test_projection_spreads_the_database_work_over_a_core_per_shard():
    p = a.projection({"postgres": 5.0, "shop": 12.0, "caddy": 3.0, "load-generator": 2.0}, shards=4, cores=2)
    assert p["db_ceiling"] == pytest.approx(800.0)  # 4 shards x 1000 / 5 core-ms
    assert p["rest_ceiling"] == pytest.approx(2000 / 15)  # 2 cores x 1000 / (12 + 3), the generator left out
    assert p["machine_ceiling"] == pytest.approx(2000 / 22)
    assert p["limit"] == "rest of the stack"
    assert a.projection({"postgres": 20.0, "shop": 2.0}, shards=1, cores=2)["limit"] == "database"
    assert a.projection({}, shards=2)["db_ceiling"] is None


def test_saturation_names_the_machine_and_the_processes_at_a_full_core():
    s = a.saturated({"shop-1": 95.0, "shop-2": 60.0, "postgres-0": 30.0}, cores=2)
    assert s["machine"] and s["busiest"] == ("shop-1", 95.0) and s["at_one_core"] == ["shop-1"]
    assert not a.saturated({"shop-1": 40.0}, cores=2)["machine"]


def test_scaling_figures_from_a_run():
    u = user_on(0)
    start = WARMUP_S  # counted after the warm-up, up to a second before the end
    records = [r for i in range(10) for r in attempt(f"k{i}", u, product_on(i % 2, i), start + i * 0.5, (201, None))]
    timeline = [{"t": t, "cpu": {"postgres-0": 10.0, "postgres-1": 10.0, "shop-1": 50.0, "load-generator": 5.0},
                 "machine_cpu": 95.0} for t in range(int(start) + 7)]
    f = scaling_figures(records, {"started_at": T0, "duration_s": start + 6.0, "server": {}}, timeline, ASSIGNMENT,
                        cores=2)
    assert f["checkouts_per_s"] == pytest.approx(2.0)  # 10 in the 5 s after the warm-up
    assert f["core_ms_per_checkout"] == {"load-generator": 25.0, "postgres": 100.0, "shop": 250.0}
    assert f["projection"]["db_ceiling"] == pytest.approx(20.0) and f["machine_cpu"] == 95.0
