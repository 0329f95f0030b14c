"""A component of the stack: one process the lab starts, where it listens and how it is run."""

from __future__ import annotations

import signal
from dataclasses import asdict, dataclass, field


@dataclass
class Component:
    name: str
    kind: str  # redis | postgres | kafka | app | caddy
    address: str  # host:port it listens on
    url: str  # how a client reaches it
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)  # added to the lab's environment
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    design: str | None = None
    data_dir: str | None = None

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    def to_dict(self) -> dict:
        return asdict(self)
