"""Load shapes, fault schedules, wrk output and Zipf weights: the pure parts of the load tooling."""

from __future__ import annotations

import pytest

from services.lab.bench import parse_wrk, wrk_script, zipf_cdf
from services.lab.errors import LabCommandError
from services.lab.generators.curves import SHAPE_NAMES, users_at
from services.lab.measure.faults import FaultStep, parse_schedule, windows


def test_shapes_over_a_run():
    assert set(SHAPE_NAMES) == {"steady", "step", "spike", "soak"}
    assert [users_at("steady", t, 100, 60) for t in (0, 30, 59.9, 60)] == [100, 100, 100, None]
    assert [users_at("step", t, 100, 50) for t in (0, 10, 20, 30, 49)] == [20, 40, 60, 80, 100]
    assert [users_at("spike", t, 100, 100) for t in (0, 39, 40, 59, 60, 99)] == [25, 25, 100, 100, 25, 25]
    assert users_at("soak", 3599, 10, 3600) == 10
    with pytest.raises(ValueError, match="unknown shape"):
        users_at("sawtooth", 0, 1, 1)


def test_fault_schedule_in_seconds_and_percent():
    steps = parse_schedule("at 20s kill redis; at 50% restart redis", 60)
    assert steps == [FaultStep(20.0, "kill", "redis"), FaultStep(30.0, "restart", "redis")]
    for bad, needle in [("at soon kill redis", "bad fault step"), ("at 5s explode redis", "bad fault action"),
                        ("at 90s kill redis", "after the end")]:
        with pytest.raises(LabCommandError, match=needle):
            parse_schedule(bad, 60)


def test_fault_windows_pair_kill_with_restart_and_leave_open_ones_to_the_end():
    log = [(5.0, FaultStep(5, "kill", "redis")), (9.0, FaultStep(9, "restart", "redis")),
           (12.0, FaultStep(12, "pause", "postgres-0"))]
    (closed, open_) = windows(log)
    assert (closed.component, closed.start_s, closed.end_s) == ("redis", 5.0, 9.0)
    assert (open_.component, open_.kind, open_.end_s) == ("postgres-0", "pause", None)


WRK = """Running 10s test @ http://127.0.0.1:8150
  1 threads and 64 connections
  Latency Distribution
     50%    1.02ms
     75%    1.30ms
     90%  850.00us
     99%    2.08ms
  594540 requests in 10.00s, 41.97MB read
Requests/sec:  59453.96
"""


def test_parse_wrk_output():
    assert parse_wrk(WRK) == (59453.96, 1.02, 2.08)
    with pytest.raises(LabCommandError, match="answers were errors"):
        parse_wrk(WRK + "  Non-2xx or 3xx responses: 12\n")


def test_zipf_weights_and_the_wrk_script():
    cdf = zipf_cdf(1000, 1.1)
    assert cdf[-1] == pytest.approx(1.0) and all(a < b for a, b in zip(cdf, cdf[1:]))
    # rank 1 is 2**1.1 times as likely as rank 2
    assert cdf[0] / (cdf[1] - cdf[0]) == pytest.approx(2**1.1)
    script = wrk_script(["/a", "/b"], 1.1)
    assert 'local paths = {"/a","/b"}' in script and "wrk.format" in script
