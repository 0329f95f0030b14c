"""Drive a real lab through the ``sdlab`` CLI, on free ports, in a home of its own."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]


def _free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port_block(size: int, start: int = 20000, used: set[int] | None = None) -> int:
    """The first port of ``size`` consecutive free ports (the lab numbers shards and instances up from a base)."""
    used = used if used is not None else set()
    port = start
    while port < 32700:  # below the ephemeral range, where a probe could connect a port to itself
        block = range(port, port + size)
        if not used.intersection(block) and all(_free(p) for p in block):
            used.update(block)
            return port
        port += size
    raise RuntimeError("no free port block")


def lab_ports(start: int) -> dict[str, str]:
    used: set[int] = set()
    return {
        "SDLAB_REDIS_PORT": str(free_port_block(1, start, used)),
        "SDLAB_POSTGRES_PORT": str(free_port_block(4, start, used)),
        "SDLAB_KAFKA_PORT": str(free_port_block(1, start, used)),
        "SDLAB_APP_PORT": str(free_port_block(24, start, used)),
        "SDLAB_SHORTENER_PORT": str(free_port_block(1, start, used)),
        "SDLAB_MESSAGING_PORT": str(free_port_block(1, start, used)),
        "SDLAB_SHOP_PORT": str(free_port_block(1, start, used)),
    }


@dataclass
class Lab:
    home: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, home: Path, port_start: int, **extra: str) -> "Lab":
        # One second of idle before each run's cost (three by default): the suite runs many loads.
        env = {"SDLAB_HOME": str(home), "SDLAB_COST_IDLE_S": "1", **lab_ports(port_start), **extra}
        return cls(home=home, env=env)

    def run(self, *args: str, timeout: float = 120, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "services.lab.cli", *args],
            cwd=REPO,
            env={**os.environ, **self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"sdlab {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def status(self) -> dict:
        return json.loads(self.run("status", "--json").stdout)

    def component(self, name: str) -> dict:
        return next(c for c in self.status()["components"] if c["name"] == name)

    @property
    def state(self) -> dict:
        return json.loads((self.home / "state.json").read_text())

    def url(self, design: str = "shortener") -> str:
        return f"http://127.0.0.1:{self.env[f'SDLAB_{design.upper()}_PORT']}"

    def address(self, name: str) -> str:
        return self.state["components"][name]["address"]

    def pids(self) -> list[int]:
        return [c["pid"] for c in self.state["components"].values()]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
