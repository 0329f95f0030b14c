"""Streaming replicas with automatic failover (``sdlab up --replicas N``): names, ports, checks and
the Patroni configuration of each member, as pure functions of the lab's settings.

Each PostgreSQL server (a shard) becomes a Patroni cluster of one primary and N replicas; the
lab's etcd is their DCS. Member 0 of shard i is ``postgres-i`` on today's port; member m is
``postgres-i-m`` on ``postgres_port + 10*m + i`` (so shards stay below ten), its Patroni REST API
on ``patroni_port + 10*m + i``. The apps get one multi-host URL per shard with
``target_session_attrs=read-write``: the client tries the members in turn and keeps the one that
accepts writes, so a promoted replica is found without a proxy.

Failover bound (the leader key's lease): a crashed primary's key lives up to ``TTL_S``; a replica
wakes on its expiry (etcd watch, at the latest after ``LOOP_WAIT_S``), promotes itself, and the
apps' next connection finds it. Patroni refuses a ttl under 20 s.
"""

from __future__ import annotations

import json
import re

from services.lab.errors import LabCommandError

MAX_REPLICAS = 2  # per shard: with 2 shards, 6 PostgreSQL servers on a 2-core machine
# What a machine holds (replicas only: a lab without them keeps its shards as they are). A core
# carries 3 PostgreSQL servers beside the apps, broker and load generator (2 shards x 3 members on 2
# cores, as MAX_REPLICAS was sized); a member takes ~384 MiB (128 MB of shared buffers, its backends,
# Patroni's Python), and the servers may take half the memory.
SERVERS_PER_CORE = 3
MEMBER_MIB = 384
MEMBER_STRIDE = 10  # member m of shard i listens on base + 10*m + i; shards are at most 8
MODES = ("async", "sync")
TTL_S = 20  # Patroni's minimum
LOOP_WAIT_S = 2
RETRY_TIMEOUT_S = 5  # loop_wait + 2 * retry_timeout <= ttl, as Patroni requires
FAILOVER_BOUND_S = TTL_S + LOOP_WAIT_S  # kill of the primary -> a replica promoted (plus its promotion)

_MEMBER = re.compile(r"^postgres-(?P<shard>\d+)(?:-(?P<member>\d+))?$")

# Replication needs these equal (or larger) on every member: Patroni keeps them in the DCS.
_CLUSTER_PARAMETERS = {
    "max_connections": 300,
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    "wal_level": "replica",
    "wal_log_hints": "on",  # pg_rewind: an old primary rejoins as a replica
    "hot_standby": "on",
}


def check(replicas: int, mode: str, shards: int = 1, machine: tuple[int, int] | None = None) -> None:
    """One line for a replication the lab cannot or should not run; ``machine``: (cores, memory in MiB),
    see :func:`services.lab.machine.size`, None to skip what depends on it."""
    if mode not in MODES:
        raise LabCommandError(f"--replication {mode}: choose async or sync")
    if replicas < 0:
        raise LabCommandError(f"--replicas {replicas}: give 0 (a single server per shard) or more")
    if replicas > MAX_REPLICAS:
        raise LabCommandError(f"--replicas {replicas}: at most {MAX_REPLICAS} per shard on this lab "
                              "(each is a full PostgreSQL server)")
    if mode == "sync" and replicas == 0:
        raise LabCommandError("--replication sync needs a replica to wait for: add --replicas 1")
    if replicas and machine is not None:
        cores, memory_mib = machine
        servers, most = shards * (replicas + 1), min(SERVERS_PER_CORE * cores, memory_mib // 2 // MEMBER_MIB)
        if servers > most:
            raise LabCommandError(
                f"--replicas {replicas} with {shards} shard(s) is {servers} PostgreSQL servers; this machine "
                f"({cores} cores, {memory_mib / 1024:.1f} GiB) holds at most {most} ({SERVERS_PER_CORE} a core, "
                f"{MEMBER_MIB} MiB each in half the memory): fewer --replicas or --shards")


def member_name(shard: int, member: int) -> str:
    return f"postgres-{shard}" if member == 0 else f"postgres-{shard}-{member}"


def parse_member(name: str) -> tuple[int, int] | None:
    """``postgres-1-2`` -> (1, 2); ``postgres-1`` -> (1, 0); anything else None."""
    match = _MEMBER.match(name)
    if match is None:
        return None
    return int(match.group("shard")), int(match.group("member") or 0)


def is_shard_server(name: str) -> bool:
    """The server of a shard (member 0), which a lab without replicas also has."""
    found = parse_member(name)
    return found is not None and found[1] == 0


def member_ports(postgres_port: int, patroni_port: int, shard: int, member: int) -> tuple[int, int]:
    """(PostgreSQL port, Patroni REST port) of a member."""
    offset = MEMBER_STRIDE * member + shard
    return postgres_port + offset, patroni_port + offset


def cluster_url(host: str, ports: list[int]) -> str:
    """The apps' URL of a shard: every member, the one accepting writes chosen at connect time."""
    hosts = ",".join(f"{host}:{p}" for p in ports)
    return f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write"


def scope(shard: int) -> str:
    return f"sdlab-postgres-{shard}"


def patroni_config(*, shard: int, member: int, host: str, postgres_port: int, rest_port: int, etcd: str,
                   data_dir: str, bin_dir: str, mode: str, parameters: dict[str, str]) -> dict:
    """One member's Patroni configuration (``parameters``: the lab's own, besides replication's)."""
    address = f"{host}:{postgres_port}"
    trusted = f"{host}/32"
    return {
        "scope": scope(shard),
        "namespace": "/sdlab/",
        "name": member_name(shard, member),
        "log": {"level": "INFO"},
        "restapi": {"listen": f"{host}:{rest_port}", "connect_address": f"{host}:{rest_port}"},
        "etcd3": {"hosts": etcd},
        "bootstrap": {
            # Written to the DCS once, by the member that initialises the cluster.
            "dcs": {
                "ttl": TTL_S,
                "loop_wait": LOOP_WAIT_S,
                "retry_timeout": RETRY_TIMEOUT_S,
                "synchronous_mode": mode == "sync",
                # Not strict: with its only replica gone, a primary goes on alone rather than refuse writes.
                "synchronous_mode_strict": False,
                "postgresql": {"use_pg_rewind": True, "use_slots": True, "parameters": _CLUSTER_PARAMETERS},
            },
            "initdb": [{"encoding": "UTF8"}, "data-checksums"],  # --username: the superuser's
        },
        "postgresql": {
            "listen": address,
            "connect_address": address,
            "data_dir": data_dir,
            "bin_dir": bin_dir,
            "pgpass": f"{data_dir}.pgpass",
            "authentication": {"superuser": {"username": "postgres"}, "replication": {"username": "postgres"}},
            "pg_hba": ["local all all trust", f"host all all {trusted} trust",
                       f"host replication all {trusted} trust"],
            "parameters": {"unix_socket_directories": "", "shared_buffers": "128MB", **parameters},
            "basebackup": [{"checkpoint": "fast"}],
            "remove_data_directory_on_rewind_failure": True,
        },
    }


def render(config: dict) -> str:
    """YAML for ``PATRONI_CONFIGURATION`` (JSON is YAML)."""
    return json.dumps(config)


def settings_of(pg_args: list[str]) -> dict[str, str]:
    """``["-c", "a=b", ...]`` (the lab's command-line settings of a plain server) -> ``{"a": "b"}``."""
    values = [arg for flag, arg in zip(pg_args[::2], pg_args[1::2], strict=True) if flag == "-c"]
    return dict(value.split("=", 1) for value in values)
