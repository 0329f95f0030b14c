"""A real service process, started as the lab starts it but bound beyond loopback with the public
default secrets, refuses to start and says why in one line (no stack needed: it exits before it
connects to anything or opens its port)."""

from __future__ import annotations

import os
import subprocess

import pytest

from services.lab.config import LabSettings
from services.lab.designs import resolve
from services.lab.stack import plan_stack


@pytest.mark.parametrize("name, setting", [
    ("shop-1", "SHOP_TOKEN_SECRET"),
    ("messaging-1", "MESSAGING_TOKEN_SECRET"),
    ("messaging-gateway-1", "MESSAGING_TOKEN_SECRET"),
    ("shortener-1", "SHORTENER_ID_SECRET"),
])
def test_a_process_bound_to_all_addresses_with_a_public_secret_exits_with_the_reason(tmp_path, name, setting):
    plan = plan_stack(LabSettings(home=tmp_path, host="0.0.0.0", app_port=23100), resolve([]))  # no secrets given
    component = next(c for c in plan.apps if c.name == name)
    assert component.cmd[component.cmd.index("--host") + 1] == "0.0.0.0"
    done = subprocess.run(component.cmd, env={**os.environ, **component.env}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("refusing to start: ") and setting in last and "0.0.0.0" in last, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
