"""How the shop's measured costs size a fleet (``sdlab estimate shop``).

Storage counts the rows a checkout leaves in the shop's own tables (the payment provider's charges
are its own).

A read is a catalog read (a product list or one product), a write a checkout. Checkouts size the
PostgreSQL shards (the orders and the stock live there), the order worker, payments and fulfilment;
reads what they ask of PostgreSQL sizes the read replicas. The instances, the balancer, Redis and
Kafka carry both."""

from __future__ import annotations

from services.lab.estimate.fleet import (
    PARTITION_RULE,
    POSTGRES,
    EstimateModel,
    Line,
    LineBuilder,
    Measured,
    Workload,
)

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
        build = LineBuilder(work, measured)
        worker = build.cpu("order workers", writes, r"shop-worker-\d+")
        brokers = build.brokers(both)
        lines = [
            build.cpu("API instances", both, r"shop-\d+"),
            build.balancer(both),
            worker,
            build.cpu("payments", writes, r"shop-payments-\d+"),
            build.cpu("fulfilment", writes, r"shop-fulfillment-\d+"),
            build.cpu("PostgreSQL shards (1-core primaries)", writes, POSTGRES, "servers"),
            build.cpu("PostgreSQL read replicas", {"read": both["read"]}, POSTGRES, "servers", minimum=0),
            build.statements(both),
            build.redis(both),
            brokers,
            build.partitions("order events", worker, "order worker", brokers),
        ]
        assumptions = [PARTITION_RULE,
                       "Read replicas also replay every shard's writes; that cost is not measured and not counted.",
                       "Checkouts are spread evenly over the shards (no hot product); a flash sale's hot row "
                       "is a ceiling of its own (`sdlab bench shop`: hot_row_ceiling_per_s)."]
        storage = build.storage("PostgreSQL storage (orders)", KEPT, "orders", ROW_OVERHEAD_B, "checkouts")
        if not storage.measured:
            assumptions.append(f"Bytes per checkout: {work.payload_bytes} B of order data + {ROW_OVERHEAD_B} B of its "
                               "four rows and their indexes (not measured: the run records no table sizes).")
        return lines + [storage], assumptions
