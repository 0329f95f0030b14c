"""Compose-mode chaos: the docker commands and Toxiproxy calls the verbs turn into."""

from __future__ import annotations

import pytest

from services.lab import chaos
from services.lab.errors import LabCommandError


def test_compose_verbs_map_to_docker_compose():
    assert chaos.compose_command("kill", "redis") == ["docker", "compose", "kill", "-s", "SIGKILL", "redis"]
    assert chaos.compose_command("pause", "postgres-0") == ["docker", "compose", "pause", "postgres-0"]
    assert chaos.compose_command("resume", "kafka") == ["docker", "compose", "unpause", "kafka"]
    assert chaos.compose_command("restart", "shortener-1") == ["docker", "compose", "restart", "shortener-1"]
    with pytest.raises(LabCommandError, match="unknown chaos action"):
        chaos.compose_command("explode", "redis")


def test_toxics_are_toxiproxy_api_calls():
    (latency,) = chaos.toxic_calls("redis", "latency", latency_ms=250, jitter_ms=20)
    assert latency.path == "/proxies/redis/toxics"
    assert latency.body["type"] == "latency" and latency.body["attributes"] == {"latency": 250, "jitter": 20}
    (bandwidth,) = chaos.toxic_calls("kafka", "bandwidth", rate_kbps=8)
    assert bandwidth.body["type"] == "bandwidth" and bandwidth.body["attributes"] == {"rate": 8}
    (reset,) = chaos.toxic_calls("postgres-0", "reset")
    assert reset.body["type"] == "reset_peer"
    (down,) = chaos.toxic_calls("postgres-1", "down")
    assert (down.path, down.body) == ("/proxies/postgres-1", {"enabled": False})
    (clear,) = chaos.toxic_calls("redis", "clear")
    assert clear.path == "/reset"
    with pytest.raises(LabCommandError, match="unknown toxic"):
        chaos.toxic_calls("redis", "meteor")


def test_toxic_without_toxiproxy_says_compose_is_needed():
    calls = chaos.toxic_calls("redis", "down")
    with pytest.raises(LabCommandError, match="toxics need compose mode"):
        chaos.apply_toxic("http://127.0.0.1:9", calls)
