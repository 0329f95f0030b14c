"""The lab's own settings (``SDLAB_*``), plus the variables that swap a part for an existing server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, create_model, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.lab.designs import DESIGNS
from services.settings import split_csv

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy"


class _LabSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SDLAB_", extra="ignore")

    home: Path = Path(".lab")
    host: str = "127.0.0.1"
    redis_port: int = Field(6379, ge=1, le=65535)
    # Shard i listens on postgres_port + i.
    postgres_port: int = Field(5432, ge=1, le=65535)
    postgres_shards: int = Field(2, ge=1, le=8)
    kafka_port: int = Field(9092, ge=1, le=65535)
    # App instances take consecutive ports from here.
    app_port: int = Field(8100, ge=1, le=65535)
    ready_timeout_s: float = Field(60.0, gt=0)
    # Before each load run the stack is watched idle this long; its background is subtracted
    # from the run's cost per operation.
    cost_idle_s: float = Field(3.0, gt=0, le=60)
    # Where load runs, experiments and benchmarks write their folders.
    results: Path = REPO_ROOT / "results"
    # CPU budgets, like a small machine per component: "NAME=CORES,..." (NAME a component, its kind
    # or a prefix such as a design's name: postgres-1, postgres). `sdlab up --budget` adds to these.
    budgets: str = ""
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
        return split_csv(value) if value is not None else []

    @property
    def state_dir(self) -> Path:
        return self.home.resolve()

    def design_port(self, design: str) -> int:
        return int(getattr(self, f"{design}_port"))

    def design_instances(self, design: str) -> int:
        return int(getattr(self, f"{design}_instances"))

    def design_workers(self, design: str) -> int:
        return int(getattr(self, f"{design}_workers"))


def _design_fields() -> dict:
    """``<design>_port`` (its load balancer's public port), ``<design>_instances`` and
    ``<design>_workers`` (copies of each background worker) for every design of the registry, read
    from ``SDLAB_<DESIGN>_PORT``, ``SDLAB_<DESIGN>_INSTANCES`` and ``SDLAB_<DESIGN>_WORKERS``."""
    fields: dict = {}
    for design in DESIGNS.values():
        fields[f"{design.name}_port"] = (int, Field(design.port, ge=1, le=65535))
        fields[f"{design.name}_instances"] = (int, Field(design.instances, ge=1, le=16))
        fields[f"{design.name}_workers"] = (int, Field(1, ge=1, le=8))
    return fields


LabSettings = create_model("LabSettings", __base__=_LabSettings, __doc__=_LabSettings.__doc__, **_design_fields())
