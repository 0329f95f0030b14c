"""The shortener's experiments: each an interview trade-off, measured, one module each (as the shop's).

Run: ``sdlab experiment NAME``. The capacity curve is the engine's own experiment, declared here.
"""

from __future__ import annotations

from loadtests.shortener.cache import CACHE
from loadtests.shortener.db_outage import DB_OUTAGE
from loadtests.shortener.ids import IDS
from loadtests.shortener.instance_failure import INSTANCE_FAILURE
from loadtests.shortener.read_replicas import READ_REPLICAS
from loadtests.shortener.read_your_writes import READ_YOUR_WRITES
from loadtests.shortener.redis_outage import REDIS_OUTAGE
from loadtests.shortener.scale_out import SCALE_OUT
from loadtests.shortener.stampede import STAMPEDE
from services.lab.experiments.capacity import capacity_experiment
from services.lab.measure.load import LoadSpec

# The capacity curve: the engine's experiment, given this design's mix and SLO.
CAPACITY = capacity_experiment(
    design="shortener",
    load=LoadSpec(design="shortener", read_weight=10, write_weight=1),
    question="What happens at 10x traffic? Redirects and creates (10:1) at rising open-loop rates, two instances: "
             "the highest rate whose p99 stays under 50 ms.",
)

EXPERIMENTS = [CACHE, REDIS_OUTAGE, INSTANCE_FAILURE, DB_OUTAGE, IDS, STAMPEDE, SCALE_OUT, READ_REPLICAS, READ_YOUR_WRITES,
               CAPACITY]
