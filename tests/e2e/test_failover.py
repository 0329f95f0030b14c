"""The short failover run CI affords: shop.failover's synchronous variant, a shard's primary killed
under checkouts. Nothing acknowledged may be lost (RPO 0), and writes must come back within the bound
Patroni's settings give."""

from __future__ import annotations

import json

from loadtests.shop.failover import RTO_BOUND_S
from tests.support.lab import Lab, free_port_block


def test_sync_replication_loses_no_acknowledged_order_when_a_primary_dies(tmp_path):
    used: set[int] = set()
    ports = {"SDLAB_POSTGRES_PORT": str(free_port_block(20, 25100, used)),
             "SDLAB_PATRONI_PORT": str(free_port_block(20, 25200, used)),
             "SDLAB_ETCD_PORT": str(free_port_block(2, 25300, used))}
    lab = Lab.create(tmp_path / "lab", port_start=25000, SDLAB_RESULTS=str(tmp_path / "results"), **ports)
    # 50 s: the kill at 15 s, the restart at 40 s, a window longer than the ~19 s a failover takes.
    result = lab.run("experiment", "shop.failover", "--variants", "sync", "--duration", "50", check=False, timeout=900)
    (run,) = (tmp_path / "results").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    variant = summary["variants"]["sync"]
    loss = variant["loss"]
    assert loss["acknowledged"] > 0 and loss["unreadable_acked_count"] == 0, loss
    extra = variant["extra"]
    assert extra["rto_s"] is not None and extra["rto_s"] <= RTO_BOUND_S, extra
    assert [f["action"] for f in variant["faults"]] == ["kill", "restart"]
    assert summary["passed"], [c for c in summary["checks"] if not c["passed"]]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert not (tmp_path / "lab" / "state.json").exists(), "the experiment takes its stacks down"
