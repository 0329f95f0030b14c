"""How messaging's measured costs size a fleet (``sdlab estimate messaging``).

Every operation is a message sent (acknowledged to its sender, stored once, delivered to every member's
socket, the sender's too). A message's cost was measured at some number of deliveries (the
benchmark's end-to-end run: pairs, two); a message to a bigger group costs the gateways one more
delivery per extra member, priced from the benchmark's fan-out ceiling (one gateway into a 1,000-member
group), and the fan-out workers in proportion. Gateways are sized by CPU and by the connections
they hold, whichever needs more; their memory by the measured KiB per idle connection."""

from __future__ import annotations

import math

from loadtests.messaging.samples import ACK, DELIVER
from services.lab.errors import LabCommandError
from services.lab.estimate.fleet import (
    PARTITION_RULE,
    POSTGRES,
    EstimateModel,
    Line,
    LineBuilder,
    Measured,
    Term,
    Workload,
    cores_line,
    memory_line,
    terms,
)

ROW_OVERHEAD_B = 120  # tuple header, ids, seq, sender, timestamps, and the (conversation, seq) index
PAIR_DELIVERIES = 2.0  # the benchmark's end-to-end run sends in pairs only: both members' sockets
ONLINE_SHARE = 0.1
TABLE = "messages"


def _deliveries(summary: dict) -> float | None:
    """Deliveries per message a run measured: its deliveries over its acknowledged messages."""
    if summary.get("e2e_deliveries_per_message"):
        return float(summary["e2e_deliveries_per_message"])
    endpoints = summary.get("endpoints") or {}
    acked = (endpoints.get(ACK) or {}).get("requests")
    delivered = (endpoints.get(DELIVER) or {}).get("requests")
    return delivered / acked if acked and delivered else None


class MessagingEstimate(EstimateModel):
    read_op = None
    write_op = "message"
    default_read_write = (0, 1)
    default_payload_bytes = 100  # the load generator's text_bytes
    measure_hint = "sdlab bench messaging"
    knobs = {"members": "deliveries per message, the sender's socket included (default: as measured)",
             "connections": "sockets held at peak (default: --daily-users × online)",
             "online": f"share of the daily users connected at peak (default {ONLINE_SHARE})",
             "per_gateway": "connections one gateway holds (default: as many as the benchmark held in one)"}

    def costs(self, summary: dict) -> dict[str, dict]:
        """The benchmark records the end-to-end run's cost by component; a load run its ``cost_per_op``.
        Either way with the deliveries per message it was measured at, when the run says."""
        by_component = summary.get("message_core_ms_by_component")
        if by_component:
            table = {"op": "message", "core_ms": by_component, "core_ms_total": summary.get("message_core_ms"),
                     "pg_statements": summary.get("message_pg_statements")}
        else:
            table = super().costs(summary).get("message")
        if table is None:
            return {}
        return {"message": {**table, "deliveries_per_message": _deliveries(summary)}}

    def plan(self, work: Workload, measured: Measured) -> tuple[list[Line], list[str]]:
        assumptions: list[str] = []
        rate = work.peak("write")
        facts = measured.facts
        measured_members = (measured.costs.get("message") or {}).get("deliveries_per_message")
        if not measured_members:
            measured_members = PAIR_DELIVERIES
            assumptions.append(f"Deliveries per message in the run: {PAIR_DELIVERIES:g}, as the benchmark's and the "
                               "capacity runs send (pairs only); this run's summary does not record the figure.")
        members = float(work.options.get("members", measured_members))
        extra = max(0.0, members - measured_members)
        u = work.utilisation
        per_message = {"message": rate}

        gateway_terms = terms(measured, per_message, r"messaging-gateway-\d+")
        if extra and facts.get("fanout_deliveries_per_s"):
            per_delivery = 1000 / facts["fanout_deliveries_per_s"]
            gateway_terms.append(Term("extra delivery", rate * extra, per_delivery))
            assumptions.append(f"An extra delivery costs a gateway 1000 ÷ {facts['fanout_deliveries_per_s']:,} "
                               f"deliveries/s = {per_delivery:.4f} core-ms: the fan-out benchmark taken as one full core "
                               "(offered more than one gateway delivered).")
        elif extra:
            gateway_terms = [Term("delivery", rate * members, t.per_op / measured_members if t.per_op is not None else None)
                             for t in gateway_terms]
            assumptions.append("Gateway cost scaled in proportion to the deliveries per message (no fan-out benchmark read).")
        # The fan-out workers' work is per delivery: the measured per-message cost over the deliveries it made.
        fanout_terms = [Term("delivery", rate * members, t.per_op / measured_members if t.per_op is not None else None)
                        for t in terms(measured, per_message, r"messaging-fanout-\d+")]
        if members != measured_members:
            assumptions.append(f"Fan-out workers' cost taken as per delivery: measured at {measured_members:g} deliveries "
                               f"per message, used at {members:g}.")
        cpu = cores_line("gateways", gateway_terms, u)
        connections = self._connections(work, assumptions)
        lines = [cpu] if connections is None else self._connection_lines(connections, cpu, work, facts, assumptions)
        build = LineBuilder(work, measured)
        workers = cores_line("fan-out workers", fanout_terms, u)
        brokers = build.brokers(per_message)
        storage = build.storage("PostgreSQL storage (messages)", (TABLE,), TABLE, ROW_OVERHEAD_B, "messages")
        lines += [
            build.cpu("API instances", per_message, r"messaging-\d+"),
            workers,
            build.balancer(per_message),
            build.cpu("PostgreSQL primaries (1-core shards)", per_message, POSTGRES, "servers"),
            build.statements(per_message),
            build.redis(per_message),
            brokers,
            build.partitions("message topic", workers, "fan-out worker", brokers),
            storage,
        ]
        if not storage.measured:
            assumptions.append(f"Bytes per message row: {work.payload_bytes} B of text + {ROW_OVERHEAD_B} B of row and "
                               "index overhead (not measured: the run records no table sizes).")
        assumptions.append(PARTITION_RULE)
        return lines, assumptions

    @staticmethod
    def _connections(work: Workload, assumptions: list[str]) -> float | None:
        if "connections" in work.options:
            return float(work.options["connections"])
        if work.daily_users is None:
            assumptions.append("Connections not sized: give --daily-users (with --option online=SHARE) or "
                               "--option connections=N.")
            return None
        online = float(work.options.get("online", ONLINE_SHARE))
        if online > 1:
            raise LabCommandError(f"--option online={online:g}: a share of the daily users, at most 1")
        assumptions.append(f"{online:g} of the daily users connected at peak (not measured).")
        return work.daily_users * online

    @staticmethod
    def _connection_lines(connections: float, cpu: Line, work: Workload, facts: dict,
                          assumptions: list[str]) -> list[Line]:
        held = float(work.options.get("per_gateway", facts.get("connections_held") or 0))
        kib = facts.get("kib_per_idle_connection")
        if not held or not kib:
            assumptions.append("Connections per gateway and memory per connection not in the runs read "
                               "(`sdlab bench messaging` measures them).")
            return [cpu]
        by_connections = math.ceil(connections / held)
        if "per_gateway" in work.options:
            assumptions.append(f"A gateway holds {held:,.0f} connections (--option per_gateway).")
        else:
            assumptions.append(f"A gateway holds {held:,.0f} idle connections: what the benchmark held in one process, "
                               "not a limit it found (--option per_gateway=N to plan another).")
        gateways = Line("gateways (CPU or connections, the larger)", max(cpu.count, by_connections), "processes",
                        f"CPU: {cpu.arithmetic}; connections: {connections:,.0f} ÷ {held:,.0f} a gateway = "
                        f"{by_connections}; the larger: {max(cpu.count, by_connections):.0f}", cores=cpu.cores)
        memory = memory_line("gateway memory (idle connections)", connections, kib * 1024, "connections", measured=True)
        return [gateways, memory]


def deliveries_figure(summary: dict) -> float | None:
    """For the benchmark's summary: deliveries per message of its end-to-end run."""
    found = _deliveries(summary)
    return round(found, 2) if found else None
