"""The shop's plug into the lab's engine (see :mod:`services.lab.plugin`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from loadtests.shop import checks
from loadtests.shop.commands import COMMANDS, FAULT_ACTIONS
from loadtests.shop.experiments import EXPERIMENTS
from loadtests.shop.gauges import gauges
from loadtests.shop.seed import seed
from services.lab.errors import LabCommandError
from services.lab.plugin import RunContext, Verification

HERE = Path(__file__).resolve().parent


def _int_option(spec, name: str, default: int) -> int:
    raw = spec.options.get(name)
    try:
        return default if raw is None else int(raw)
    except ValueError:
        raise LabCommandError(f"--option {name}={raw!r}: a whole number is needed") from None


class ShopPlugin:
    name = "shop"
    locustfile = HERE / "locustfile.py"
    k6_script = HERE / "load.k6.js"
    open_loop = "k6"
    experiments = EXPERIMENTS
    commands = COMMANDS
    fault_actions = FAULT_ACTIONS
    demo = {"rate": 50, "seed_count": 200}

    @staticmethod
    def seed(ctx: RunContext, spec, previous: dict | None = None) -> dict:
        """``seed_count`` products over the categories, one flash product (``--option flash_stock=N``,
        default 100) and ``--option users=N`` buyers (default 200). On the same stack, the run
        before's catalog and buyers."""
        if previous is not None:
            return previous
        return asyncio.run(seed(ctx.base_url, spec.seed_count, _int_option(spec, "users", 200),
                                _int_option(spec, "stock", 1000), _int_option(spec, "flash_stock", 100)))

    @staticmethod
    def verify(ctx: RunContext, result) -> Verification:
        figures = checks.verify(ctx.base_url, checks.part_url(ctx.state, "postgres-0"),
                                checks.part_url(ctx.state, f"{ctx.design}-payments-1"), ctx.out_dir)
        return Verification(figures, checks.checks(figures))

    gauges = staticmethod(gauges)

    @staticmethod
    def bench(settings, options, say):
        raise LabCommandError("sdlab bench shop is not built yet")


PLUGIN = ShopPlugin()
