"""How the shop's measured costs size a fleet (``sdlab estimate shop``).

Storage counts the rows a checkout leaves in the shop's own tables (the payment provider's charges
are its own).

A read is a catalog read (a product list or one product), a write a checkout. Checkouts size the
PostgreSQL shards (the orders and the stock live there), the order worker, payments and fulfilment;
reads what they ask of PostgreSQL sizes the read replicas. The instances, the balancer, Redis and
Kafka carry both."""

from __future__ import annotations

from services.lab.estimate import (EstimateModel, Line, Measured, Workload, bytes_per_write, cores_line,
                                   statement_terms, statements_line, storage_line, terms)

# A checkout leaves four rows that nothing prunes: the order, its item, its reservation and its
# idempotency key (which stores the answer to replay); headers, ids, timestamps and their indexes.
ROW_OVERHEAD_B = 1000
KEPT = ("orders", "order_items", "reservations", "idempotency_keys")


class ShopEstimate(EstimateModel):
    read_op = "read"
    write_op = "checkout"
    default_read_write = (10, 1)
    default_payload_bytes = 100  # an order's own data (address, totals) beyond the ids
    measure_hint = "sdlab bench shop"

    def costs(self, summary: dict) -> dict[str, dict]:
        """The benchmark records a checkout's cost per shard count (the most shards taken) and a
        read's; a load run one of them."""
        found = {}
        runs = summary.get("checkout_runs") or {}
        if runs:
            most = max(runs, key=int)
            if (runs[most].get("cost") or {}).get("ops"):
                found["checkout"] = runs[most]["cost"]
        if (summary.get("read_cost") or {}).get("ops"):
            found["read"] = summary["read_cost"]
        return found or super().costs(summary)

    def plan(self, work: Workload, measured: Measured) -> tuple[list[Line], list[str]]:
        both = {"read": work.peak("read"), "checkout": work.peak("write")}
        writes = {"checkout": both["checkout"]}
        u = work.utilisation
        worker = cores_line("order workers", terms(measured, writes, r"shop-worker-\d+"), u)
        brokers = cores_line("Kafka brokers", terms(measured, both, "kafka"), u, unit="brokers")
        lines = [
            cores_line("API instances", terms(measured, both, r"shop-\d+"), u),
            cores_line("load balancer (Caddy)", terms(measured, both, "caddy"), u),
            worker,
            cores_line("payments", terms(measured, writes, r"shop-payments-\d+"), u),
            cores_line("fulfilment", terms(measured, writes, r"shop-fulfillment-\d+"), u),
            cores_line("PostgreSQL shards (1-core primaries)", terms(measured, writes, r"postgres-\d+"), u, "servers"),
            cores_line("PostgreSQL read replicas", terms(measured, {"read": both["read"]}, r"postgres-\d+"), u,
                       "servers", minimum=0),
            statements_line("PostgreSQL statements", statement_terms(measured, both)),
            cores_line("Redis (CPU)", terms(measured, both, "redis"), u, unit="servers"),
            brokers,
            Line("Kafka partitions (order events)", max(worker.count, brokers.count), "partitions",
                 f"one per order worker ({worker.count:.0f}), at least one per broker ({brokers.count:.0f})",
                 measured=False),
        ]
        assumptions = ["Kafka partitions follow a rule, not a measurement: a consumer group reads a partition with "
                       "one consumer.",
                       "Read replicas also replay every shard's writes; that cost is not measured and not counted.",
                       "Checkouts are spread evenly over the shards (no hot product); a flash sale's hot row "
                       "is a ceiling of its own (`sdlab bench shop`: hot_row_ceiling_per_s)."]
        found = bytes_per_write(measured.facts, KEPT, "orders")
        if found:
            row, how = found
        else:
            row, how = work.payload_bytes + ROW_OVERHEAD_B, ""
            assumptions.append(f"Bytes per checkout: {work.payload_bytes} B of order data + {ROW_OVERHEAD_B} B of its "
                               "four rows and their indexes (not measured: the run records no table sizes).")
        storage = storage_line("PostgreSQL storage (orders)", work.average("write"), row, work.retention_years,
                               bool(found), what="checkouts")
        if how:
            storage.arithmetic = f"{how}; {storage.arithmetic}"
        return lines + [storage], assumptions
