"""The shop's experiments: each an interview trade-off, measured, one module each.

Run: ``sdlab experiment NAME``. Every run ends with the shop's invariants
(:mod:`loadtests.shop.checks`), whatever the experiment. The capacity curve is the engine's own
experiment, declared here.
"""

from __future__ import annotations

from loadtests.shop.failover import FAILOVER
from loadtests.shop.flash_sale import FLASH_SALE
from loadtests.shop.idempotency import IDEMPOTENCY
from loadtests.shop.outage import SHARD_OUTAGE
from loadtests.shop.reshard import RESHARD
from loadtests.shop.saga_failure import SAGA_FAILURE
from loadtests.shop.scatter_gather import SCATTER_GATHER
from loadtests.shop.shard_scaling import SHARD_SCALING
from services.lab.experiments.capacity import capacity_experiment
from services.lab.measure.load import LoadSpec

CAPACITY = capacity_experiment(
    design="shop",
    load=LoadSpec(design="shop", generator="k6", seed_count=500, read_weight=9, write_weight=1),
    question="Where is the knee of the shop's open-loop curve (browsing with 1 in 10 requests a checkout)?",
    slo_p99_ms=100.0,
    rates=(50, 100, 200, 300, 400, 600, 800, 1000, 1200, 1600, 2000),
)

EXPERIMENTS = [SAGA_FAILURE, RESHARD, CAPACITY, FLASH_SALE, SHARD_OUTAGE, IDEMPOTENCY, SCATTER_GATHER, SHARD_SCALING,
               FAILOVER]
