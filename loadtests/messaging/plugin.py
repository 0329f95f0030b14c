"""Messaging's plug into the lab's engine (see :mod:`services.lab.contract`).

Open-loop load comes from its own generator (:mod:`loadtests.messaging.openloop`): every user
holds a WebSocket for the whole run and each message is timed from its scheduled send to its
delivery on the other members' sockets, which k6's per-iteration model does not express.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from loadtests.messaging import checks
from loadtests.messaging.bench import bench
from loadtests.messaging.estimate import MessagingEstimate
from loadtests.messaging.experiments import EXPERIMENTS
from loadtests.messaging.gauges import gauges
from loadtests.messaging.samples import ACK
from loadtests.messaging.seed import group_sizes, refresh, seed
from services.lab.contract import (
    Design,
    DesignPlugin,
    RunContext,
    Verification,
    completed,
)
from services.lab.errors import LabCommandError

HERE = Path(__file__).resolve().parent


class MessagingPlugin(DesignPlugin):
    design = Design(
        name="messaging",
        app="messaging.main:create_app",
        env_prefix="MESSAGING_",
        needs=("redis", "postgres", "kafka"),
        migrate_module="messaging.migrate",
        workers=(("fanout", "messaging.consumers:create_app"),),
        servers=(("gateway", "messaging.gateway"),),
        port=8081,
        secrets=("TOKEN_SECRET", "LAB_PASSWORD"),
    )
    locustfile = HERE / "locustfile.py"
    k6_script = None
    open_loop = "script"
    script_module = "loadtests.messaging.openloop"
    experiments = EXPERIMENTS
    estimate_model = MessagingEstimate()
    demo = {"rate": 100, "seed_count": 200}  # 200 users in pairs and groups, 100 messages/s

    @staticmethod
    def seed(ctx: RunContext, spec, previous: dict | None = None) -> dict:
        """``seed_count`` users, a pair for every two and one group per size in the ``group_sizes``
        option (see :mod:`loadtests.messaging.seed`); on the same stack, the run before's users with
        every conversation's last seq read again."""
        if previous is not None:
            return asyncio.run(refresh(ctx.base_url, previous))
        asked = spec.options.get("group_sizes")
        try:
            sizes = group_sizes(asked)
        except ValueError as exc:
            raise LabCommandError(f"--option group_sizes: {exc}") from None
        if asked is None:  # the default groups that fit in the users seeded
            sizes = tuple(s for s in sizes if s <= spec.seed_count)
        elif max(sizes, default=0) > spec.seed_count:
            raise LabCommandError(f"a group of {max(sizes)} needs at least {max(sizes)} users: add --seed {max(sizes)}")
        record = asyncio.run(seed(ctx.base_url, spec.seed_count, sizes))
        if ctx.target is not None:  # a deployment's gateways are behind its balancer: every client goes through it
            return record
        # The gateways' own addresses, for clients that must bypass the balancer (slow readers).
        record["gateway_ws_urls"] = [c.url.replace("http://", "ws://", 1) + "/ws"
                                     for name, c in sorted(ctx.state.components.items())
                                     if name.startswith(f"{ctx.design}-gateway-")]
        return record

    @staticmethod
    def verify(ctx: RunContext, result) -> Verification:
        figures = checks.verify(ctx.base_url, ctx.out_dir)
        return Verification(figures, checks.checks(figures))

    gauges = staticmethod(gauges)
    bench = staticmethod(bench)

    @staticmethod
    def cost_unit(spec, summary: dict) -> tuple[str, int]:
        """A message acknowledged to its sender (its deliveries to every member are part of its cost)."""
        return "message", completed(summary, ACK)


PLUGIN = MessagingPlugin()
