"""The lab's own settings (``SDLAB_*``), plus the variables that swap a part for an existing server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.lab.contract import Design
from services.settings import split_csv, split_urls

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy"


class DesignDiscovery(BaseSettings):
    """Designs to load besides the installed ones (:mod:`services.lab.designs`)."""

    model_config = SettingsConfigDict(env_prefix="SDLAB_", extra="ignore")

    design_modules: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("design_modules", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return split_csv(value) if value is not None else []


class DesignSettings(BaseSettings):
    """One design's knobs, read from ``SDLAB_<DESIGN>_PORT``, ``SDLAB_<DESIGN>_INSTANCES`` and
    ``SDLAB_<DESIGN>_WORKERS`` (copies of each background worker); unset, the design's own defaults."""

    model_config = SettingsConfigDict(extra="ignore")

    port: int | None = Field(None, ge=1, le=65535)  # its load balancer's public port
    instances: int | None = Field(None, ge=1, le=16)
    workers: int = Field(1, ge=1, le=8)


class LabSettings(BaseSettings):
    # ``<design>_port``, ``<design>_instances``, ``<design>_workers`` given here (``--instances``, an
    # experiment's variant) are kept as extras and win over the environment (:meth:`design_settings`).
    model_config = SettingsConfigDict(env_prefix="SDLAB_", extra="allow")

    home: Path = Path(".lab")
    host: str = "127.0.0.1"
    redis_port: int = Field(6379, ge=1, le=65535)
    # Shard i listens on postgres_port + i.
    postgres_port: int = Field(5432, ge=1, le=65535)
    postgres_shards: int = Field(2, ge=1, le=8)
    # Streaming replicas per shard under Patroni (services/lab/replication/layout.py); 0: a plain server each.
    postgres_replicas: int = 0
    postgres_replication: str = "async"  # or "sync": a commit waits for a replica
    patroni_port: int = Field(8008, ge=1, le=65535)  # member m of shard i: its REST API on + 10*m + i
    etcd_port: int = Field(2379, ge=1, le=65535)  # Patroni's DCS; its peer port is the next one
    kafka_port: int = Field(9092, ge=1, le=65535)
    # App instances take consecutive ports from here.
    app_port: int = Field(8100, ge=1, le=65535)
    ready_timeout_s: float = Field(60.0, gt=0)
    # How long Caddy keeps an idle connection to an instance; each instance keeps it open
    # APP_KEEP_ALIVE_MARGIN_S longer (see services/lab/stack.py). A test waits these out: it sets them short.
    upstream_keepalive_s: int = Field(60, ge=2, le=3600)
    # Before each load run the stack is watched idle this long; its background is subtracted
    # from the run's cost per operation.
    cost_idle_s: float = Field(3.0, gt=0, le=60)
    # Where load runs, experiments and benchmarks write their folders.
    results: Path = REPO_ROOT / "results"
    # CPU budgets, like a small machine per component: "NAME=CORES,..." (NAME a component, its kind
    # or a prefix such as a design's name: postgres-1, postgres). `sdlab up --budget` adds to these.
    budgets: str = ""
    # Memory budgets, a hard limit per component: "NAME=SIZE,..." (SIZE in bytes or 256M, 1G: binary
    # units), NAME as for CPU budgets. `sdlab up --memory` adds to these.
    memory_budgets: str = ""
    # Compose mode only: the Toxiproxy API that network faults go through.
    toxiproxy_url: str = "http://127.0.0.1:8474"

    # Point the lab at servers that already run instead of starting its own.
    redis_url: str | None = Field(None, validation_alias=AliasChoices("REDIS_URL", "SDLAB_REDIS_URL"))
    database_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("DATABASE_URLS", "SDLAB_DATABASE_URLS")
    )
    kafka_bootstrap_servers: str | None = Field(
        None, validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "SDLAB_KAFKA_BOOTSTRAP_SERVERS")
    )

    @field_validator("database_urls", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return split_urls(value) if value is not None else []

    @field_validator("results")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # A relative SDLAB_RESULTS means "from where I ran sdlab"; the generators run elsewhere (k6
        # opens a relative path from its script's folder), so it is made whole here, once.
        return value.expanduser().resolve()

    @property
    def state_dir(self) -> Path:
        return self.home.resolve()

    def design_settings(self, design: Design) -> DesignSettings:
        """The design's knobs: given to this object first, then the environment, then its declaration."""
        prefix = f"{design.name}_"
        given = {k.removeprefix(prefix): v for k, v in (self.model_extra or {}).items() if k.startswith(prefix)}
        found = DesignSettings(_env_prefix=f"SDLAB_{design.name.upper()}_", **given)
        return found.model_copy(update={"port": found.port or design.port,
                                        "instances": found.instances or design.instances})

    def design_port(self, design: Design) -> int:
        return int(self.design_settings(design).port)

    def design_instances(self, design: Design) -> int:
        return int(self.design_settings(design).instances)

    def design_workers(self, design: Design) -> int:
        return self.design_settings(design).workers
