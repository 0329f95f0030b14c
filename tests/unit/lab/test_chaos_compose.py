"""Compose-mode chaos: the docker commands and Toxiproxy calls the verbs turn into."""

from __future__ import annotations

import pytest

from services.lab.backends.compose import project as compose
from services.lab.backends.compose import stack as compose_stack
from services.lab.backends.compose import toxiproxy
from services.lab.errors import LabCommandError


def test_compose_verbs_map_to_docker_compose(monkeypatch):
    calls = []
    monkeypatch.setattr(compose, "run", lambda dep, *args, **kw: calls.append(args) or "redis\npostgres-0\nkafka\n")
    dep = compose.Deployment("lab", ["docker-compose.yml"])
    assert compose_stack.chaos(dep, "kill", "redis").startswith("kill: redis")
    compose_stack.chaos(dep, "resume", "kafka")
    compose_stack.chaos(dep, "stop", "postgres-0")
    assert [c for c in calls if c[0] != "config"] == [("kill", "-s", "SIGKILL", "redis"), ("unpause", "kafka"),
                                                      ("stop", "postgres-0")]
    with pytest.raises(LabCommandError, match="local mode only"):
        compose_stack.chaos(dep, "throttle", "redis")
    with pytest.raises(LabCommandError, match="unknown service 'redsi'"):
        compose_stack.chaos(dep, "kill", "redsi")


def test_toxics_are_toxiproxy_api_calls():
    (latency,) = toxiproxy.toxic_calls("redis", "latency", latency_ms=250, jitter_ms=20)
    assert latency.path == "/proxies/redis/toxics"
    assert latency.body["type"] == "latency" and latency.body["attributes"] == {"latency": 250, "jitter": 20}
    (bandwidth,) = toxiproxy.toxic_calls("kafka", "bandwidth", rate_kbps=8)
    assert bandwidth.body["type"] == "bandwidth" and bandwidth.body["attributes"] == {"rate": 8}
    (reset,) = toxiproxy.toxic_calls("postgres-0", "reset")
    assert reset.body["type"] == "reset_peer"
    (down,) = toxiproxy.toxic_calls("postgres-1", "down")
    assert (down.path, down.body) == ("/proxies/postgres-1", {"enabled": False})
    (clear,) = toxiproxy.toxic_calls("redis", "clear")
    assert clear.path == "/reset"
    with pytest.raises(LabCommandError, match="unknown toxic"):
        toxiproxy.toxic_calls("redis", "meteor")


def test_toxic_without_toxiproxy_says_compose_is_needed():
    calls = toxiproxy.toxic_calls("redis", "down")
    with pytest.raises(LabCommandError, match="toxics need compose mode"):
        toxiproxy.apply_toxic("http://127.0.0.1:9", calls)


def test_network_faults_go_to_the_compose_backend_and_are_refused_locally(monkeypatch, tmp_path):
    from services.lab.backends.compose import backend as compose_backend
    from services.lab.backends.compose.backend import ComposeBackend
    from services.lab.backends.local.backend import LocalBackend
    from services.lab.config import LabSettings

    settings = LabSettings(home=tmp_path, toxiproxy_url="http://toxiproxy.test:8474")
    calls = toxiproxy.toxic_calls("redis", "down")
    with pytest.raises(LabCommandError, match="toxics need compose mode"):
        LocalBackend(settings).network_fault(calls)
    sent = []
    monkeypatch.setattr(compose_backend, "apply_toxic", lambda url, c: sent.append((url, c)) or "applied")
    assert ComposeBackend(settings, compose.Deployment("lab", ["f.yml"])).network_fault(calls) == "applied"
    assert sent == [("http://toxiproxy.test:8474", calls)]
