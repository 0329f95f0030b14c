"""Lifespan-managed resources: a client or background task the app opens at start and closes at stop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

HealthCheck = Callable[[], Awaitable[None]]


class Resource(Protocol):
    """Something with a start, a stop and health checks; checks raise when the part is unreachable.

    ``critical`` says whether the service can serve at all without it: a failed critical check
    makes ``/readyz`` answer 503 (the load balancer stops sending traffic); a failed non-critical
    one is reported as ``degraded`` with 200, because the service can still answer, for example
    redirects from cache while PostgreSQL is down.
    """

    name: str
    critical: bool

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def health_checks(self) -> dict[str, HealthCheck]: ...
