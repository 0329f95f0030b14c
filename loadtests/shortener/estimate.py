"""How the shortener's measured costs size a fleet (``sdlab estimate shortener``).

A read is a redirect, a write a create. Redirects are served from the instances' caches and Redis,
so they size the instances, the balancer, Redis and Kafka (each redirect is a click event); creates
size the PostgreSQL primaries, which hold the links. PostgreSQL read replicas take what redirects
still ask of PostgreSQL (cache misses)."""

from __future__ import annotations

from services.lab.estimate.fleet import (
    PARTITION_RULE,
    POSTGRES,
    EstimateModel,
    Line,
    LineBuilder,
    Measured,
    Workload,
    memory_line,
)
from shortener.config import ShortenerSettings

ROW_OVERHEAD_B = 150  # tuple header, code, delete token, timestamps, and the code and URL-hash indexes
REDIS_KEY_OVERHEAD_B = 100  # a Redis string key's bookkeeping (dict entry, object headers, TTL)
TABLE = "links"


class ShortenerEstimate(EstimateModel):
    read_op = "redirect"
    write_op = "create"
    default_read_write = (100, 1)
    default_payload_bytes = 200  # a long URL
    measure_hint = "sdlab bench shortener"

    def costs(self, summary: dict) -> dict[str, dict]:
        """The benchmark records both costs (``redirect_cost``, ``create_cost``); a load run one of them."""
        found = {op: summary[f"{op}_cost"] for op in self.ops if (summary.get(f"{op}_cost") or {}).get("ops")}
        return found or super().costs(summary)

    def plan(self, work: Workload, measured: Measured) -> tuple[list[Line], list[str]]:
        redirect = measured.costs.get("redirect")
        both = {"redirect": work.peak("read"), "create": work.peak("write")}
        build = LineBuilder(work, measured)
        analytics = build.cpu("analytics consumers", both, r"shortener-analytics-\d+")
        brokers = build.brokers(both)
        storage = build.storage("PostgreSQL storage (links)", (TABLE,), TABLE, ROW_OVERHEAD_B, "creates")
        lines = [
            build.cpu("API instances", both, r"shortener-\d+"),
            build.balancer(both),
            analytics,
            build.cpu("PostgreSQL primaries (1-core shards)", {"create": both["create"]}, POSTGRES, "servers"),
            build.cpu("PostgreSQL read replicas (cache misses)", {"redirect": both["redirect"]}, POSTGRES, "servers",
                      minimum=0),
            build.statements(both),
            build.redis(both),
            brokers,
            build.partitions("click topic", analytics, "analytics consumer", brokers),
            storage,
        ]
        ttl = ShortenerSettings.model_fields["cache_ttl_s"].default
        cached = min(work.average("read") * ttl, work.average("write") * 86_400 * 365 * work.retention_years)
        lines.append(memory_line("Redis memory (cached links, at most)", cached,
                                 work.payload_bytes + REDIS_KEY_OVERHEAD_B, f"links read within the {ttl} s TTL",
                                 measured=False))
        assumptions = [
            f"Redis memory is an upper bound: every redirect within the cache TTL ({ttl} s) taken as a different "
            f"link, each {work.payload_bytes} B of URL + {REDIS_KEY_OVERHEAD_B} B of Redis bookkeeping (not measured).",
            PARTITION_RULE,
            "Read replicas also replay every primary's writes; that cost is not measured and not counted.",
        ]
        if not storage.measured:
            assumptions.append(f"Bytes per link row: {work.payload_bytes} B of URL + {ROW_OVERHEAD_B} B of row and "
                               f"index overhead (not measured: the run records no table sizes).")
        if redirect and not redirect.get("core_ms", {}).get("caddy"):
            assumptions.append("The redirect cost was measured straight at one instance (the benchmark's wrk skips "
                               "the balancer): the balancer line counts creates only. A load run through it "
                               "(`sdlab load shortener --open --rate 1000 --read-write 1:0`) measures its share.")
        return lines, assumptions
