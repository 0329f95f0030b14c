"""A component of the stack: one process the lab starts, where it listens and how it is run."""

from __future__ import annotations

import signal
from dataclasses import asdict, dataclass, field

# Every PostgreSQL server the lab starts (plain or a Patroni member) counts its own statements, which
# is what the cost meter (services/lab/measure/cost.py) reads.
PG_SETTINGS = ["-c", "shared_preload_libraries=pg_stat_statements", "-c", "pg_stat_statements.track=top",
               "-c", "pg_stat_statements.track_utility=on"]


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
