"""Compose mode for real, where a Docker engine runs; skipped with the reason where none does."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


def _engine_problem() -> str | None:
    if shutil.which("docker") is None:
        return "no docker client installed"
    try:
        result = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker info failed: {exc}"
    if result.returncode != 0:
        return "no Docker engine running (docker info: " + (result.stderr.strip().splitlines() or ["?"])[-1][:120] + ")"
    return None


PROBLEM = _engine_problem()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(PROBLEM is not None, reason=f"compose test skipped: {PROBLEM}")]


@pytest.fixture(scope="module")
def docker_compose_file() -> str:
    return str(REPO / "docker-compose.yml")


def test_compose_stack_serves_a_redirect(docker_services):
    url = "http://127.0.0.1:8080"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    docker_services.wait_until_responsive(check=ready, timeout=300, pause=2)
    created = httpx.post(f"{url}/api/v1/links", json={"url": "https://example.com/compose"}, timeout=10)
    assert created.status_code in (200, 201)
    redirect = httpx.get(f"{url}/{created.json()['code']}", timeout=10)
    assert redirect.status_code == 302 and redirect.headers["location"] == "https://example.com/compose"
