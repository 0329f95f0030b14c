"""Each replicated member's role and replication lag, as Patroni's REST API reports them: one reading
for ``sdlab status``, ``sdlab top`` and the per-second timeline of a run."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx

from services.lab.contract import Check
from services.lab.replication.members import rest_address
from services.lab.state import ComponentStatus, LabState, RunningComponent

_ROLES = {"leader": "primary", "primary": "primary", "master": "primary", "standby_leader": "replica",
          "replica": "replica", "sync_standby": "replica (sync)", "quorum_standby": "replica (quorum)"}


@dataclass
class MemberLag:
    role: str  # primary | replica | replica (sync) ...
    lag_bytes: int | None = None  # None: unknown, or a primary
    lag_s: float | None = None


def roles_of(clusters: list[dict]) -> dict[str, tuple[str, int | None]]:
    """Patroni ``/cluster`` answers -> member name: (role, lag in bytes; None when unknown or a primary)."""
    found: dict[str, tuple[str, int | None]] = {}
    for cluster in clusters:
        for member in cluster.get("members", []):
            lag = member.get("lag")
            role = _ROLES.get(member.get("role", ""), member.get("role", "unknown"))
            found.setdefault(member["name"], (role, lag if isinstance(lag, int) and role != "primary" else None))
    return found


def lag_seconds(patroni: dict, now: datetime) -> float | None:
    """A replica's lag in seconds from its own ``/patroni`` answer: now minus the commit time of the last
    transaction it replayed (``pg_last_xact_replay_timestamp()``), and 0 once it has replayed all it
    received, else an idle primary would read as a lag growing by the second. None when unknown.

    Read on the replica rather than as the primary's ``pg_stat_replication.replay_lag``: Patroni's REST
    API already serves it (no SQL connection to each server), and replay_lag turns NULL once a
    replica has caught up and the primary is idle."""
    xlog = patroni.get("xlog") or {}
    received, replayed = xlog.get("received_location"), xlog.get("replayed_location")
    if not isinstance(received, int) or not isinstance(replayed, int):
        return None  # a primary (its xlog has a location only), or a server not running
    if replayed >= received:
        return 0.0
    try:
        at = datetime.fromisoformat(str(xlog.get("replayed_timestamp")))
    except ValueError:  # None: nothing replayed since it started
        return None
    return round(max(0.0, (now - at).total_seconds()), 3)


async def _get(client: httpx.AsyncClient, url: str) -> dict:
    try:
        resp = await client.get(url)
        return resp.json() if resp.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):  # a member down or starting: the others answer for it
        return {}


async def read(addresses: list[str], timeout_s: float = 1.0,
               transport: httpx.AsyncBaseTransport | None = None) -> dict[str, MemberLag]:
    """Every member's role and lag, asked of the Patroni REST APIs at ``addresses`` (host:port): the
    clusters from any member that answers, the seconds from each replica itself."""
    if not addresses:
        return {}
    async with httpx.AsyncClient(timeout=timeout_s, verify=False, trust_env=False, transport=transport) as client:
        clusters = list(await asyncio.gather(*(_get(client, f"http://{a}/cluster") for a in addresses)))
        roles = roles_of(clusters)
        urls = {m["name"]: m["api_url"] for c in clusters for m in c.get("members", [])
                if m.get("api_url") and roles[m["name"]][0] != "primary"}
        answers = await asyncio.gather(*(_get(client, url) for url in urls.values()))
    now = datetime.now(timezone.utc)
    seconds = {name: lag_seconds(answer, now) for name, answer in zip(urls, answers, strict=True)}
    return {name: MemberLag(role, lag, seconds.get(name)) for name, (role, lag) in roles.items()}


async def annotate(components: list[RunningComponent], rows: list[ComponentStatus], timeout_s: float = 1.0) -> None:
    """Fill in ``role``, ``lag_bytes`` and ``lag_s`` of every replicated member's row (from the members that answer)."""
    found = await read([a for c in components if c.ref.alive() and (a := rest_address(c.env))], timeout_s)
    for row in rows:
        if row.name in found:
            member = found[row.name]
            row.role, row.lag_bytes, row.lag_s = member.role, member.lag_bytes, member.lag_s


def replica_lags(found: dict[str, MemberLag]) -> dict[str, dict]:
    """A timeline second's ``replication`` field: per replica, its role and lag."""
    return {name: {"role": m.role, "lag_bytes": m.lag_bytes, "lag_s": m.lag_s}
            for name, m in sorted(found.items()) if m.role != "primary"}


class LagSampler:
    """Every replica's lag once a second while a run lasts, keyed by the run's second, in a thread of its
    own: a member a fault paused makes a request wait out its timeout, never the run's sampling loop.
    Inactive (no thread, no rows) on a stack without replicas."""

    def __init__(self, state: LabState, t0_wall: float, interval_s: float = 1.0, reader=read) -> None:
        # Every member, alive or not: a killed one refuses at once, a restarted one answers again.
        self.addresses = [a for c in state.components.values() if (a := rest_address(c.env))]
        self.t0_wall, self.interval_s, self.reader = t0_wall, interval_s, reader
        self.rows: dict[int, dict[str, dict]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replication-lag", daemon=True)

    @property
    def active(self) -> bool:
        return bool(self.addresses)

    def start(self) -> None:
        if self.active:
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            t = int(time.time() - self.t0_wall)
            self.rows[t] = replica_lags(asyncio.run(self.reader(self.addresses, 0.8 * self.interval_s)))
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


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


REJOINED_ROLES = ("replica", "sync_standby")  # member_role's names of a replica (the lab runs no quorum mode)


def failover_checks(name: str, summary: dict, rejoined_as: str | None) -> tuple[Check, Check]:
    """A failover experiment's checks of one variant's run (its summary, and what :func:`member_role`
    said of the killed primary after it): the fault schedule ran (kill, then restart), and the old
    primary rejoined as a replica."""
    errors = summary.get("fault_errors")
    ran = Check(f"{name}: the fault schedule ran (kill, then restart)",
                not errors and [x["action"] for x in summary.get("faults", [])] == ["kill", "restart"],
                str(errors or ""))
    rejoined = Check(f"{name}: the old primary rejoined as a replica", rejoined_as in REJOINED_ROLES, str(rejoined_as))
    return ran, rejoined
