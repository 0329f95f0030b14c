"""The stack definition: which components run, on which ports, with which environment.

This is the single description of the local topology; ``docker-compose.yml`` is held against
it by a test (same services, same env names, same health paths).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from services.lab import binaries, machine
from services.lab.component import PG_SETTINGS, Component
from services.lab.config import DEPLOY_DIR, LabSettings
from services.lab.contract import Design
from services.lab.errors import LabCommandError
from services.lab.replication import layout as replication
from services.lab.replication import members as replicated_stack

# Health paths every app instance serves (the kit's app factory adds them).
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"


@dataclass
class ExternalPart:
    name: str
    kind: str
    url: str


@dataclass
class StackPlan:
    infra: list[Component]
    apps: list[Component]
    balancer: Component | None
    external: list[ExternalPart]
    design_env: dict[str, dict[str, str]]  # per design: the env its instances and migrations get

    @property
    def components(self) -> list[Component]:
        return self.infra + self.apps + ([self.balancer] if self.balancer else [])


# An instance keeps an idle connection this much longer than Caddy does (Caddy's keepalive in
# deploy/caddy/): the other way round, a request written onto a connection the instance is closing
# is lost, and Caddy answers it 502 (it retries GETs only).
APP_KEEP_ALIVE_MARGIN_S = 15
UPSTREAM_KEEPALIVE_DEFAULT_S = 60


def uvicorn_cmd(app: str, host: str, port: int, *, factory: bool = True,
                keep_alive_s: int = UPSTREAM_KEEPALIVE_DEFAULT_S + APP_KEEP_ALIVE_MARGIN_S) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", app, *(["--factory"] if factory else []),
        "--host", host, "--port", str(port),
        "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
        # The app decides whom to believe about X-Forwarded-For (its <PREFIX>_TRUSTED_PROXIES).
        "--no-proxy-headers",
        "--timeout-graceful-shutdown", "5",
        "--timeout-keep-alive", str(keep_alive_s),
    ]


def module_cmd(module: str, host: str, port: int) -> list[str]:
    """A server that is not an ASGI app: ``python -m module --host H --port P``."""
    return [sys.executable, "-m", module, "--host", host, "--port", str(port)]


def _needs(designs: list[Design], part: str) -> bool:
    return any(part in d.needs for d in designs)


def plan_stack(settings: LabSettings, designs: list[Design], app_env: dict[str, str] | None = None,
               secrets: Mapping[str, str] | None = None) -> StackPlan:
    """The components for ``designs``; ``app_env`` adds settings for every app process (an
    experiment's variant, e.g. a design setting that turns a feature off); ``secrets`` are the
    home's generated secrets (:func:`services.lab.lab_secrets.ensure`; without them the designs'
    public defaults apply, which their settings refuse beyond loopback)."""
    replication.check(settings.postgres_replicas, settings.postgres_replication, settings.postgres_shards,
                      machine.size())
    home = settings.state_dir
    host = settings.host
    infra: list[Component] = []
    external: list[ExternalPart] = []

    if settings.redis_url:
        redis_url = settings.redis_url
        external.append(ExternalPart("redis", "redis", redis_url))
    elif _needs(designs, "redis"):
        addr = f"{host}:{settings.redis_port}"
        redis_url = f"redis://{addr}/0"
        data = home / "redis"
        infra.append(
            Component(
                name="redis",
                kind="redis",
                address=addr,
                url=redis_url,
                cmd=[
                    str(binaries.redis_server()),
                    "--port", str(settings.redis_port),
                    "--bind", host,
                    "--dir", str(data),
                    # A cache: no snapshots. Only keys with a TTL may be evicted, so counters
                    # and rate-limit buckets survive memory pressure.
                    "--save", "",
                    "--appendonly", "no",
                    "--maxmemory", "512mb",
                    "--maxmemory-policy", "volatile-lru",
                ],
                data_dir=str(data),
            )
        )
    else:
        redis_url = ""

    if settings.database_urls:
        if settings.postgres_replicas:
            raise LabCommandError("--replicas starts the lab's own PostgreSQL servers: unset DATABASE_URLS to use them")
        database_urls = list(settings.database_urls)
        external += [ExternalPart(f"postgres-{i}", "postgres", u) for i, u in enumerate(database_urls)]
    elif _needs(designs, "postgres") and settings.postgres_replicas:
        members, database_urls = replicated_stack.plan(settings)
        infra += members
    elif _needs(designs, "postgres"):
        # Servers added to a running lab (by a design's own command) stay part of it: what they hold
        # is somewhere a design's map may point, so `up` starts every one the home has.
        existing = sum(replication.is_shard_server(p.parent.parent.name) for p in home.glob("postgres-*/data/PG_VERSION"))
        shards = [postgres_component(settings, shard) for shard in range(max(settings.postgres_shards, existing))]
        database_urls = [c.url for c in shards]
        infra += shards
    else:
        database_urls = []

    if settings.kafka_bootstrap_servers:
        kafka = settings.kafka_bootstrap_servers
        external.append(ExternalPart("kafka", "kafka", kafka))
    elif _needs(designs, "kafka"):
        kafka = f"{host}:{settings.kafka_port}"
        listener = f"tcp://{kafka}"
        infra.append(
            Component(
                name="kafka",
                kind="kafka",
                address=kafka,
                url=kafka,
                # Tansu keeps its log in memory only: a restart loses topics and offsets.
                cmd=[
                    str(binaries.tansu()), "broker",
                    "--listener-url", listener,
                    "--advertised-listener-url", listener,
                    "--storage-engine", "memory://tansu/",
                ],
            )
        )
    else:
        kafka = ""

    apps: list[Component] = []
    design_env: dict[str, dict[str, str]] = {}
    caddy_env = {
        "LAB_BIND": host,
        "LAB_TRUSTED_PROXIES": f"{host}/32",
        "LAB_CADDY_SITES": str(home / "caddy" / "sites" / "*.caddy"),
        "XDG_DATA_HOME": str(home / "caddy" / "data"),
        "XDG_CONFIG_HOME": str(home / "caddy" / "config"),
    }
    next_port = settings.app_port
    for design in designs:
        prefix = design.env_prefix
        public_port = settings.design_port(design)
        env = {
            f"{prefix}PUBLIC_URL": f"http://{host}:{public_port}",
            f"{prefix}LOG_FORMAT": "json",
            f"{prefix}TRUSTED_PROXIES": host,
            # Every process of the design listens on host (its uvicorn --host, its server's --host):
            # beyond loopback its settings refuse public secrets and guard its login.
            f"{prefix}BIND_HOST": host,
            **{name: value for name, value in (secrets or {}).items() if name.startswith(prefix)},
            **{k: v for k, v in (app_env or {}).items() if k.startswith(prefix)},
        }
        if "redis" in design.needs:
            env[f"{prefix}REDIS_URL"] = redis_url
        if "postgres" in design.needs:
            env[f"{prefix}DATABASE_URLS"] = ",".join(database_urls)
        if "kafka" in design.needs:
            env[f"{prefix}KAFKA_BOOTSTRAP_SERVERS"] = kafka
        design_env[design.name] = env
        instances = range(1, settings.design_instances(design) + 1)
        upper = design.name.upper()
        serve = partial(uvicorn_cmd, keep_alive_s=settings.upstream_keepalive_s + APP_KEEP_ALIVE_MARGIN_S)
        # (name, command builder, the Caddy variable listing it, or None for a worker or a service)
        processes = []
        for service, app in design.services:  # first: their URLs go into everyone's environment
            env[f"{prefix}{service.upper()}_URL"] = f"http://{host}:{next_port + len(processes)}"
            processes.append((f"{design.name}-{service}-1", partial(serve, app), None))
        processes += [(f"{design.name}-{i}", partial(serve, design.app), f"{upper}_UPSTREAMS") for i in instances]
        for role, module in design.servers:
            processes += [(f"{design.name}-{role}-{i}", partial(module_cmd, module), f"{upper}_{role.upper()}_UPSTREAMS")
                          for i in instances]
        processes += [(f"{design.name}-{worker}-{i}", partial(serve, app), None) for worker, app in design.workers
                      for i in range(1, settings.design_workers(design) + 1)]
        upstreams: dict[str, list[str]] = {}
        for name, command, upstream_var in processes:
            port = next_port
            next_port += 1
            addr = f"{host}:{port}"
            if upstream_var:
                upstreams.setdefault(upstream_var, []).append(addr)
            apps.append(
                Component(
                    name=name,
                    kind="app",
                    address=addr,
                    url=f"http://{addr}",
                    cmd=command(host, port),
                    env={**env, f"{prefix}INSTANCE_ID": name},
                    design=design.name,
                )
            )
        caddy_env[f"{upper}_PORT"] = str(public_port)
        caddy_env["SDLAB_UPSTREAM_KEEPALIVE"] = f"{settings.upstream_keepalive_s}s"
        caddy_env.update({var: " ".join(addrs) for var, addrs in upstreams.items()})

    balancer = None
    if designs:
        first_port = settings.design_port(designs[0])
        balancer = Component(
            name="caddy",
            kind="caddy",
            address=f"{host}:{first_port}",
            url=f"http://{host}:{first_port}",
            cmd=[str(binaries.caddy()), "run", "--config", str(DEPLOY_DIR / "Caddyfile"), "--adapter", "caddyfile"],
            env=caddy_env,
        )
    return StackPlan(infra=infra, apps=apps, balancer=balancer, external=external, design_env=design_env)


def postgres_component(settings: LabSettings, shard: int) -> Component:
    """PostgreSQL server number ``shard`` of the lab (it listens on postgres_port + shard)."""
    host = settings.host
    port = settings.postgres_port + shard
    addr = f"{host}:{port}"
    data = settings.state_dir / f"postgres-{shard}" / "data"
    return Component(
        name=f"postgres-{shard}",
        kind="postgres",
        address=addr,
        url=f"postgresql://postgres@{addr}/postgres",
        cmd=[
            str(binaries.postgres_bin()),
            "-D", str(data),
            "-p", str(port),
            "-h", host,
            "-c", "unix_socket_directories=",
            "-c", "max_connections=300",
            "-c", "shared_buffers=128MB",
            *PG_SETTINGS,  # statements per operation, counted by the server itself
        ],
        # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM waits for every client to leave.
        stop_signal=signal.SIGINT,
        data_dir=str(data),
    )


def caddy_site_file(design: Design) -> Path:
    """The design's site in the load balancer: its own file, or ``deploy/caddy/<design>.caddy``."""
    return design.caddy_site or DEPLOY_DIR / "caddy" / f"{design.name}.caddy"
