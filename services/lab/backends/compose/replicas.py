"""Streaming replicas in compose mode (``sdlab up --compose --replicas N``): an override file, made
from the deployment's resolved configuration, that gives every PostgreSQL server (``postgres-i``)
N replica services ``postgres-i-m`` (:func:`services.lab.replication.layout.member_name`).

A replica runs the primary's own image (the official one or the stand-in) with
deploy/postgres/replica-entrypoint.sh: ``pg_basebackup -R`` from its primary, then the primary's
command. Every server reads deploy/postgres/pg_hba.conf, which lets replication connections in.
``--replication sync`` sets the primary's ``synchronous_standby_names`` to its replicas (the first
one that streams is the synchronous one) with ``synchronous_commit=on``: a commit returns once that
replica has flushed it. The apps get one multi-host URL per server, primary first, with
``target_session_attrs=read-write``: writes go to the primary, the read routing
(services/clients/read_routing.py) finds the replicas in it.

Not here: failover. Nothing promotes a replica when its primary dies (no Patroni image), so
``sdlab chaos switchover`` and an automatic failover need local mode.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

import yaml

from services.lab.config import DEPLOY_DIR
from services.lab.replication import layout as replication
from services.settings import split_urls

REPLICA_SCRIPT = DEPLOY_DIR / "postgres" / "replica-entrypoint.sh"
HBA_FILE = DEPLOY_DIR / "postgres" / "pg_hba.conf"
SCRIPT_IN_CONTAINER = "/etc/sdlab/replica-entrypoint.sh"
HBA_IN_CONTAINER = "/etc/sdlab/pg_hba.conf"
# Without a replication slot a primary recycles its WAL freely: keep enough for a replica that fell
# behind under a load run (or restarted) to catch up by streaming instead of needing a new copy.
WAL_KEEP = "wal_keep_size=512MB"
_SERVER = re.compile(r"^postgres-(\d+)$")


def servers(services: dict) -> list[str]:
    """The PostgreSQL servers (shards) of a resolved configuration, in shard order."""
    return sorted((s for s in services if _SERVER.match(s)), key=lambda s: int(s.rsplit("-", 1)[1]))


def members(server: str, replicas: int) -> list[str]:
    shard = int(server.rsplit("-", 1)[1])
    return [replication.member_name(shard, m) for m in range(1, replicas + 1)]


def standby_names(names: list[str]) -> str:
    """``synchronous_standby_names``: the first of ``names`` that streams is the synchronous one
    (quoted: a hyphen is not allowed in a bare name)."""
    return "FIRST 1 (" + ", ".join(f'"{n}"' for n in names) + ")"


def with_members(url: str, hosts: list[str]) -> str:
    """A server's URL listing its replicas after it, writes bound to whichever accepts them."""
    scheme, _, rest = url.partition("://")
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    params = dict(parse_qsl(query))
    params["target_session_attrs"] = "read-write"
    return f"{scheme}://{netloc},{','.join(hosts)}/{path}?{urlencode(params)}"


def database_urls(value: str, replica_hosts: list[list[str]]) -> str:
    """An app's ``*_DATABASE_URLS``: its i-th URL is server ``postgres-i`` (the file's order), which
    gets that server's replicas."""
    urls = split_urls(value)
    return ",".join(with_members(u, replica_hosts[i]) if i < len(replica_hosts) and replica_hosts[i] else u
                    for i, u in enumerate(urls))


def _primary(service: dict, names: list[str], mode: str) -> dict:
    command = [*service["command"], "-c", f"hba_file={HBA_IN_CONTAINER}", "-c", WAL_KEEP]
    if mode == "sync":
        command += ["-c", f"synchronous_standby_names={standby_names(names)}", "-c", "synchronous_commit=on"]
    return {"command": command, "volumes": [f"{HBA_FILE}:{HBA_IN_CONTAINER}:ro"]}


def _replica(primary: dict, server: str, name: str) -> dict:
    built_here = "build" in primary or primary.get("pull_policy") == "never"  # the stand-in's image
    replica = {
        "image": primary["image"],
        "user": "postgres",
        "entrypoint": ["/bin/sh", SCRIPT_IN_CONTAINER],
        "command": [*primary["command"], "-c", f"hba_file={HBA_IN_CONTAINER}", "-c", WAL_KEEP],
        "environment": {**(primary.get("environment") or {}), "PRIMARY_HOST": server, "REPLICA_NAME": name},
        "volumes": [f"{name}-data:/var/lib/postgresql", f"{HBA_FILE}:{HBA_IN_CONTAINER}:ro",
                    f"{REPLICA_SCRIPT}:{SCRIPT_IN_CONTAINER}:ro"],
        "depends_on": {server: {"condition": "service_healthy"}},
    }
    if built_here:
        replica["pull_policy"] = "never"
    for key in ("healthcheck", "stop_signal"):
        if key in primary:
            replica[key] = primary[key]
    return replica


def override(config: dict, replicas: int, mode: str) -> dict:
    """The override for ``replicas`` per server of the resolved ``config`` (``docker compose config``)."""
    services = config["services"]
    shards = servers(services)
    names = {s: members(s, replicas) for s in shards}
    out: dict[str, dict] = {}
    for server in shards:
        out[server] = _primary(services[server], names[server], mode)
        for name in names[server]:
            out[name] = _replica(services[server], server, name)
    hosts = [[f"{n}:5432" for n in names[s]] for s in shards]
    for name, service in services.items():
        if name in out:
            continue
        changed: dict = {}
        waits = service.get("depends_on") or {}
        # With sync replication a commit waits for a replica: nothing may write before one streams.
        extra = {n: {"condition": "service_healthy"} for s in shards if s in waits for n in names[s]}
        if extra:
            changed["depends_on"] = extra
        env = {k: database_urls(v, hosts) for k, v in (service.get("environment") or {}).items()
               if k.endswith("DATABASE_URLS") and v}
        if env:
            changed["environment"] = env
        if changed:
            out[name] = changed
    volumes = {f"{n}-data": {} for s in shards for n in names[s]}
    return {"services": out, "volumes": volumes}


def override_yaml(config: dict, replicas: int, mode: str) -> str:
    return yaml.safe_dump(override(config, replicas, mode), sort_keys=False)
