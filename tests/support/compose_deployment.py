"""A compose deployment of the e2e tests: ``sdlab up --compose --standin`` in a home of its own, and on the way
out ``sdlab down --volumes`` with no container of its compose project left behind."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.lab import Lab


@contextmanager
def compose_deployment(home: Path, project: str, *up_args: str) -> Iterator[Lab]:
    """The lab in ``home`` up as compose project ``project``; ``up_args``: designs and flags after ``--standin``."""
    lab = Lab(home=home, env={"SDLAB_HOME": str(home), "SDLAB_RESULTS": str(home / "results"),
                              "COMPOSE_PROJECT_NAME": project})
    command = ("up", "--compose", "--standin", *up_args)
    started = time.monotonic()
    up = lab.run(*command, timeout=1200, check=False)
    print(f"sdlab {' '.join(command)}: {time.monotonic() - started:.0f} s")
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield lab
    finally:
        down = lab.run("down", "--volumes", timeout=300, check=False)
        assert down.returncode == 0, down.stdout + down.stderr
        left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"],
                              capture_output=True, text=True)
        assert left.stdout.strip() == "", "containers left behind by `sdlab down`"
