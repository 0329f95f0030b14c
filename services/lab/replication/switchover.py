"""A planned failover, ``sdlab chaos switchover postgres-N``: Patroni hands a shard's primary role
to a healthy replica, and the old primary follows it as a replica.

Patroni does the work (its REST API's ``POST /switchover`` on the current leader: it checkpoints,
demotes the leader, lets the candidate catch up and promotes it); the lab picks the candidate,
asks, and waits until the cluster reports the new leader running. A switchover, unlike a
failover, loses nothing acknowledged even with asynchronous replication: the old primary stops
taking writes before the candidate is promoted.
"""

from __future__ import annotations

import time

import httpx

from services.lab.errors import LabCommandError
from services.lab.replication.layout import member_name, parse_member
from services.lab.replication.members import rest_address
from services.lab.state import LabState

# A member that streams from the leader (or has just caught up) can take over.
_HEALTHY = {"running", "streaming"}


def plan(cluster: dict, shard_name: str) -> tuple[str, str]:
    """(leader, candidate) from Patroni's ``/cluster`` answer: the replica furthest along, or a
    one-line refusal when the shard has no leader or no healthy replica."""
    members = cluster.get("members", [])
    leader = next((m["name"] for m in members if m.get("role") in ("leader", "primary", "master")), None)
    if leader is None:
        raise LabCommandError(f"{shard_name} has no primary right now (a failover may be under way); "
                              "see `sdlab status`")
    replicas = [m for m in members if m["name"] != leader and m.get("state") in _HEALTHY
                and not m.get("tags", {}).get("nofailover")]
    if not replicas:
        named = ", ".join(f"{m['name']} ({m.get('role')}, {m.get('state')})" for m in members) or "none"
        raise LabCommandError(f"{shard_name} has no healthy replica to switch over to (members: {named})")
    best = min(replicas, key=lambda m: (m.get("lag") if isinstance(m.get("lag"), int) else 1 << 62, m["name"]))
    return leader, best["name"]


def _members(state: LabState, shard_name: str) -> dict[str, str]:
    """Member name -> Patroni REST address of the shard ``shard_name`` names (any of its members)."""
    found = parse_member(shard_name)
    if found is None:
        raise LabCommandError(f"switchover takes a PostgreSQL shard (postgres-0, postgres-1, ...), not {shard_name!r}")
    shard = found[0]
    members = {name: address for name, c in state.components.items()
               if (p := parse_member(name)) is not None and p[0] == shard and (address := rest_address(c.env))}
    if not members:
        if member_name(shard, 0) not in state.components:
            raise LabCommandError(f"unknown component {shard_name!r}; running components: "
                                  f"{', '.join(state.components) or 'none'}")
        raise LabCommandError(f"postgres-{shard} has no replicas to switch over to; start the lab with "
                              "`sdlab up --replicas 1`")
    return members


def _cluster(client: httpx.Client, addresses: list[str]) -> dict:
    for address in addresses:  # any member answers for the whole cluster
        try:
            resp = client.get(f"http://{address}/cluster")
        except httpx.HTTPError:
            continue
        if resp.status_code == 200:
            return resp.json()
    return {}


def switchover(state: LabState, shard_name: str, timeout_s: float = 60.0) -> str:
    members = _members(state, shard_name)
    shard = f"postgres-{parse_member(shard_name)[0]}"
    with httpx.Client(timeout=timeout_s, trust_env=False) as client:
        leader, candidate = plan(_cluster(client, list(members.values())), shard)
        started = time.monotonic()
        try:
            resp = client.post(f"http://{members[leader]}/switchover", json={"leader": leader, "candidate": candidate})
        except httpx.HTTPError as exc:
            raise LabCommandError(f"Patroni on {leader} did not answer the switchover: {exc}") from None
        if resp.status_code != 200:
            raise LabCommandError(f"Patroni refused the switchover of {shard} to {candidate}: "
                                  f"{resp.status_code} {resp.text.strip()[:200]}")
        while time.monotonic() - started < timeout_s:
            now = {m["name"]: m for m in _cluster(client, list(members.values())).get("members", [])}
            if now.get(candidate, {}).get("role") in ("leader", "primary") and now[candidate].get("state") == "running":
                return (f"switched {shard} over in {time.monotonic() - started:.1f} s: {candidate} is the primary, "
                        f"{leader} follows it as a replica")
            time.sleep(0.2)
    raise LabCommandError(f"{shard}: Patroni accepted the switchover to {candidate} but it was not the running "
                          f"primary after {timeout_s:.0f} s; see `sdlab status` and `sdlab logs {candidate}`")
