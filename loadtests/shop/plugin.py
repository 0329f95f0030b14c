"""The shop's plug into the lab's engine (see :mod:`services.lab.contract`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from loadtests.shop import checks
from loadtests.shop.bench import bench
from loadtests.shop.commands import COMMANDS, FAULT_ACTIONS
from loadtests.shop.estimate import ShopEstimate
from loadtests.shop.experiments import EXPERIMENTS
from loadtests.shop.gauges import gauges
from loadtests.shop.seed import ADMIN, seed
from services.lab.contract import (
    Design,
    DesignPlugin,
    RunContext,
    Verification,
    completed,
)
from services.lab.errors import LabCommandError

HERE = Path(__file__).resolve().parent
CHECKOUT = "/api/v1/checkout"


def _int_option(spec, name: str, default: int) -> int:
    raw = spec.options.get(name)
    try:
        return default if raw is None else int(raw)
    except ValueError:
        raise LabCommandError(f"--option {name}={raw!r}: a whole number is needed") from None


def flash_stock(spec) -> int:
    """The flash product's stock: ``flash_share`` of the run's arrivals, else ``flash_stock``."""
    raw = spec.options.get("flash_share")
    if raw is None:
        return _int_option(spec, "flash_stock", 100)
    try:
        share = float(raw)
    except ValueError:
        raise LabCommandError(f"--option flash_share={raw!r}: a number is needed (0.25: a quarter of the arrivals)") from None
    if not 0 < share <= 1 or not spec.rate:
        raise LabCommandError("--option flash_share needs an open-loop rate and a share in (0, 1]")
    return max(1, round(share * spec.rate * spec.duration_s))


class ShopPlugin(DesignPlugin):
    design = Design(
        name="shop",
        app="shop.main:create_app",
        env_prefix="SHOP_",
        needs=("redis", "postgres", "kafka"),
        migrate_module="shop.migrate",
        workers=(("worker", "shop.consumers:create_app"), ("fulfillment", "shop.fulfillment:create_fulfillment")),
        services=(("payments", "shop.payments.main:create_app"),),
        port=8082,
        secrets=("TOKEN_SECRET", "LAB_PASSWORD"),
    )
    locustfile = HERE / "locustfile.py"
    k6_script = HERE / "load.k6.js"
    open_loop = "k6"
    experiments = EXPERIMENTS
    commands = COMMANDS
    fault_actions = FAULT_ACTIONS
    demo = {"rate": 50, "seed_count": 200}
    estimate_model = ShopEstimate()

    @staticmethod
    def seed(ctx: RunContext, spec, previous: dict | None = None) -> dict:
        """``seed_count`` products over the categories, one flash product (``--option flash_stock=N``,
        default 100, or ``--option flash_share=F``: F times the run's arrivals, rate x duration, so
        a shorter run sells out the same way) and ``--option users=N`` buyers (default 200), all through
        the API; products are created by an admin (``--option admin=NAME``, default ``admin``: one of the
        deployment's SHOP_ADMINS). On the same stack, the run before's catalog and buyers."""
        if previous is not None:
            return previous
        return asyncio.run(seed(ctx.base_url, spec.seed_count, _int_option(spec, "users", 200),
                                _int_option(spec, "stock", 1000), flash_stock(spec),
                                admin=spec.options.get("admin", ADMIN)))

    direct_checks = checks.DIRECT_CHECKS

    @staticmethod
    def verify(ctx: RunContext, result) -> Verification:
        if ctx.target is not None:  # the buyers' reads only: the other checks read the shards
            figures = checks.verify_through_api(ctx.base_url, ctx.out_dir)
            return Verification(figures, [checks.readable_check(figures)])
        figures = checks.verify(ctx.base_url, checks.part_url(ctx.state, "postgres-0"),
                                checks.part_url(ctx.state, f"{ctx.design}-payments-1"), ctx.out_dir,
                                dialable=ctx.state.dialable)
        return Verification(figures, checks.checks(figures))

    gauges = staticmethod(gauges)

    bench = staticmethod(bench)

    @staticmethod
    def cost_unit(spec, summary: dict) -> tuple[str, int]:
        """A checkout answered (paid, declined or refused) when the run is only checkouts (a flash sale
        too); a read when it is only catalog reads; otherwise any request."""
        if spec.read_weight == 0 or spec.options.get("scenario") == "flash-sale":
            return "checkout", completed(summary, CHECKOUT)
        if spec.write_weight == 0:
            return "read", completed(summary)
        return "request", completed(summary)


PLUGIN = ShopPlugin()
