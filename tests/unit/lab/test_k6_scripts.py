"""The k6 scripts' endpoint names fit k6's metric names: ``endpoint(name)`` in loadtests/k6/lab.js
spells each character as 4 hex digits inside ``lab_ep_<hex>_duration``, and k6 refuses a metric
name over 128 characters at start-up (a run that never starts: exit 107)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

LOADTESTS = Path(__file__).resolve().parents[3] / "loadtests"
SCRIPTS = sorted(LOADTESTS.glob("*/load.k6.js"))
METRIC = "lab_ep_{}_duration"
K6_MAX_METRIC_NAME = 128


def endpoint_names(script: str) -> list[str]:
    constants = dict(re.findall(r"const (\w+) = '([^']*)'", script))
    return [constants.get(arg, arg) for arg in re.findall(r"\bendpoint\((\w+)\)", script)]


def metric_name(name: str) -> str:
    return METRIC.format("".join(f"{ord(c):04x}" for c in name))


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.parent.name for p in SCRIPTS])
def test_every_endpoint_name_makes_a_metric_name_k6_accepts(script):
    names = endpoint_names(script.read_text())
    assert names, "no endpoint(...) found: the pattern no longer reads the script"
    too_long = [n for n in names if len(metric_name(n)) > K6_MAX_METRIC_NAME]
    assert too_long == [], f"names k6 would refuse (at most {(K6_MAX_METRIC_NAME - 16) // 4} characters): {too_long}"


def test_the_first_name_that_broke_a_run_is_refused_here():
    # shortener.read-your-writes' first run: k6 exited 107 on this one.
    assert len(metric_name("/api/v1/links/{code} after create")) > K6_MAX_METRIC_NAME
    assert endpoint_names("const A = '/x';\nconst a = endpoint(A);") == ["/x"]
