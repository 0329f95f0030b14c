"""At rest the stack does (almost) nothing: no design polls PostgreSQL hard while nobody uses it.

Counted by the servers themselves (pg_stat_statements, as every run's cost): the session's stack
runs all three designs, so the bound is three designs' worth of the target (10 statements/s
each). The CPU at rest is reported, not asserted (a timing figure: `sdlab bench` states it).
"""

from __future__ import annotations

import time

from services.lab.measure.cost import CostMeter, idle_rates
from services.lab.state import load_state
from tests.support.lab import Lab

PER_DESIGN = 10.0  # statements/s at rest, the target of each design


def test_an_idle_stack_issues_few_statements(lab: Lab):
    state = load_state(lab.home)
    assert state is not None and set(state.designs) == {"shortener", "messaging", "shop"}
    meter = CostMeter(state)
    time.sleep(3.0)  # what the tests before left in flight (an outbox, a consumer's last batch) settles
    readings = [meter.read()]
    for _ in range(10):
        time.sleep(1.0)
        readings.append(meter.read())
    cpu, statements, span = idle_rates(readings)
    total = sum(statements.values())
    print(f"at rest over {span:.0f} s: {total:.1f} statements/s {statements}, {sum(cpu.values()):.3f} cores")
    assert total <= 3 * PER_DESIGN, statements
