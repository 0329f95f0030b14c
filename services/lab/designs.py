"""The designs the lab can run, and what each needs from the stack."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.lab.plugin import DesignPlugin


@dataclass(frozen=True)
class Design:
    name: str
    app: str  # an importable ``module:create_app`` factory for uvicorn --factory
    env_prefix: str
    needs: tuple[str, ...]  # parts of the stack: "redis", "postgres", "kafka"
    migrate_module: str | None = None  # run with ``python -m`` before the instances start
    # Background processes (not behind the balancer), each (name, ``module:create_app``).
    workers: tuple[tuple[str, str], ...] = ()
    # Balanced servers besides the app, each (role, module) run as ``python -m module --host H --port P``
    # with as many copies as the app has instances, behind the balancer as <DESIGN>_<ROLE>_UPSTREAMS.
    # A module is used where an ASGI app would cost too much (WebSocket gateways).
    servers: tuple[tuple[str, str], ...] = ()
    # Internal HTTP services the design's processes call (one copy each, not behind the balancer),
    # each (name, ``module:create_app``); their URL reaches every process as <PREFIX><NAME>_URL.
    services: tuple[tuple[str, str], ...] = ()
    # The load-test package's plugin (``module:attribute``), see :mod:`services.lab.plugin`.
    plugin: str | None = None
    port: int = 8080  # the public port (the load balancer's), unless SDLAB_<DESIGN>_PORT says otherwise
    instances: int = 2  # app instances behind the balancer, unless SDLAB_<DESIGN>_INSTANCES says otherwise


DESIGNS: dict[str, Design] = {
    "shortener": Design(
        name="shortener",
        app="shortener.main:create_app",
        env_prefix="SHORTENER_",
        needs=("redis", "postgres", "kafka"),
        migrate_module="shortener.migrate",
        workers=(("analytics", "shortener.consumers:create_app"),),
        plugin="loadtests.shortener.plugin:PLUGIN",
        port=8080,
    ),
    "messaging": Design(
        name="messaging",
        app="messaging.main:create_app",
        env_prefix="MESSAGING_",
        needs=("redis", "postgres", "kafka"),
        migrate_module="messaging.migrate",
        workers=(("fanout", "messaging.consumers:create_app"),),
        servers=(("gateway", "messaging.gateway"),),
        plugin="loadtests.messaging.plugin:PLUGIN",
        port=8081,
    ),
    "shop": Design(
        name="shop",
        app="shop.main:create_app",
        env_prefix="SHOP_",
        needs=("redis", "postgres", "kafka"),
        migrate_module="shop.migrate",
        workers=(("worker", "shop.consumers:create_app"), ("fulfillment", "shop.fulfillment:create_fulfillment")),
        services=(("payments", "shop.payments.main:create_app"),),
        plugin="loadtests.shop.plugin:PLUGIN",
        port=8082,
    ),
}


def plugin_for(name: str) -> "DesignPlugin":
    """The design's load-test plugin; a design without one is a one-line error upstream."""
    from services.lab.errors import LabCommandError

    design = resolve([name])[0]
    if design.plugin is None:
        raise LabCommandError(f"design {name!r} has no load tests yet")
    module, _, attr = design.plugin.partition(":")
    return getattr(importlib.import_module(module), attr)


def resolve(names: list[str]) -> list[Design]:
    """The designs named, or all of them; an unknown name is a one-line error upstream."""
    from services.lab.errors import LabCommandError

    if not names:
        return list(DESIGNS.values())
    unknown = [n for n in names if n not in DESIGNS]
    if unknown:
        raise LabCommandError(
            f"unknown design {unknown[0]!r}; choose from: {', '.join(DESIGNS)}"
        )
    return [DESIGNS[n] for n in dict.fromkeys(names)]
