"""Each replicated member's role and replication lag, as Patroni's REST API reports them (``sdlab status``)."""

from __future__ import annotations

import asyncio

import httpx

from services.lab.replicated_stack import rest_address
from services.lab.state import ComponentStatus, LabState, RunningComponent

_ROLES = {"leader": "primary", "primary": "primary", "master": "primary", "standby_leader": "replica",
          "replica": "replica", "sync_standby": "replica (sync)", "quorum_standby": "replica (quorum)"}


def roles_of(clusters: list[dict]) -> dict[str, tuple[str, int | None]]:
    """Patroni ``/cluster`` answers -> member name: (role, lag in bytes; None when unknown or a primary)."""
    found: dict[str, tuple[str, int | None]] = {}
    for cluster in clusters:
        for member in cluster.get("members", []):
            lag = member.get("lag")
            role = _ROLES.get(member.get("role", ""), member.get("role", "unknown"))
            found.setdefault(member["name"], (role, lag if isinstance(lag, int) and role != "primary" else None))
    return found


async def _cluster(client: httpx.AsyncClient, address: str) -> dict:
    try:
        resp = await client.get(f"http://{address}/cluster")
        return resp.json() if resp.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):  # a member down or starting: the others answer for it
        return {}


async def annotate(components: list[RunningComponent], rows: list[ComponentStatus], timeout_s: float = 1.0) -> None:
    """Fill in ``role`` and ``lag_bytes`` of every replicated member's row (from the members that answer)."""
    addresses = [a for c in components if c.ref.alive() and (a := rest_address(c.env))]
    if not addresses:
        return
    async with httpx.AsyncClient(timeout=timeout_s, verify=False, trust_env=False) as client:
        clusters = await asyncio.gather(*(_cluster(client, a) for a in addresses))
    roles = roles_of(list(clusters))
    for row in rows:
        if row.name in roles:
            row.role, row.lag_bytes = roles[row.name]


def member_role(state: LabState, name: str) -> str | None:
    """``name``'s role now as Patroni names it (``leader``, ``replica``, ``sync_standby``...), asked of
    any member that answers; None when none does or the member is unknown. For experiments' checks."""
    with httpx.Client(timeout=2, trust_env=False) as client:
        for c in state.components.values():
            address = rest_address(c.env)
            if address is None:
                continue
            try:
                members = client.get(f"http://{address}/cluster").json().get("members", [])
            except (httpx.HTTPError, ValueError):
                continue
            for m in members:
                if m["name"] == name:
                    return m.get("role")
    return None
