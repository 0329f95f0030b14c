"""The components of replicated PostgreSQL (``sdlab up --replicas N``): the lab's etcd and one
Patroni process per member (:mod:`services.lab.replication.layout` holds the layout and the configuration)."""

from __future__ import annotations

import json
import signal
import sys

from services.lab import binaries
from services.lab.component import PG_SETTINGS, Component
from services.lab.config import LabSettings
from services.lab.replication import layout as replication
from services.lab.replication import subreaper

PATRONI_CONFIG_ENV = "PATRONI_CONFIGURATION"


def etcd_component(settings: LabSettings) -> Component:
    host = settings.host
    client = f"http://{host}:{settings.etcd_port}"
    peer = f"http://{host}:{settings.etcd_port + 1}"
    data = settings.state_dir / "etcd"
    return Component(
        name="etcd",
        kind="etcd",
        address=f"{host}:{settings.etcd_port}",
        url=client,
        cmd=[
            str(binaries.etcd()),
            "--name", "lab",
            "--data-dir", str(data),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"lab={peer}",
            # Its data lives as long as the stack (fresh at every `up`): an fsync stall on a busy
            # disk would only delay Patroni's lease renewals.
            "--unsafe-no-fsync",
            "--log-level", "warn",
        ],
        data_dir=str(data),
    )


def member_component(settings: LabSettings, shard: int, member: int) -> Component:
    """Member ``member`` of shard ``shard``: a Patroni process that runs its PostgreSQL server."""
    name = replication.member_name(shard, member)
    pg_port, rest_port = replication.member_ports(settings.postgres_port, settings.patroni_port, shard, member)
    data = settings.state_dir / f"{name}-patroni" / "data"
    config = replication.patroni_config(
        shard=shard, member=member, host=settings.host, postgres_port=pg_port, rest_port=rest_port,
        etcd=f"{settings.host}:{settings.etcd_port}", data_dir=str(data),
        bin_dir=str(binaries.postgres_bin().parent), mode=settings.postgres_replication,
        parameters=replication.settings_of(PG_SETTINGS),
    )
    addr = f"{settings.host}:{pg_port}"
    return Component(
        name=name,
        kind="postgres",
        address=addr,
        url=f"postgresql://postgres@{addr}/postgres",
        # Under a subreaper: the server Patroni daemonizes stays in the member's process tree.
        cmd=[sys.executable, subreaper.__file__, *binaries.patroni()],
        env={PATRONI_CONFIG_ENV: replication.render(config)},
        # Patroni stops its server (fast shutdown) and, as the leader, gives up its key first.
        stop_signal=signal.SIGTERM,
        data_dir=str(data),
    )


def shard_members(settings: LabSettings, shard: int) -> list[Component]:
    return [member_component(settings, shard, m) for m in range(settings.postgres_replicas + 1)]


def plan(settings: LabSettings) -> tuple[list[Component], list[str]]:
    """(etcd and every member, the apps' URL of each shard)."""
    components = [etcd_component(settings)]
    urls = []
    for shard in range(settings.postgres_shards):
        members = shard_members(settings, shard)
        components += members
        urls.append(replication.cluster_url(settings.host, [m.port for m in members]))
    return components, urls


def rest_address(component_env: dict[str, str]) -> str | None:
    """A running member's Patroni REST API (host:port), from the configuration it was started with."""
    config = component_env.get(PATRONI_CONFIG_ENV)
    return json.loads(config)["restapi"]["listen"] if config else None


def is_patroni(component_env: dict[str, str]) -> bool:
    return PATRONI_CONFIG_ENV in component_env


def start_stages(components: list[Component]) -> list[list[Component]]:
    """The order ``up`` starts them in, each group waited for before the next: the DCS, then the
    servers of every shard (member 0 bootstraps and becomes the primary), then their replicas
    (copied from the primary). Without replicas, one group."""
    def stage(c: Component) -> int:
        if c.kind == "etcd":
            return 0
        found = replication.parse_member(c.name)
        return 2 if c.kind == "postgres" and found is not None and found[1] > 0 else 1

    return [group for s in range(3) if (group := [c for c in components if stage(c) == s])]


def side_ports(components: list[Component]) -> list[tuple[str, int, str]]:
    """Ports the replicated parts listen on besides their address: (what, port, the setting that moves it)."""
    found = [(f"{c.name} (Patroni REST API)", int(rest.rsplit(":", 1)[1]), "SDLAB_PATRONI_PORT")
             for c in components if (rest := rest_address(c.env))]
    return found + [("etcd (peer)", c.port + 1, "SDLAB_ETCD_PORT") for c in components if c.kind == "etcd"]
