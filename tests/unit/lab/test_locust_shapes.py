"""A closed-loop shape drives every design's Locust run: the driver loads the engine's shape beside the
design's locustfile, and Locust then finds exactly that one shape and the design's users."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.lab.config import REPO_ROOT
from services.lab.designs import names as design_names
from services.lab.designs import plugin_for
from services.lab.generators.curves import users_at
from services.lab.generators.locust_driver import (
    SHAPE_ADDON,
    TIMELINE_ADDON,
    LocustDriver,
)

# Run in a child: importing Locust monkey-patches the interpreter (gevent), which the test process must not get.
PROBE = """
import json, sys
from locust.main import merge_locustfiles_content
users, shapes, _, shape = merge_locustfiles_content(sys.argv[1].split(","))
shape.start_time -= float(sys.argv[2])  # as if the run were that far in
print(json.dumps({"users": sorted(users), "shapes": sorted(shapes), "tick": shape.tick()}))
"""


def _driver(design: str, tmp_path: Path, shape: str | None) -> LocustDriver:
    return LocustDriver(plugin_for(design).locustfile, "http://127.0.0.1:1", tmp_path, {}, users=40, rate=None,
                        duration_s=100, shape=shape)


@pytest.mark.parametrize("design", design_names())
def test_a_shaped_run_of_every_design_follows_the_shape(design, tmp_path):
    driver = _driver(design, tmp_path, "spike")
    files = ",".join(map(str, driver.locustfiles()))
    for at_s, expected in ((10, users_at("spike", 10, 40, 100)), (50, 40)):
        done = subprocess.run([sys.executable, "-c", PROBE, files, str(at_s)], capture_output=True, text=True,
                              cwd=REPO_ROOT, env={"PATH": "/usr/bin:/bin", **driver.env, "PYTHONPATH": str(REPO_ROOT)},
                              timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        found = json.loads(done.stdout.strip().splitlines()[-1])
        assert found["shapes"] == ["EnvShape"] and found["users"], found
        assert found["tick"] == [expected, 40.0], (design, at_s, found)
    assert "-u" not in driver.command() and SHAPE_ADDON in driver.locustfiles()


def test_an_unshaped_run_sets_users_and_time_and_loads_no_shape(tmp_path):
    driver = _driver(design_names()[0], tmp_path, None)
    assert driver.locustfiles() == [plugin_for(design_names()[0]).locustfile, TIMELINE_ADDON]
    command = driver.command()
    assert command[command.index("-u") + 1] == "40" and command[command.index("-t") + 1] == "100s"
