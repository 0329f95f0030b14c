"""The app factory every design uses: lifespan-managed resources, metrics, health, JSON errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.http import install_error_handlers
from services.logging import configure_logging, get_logger
from services.metrics import HttpMetrics, MetricsMiddleware
from services.resources import Resource
from services.settings import ServiceSettings

log = get_logger(__name__)


async def run_checks(resources: Sequence[Resource], timeout_s: float) -> tuple[dict[str, str], list[str], list[str]]:
    """Run every health check concurrently. Returns (result by check, failed critical, failed other)."""
    named = [(r, name, check) for r in resources for name, check in r.health_checks().items()]

    async def one(check) -> str:
        try:
            await asyncio.wait_for(check(), timeout_s)
            return "ok"
        except asyncio.TimeoutError:
            return f"timeout after {timeout_s}s"
        except Exception as exc:  # a health check reports any failure, whatever its type
            return f"{type(exc).__name__}: {exc}"[:200]

    outcomes = await asyncio.gather(*(one(check) for _, _, check in named))
    results = {name: outcome for (_, name, _), outcome in zip(named, outcomes)}
    critical = [name for (r, name, _), o in zip(named, outcomes) if o != "ok" and r.critical]
    other = [name for (r, name, _), o in zip(named, outcomes) if o != "ok" and not r.critical]
    return results, critical, other


async def readiness(service: str, instance: str, resources: Sequence[Resource], timeout_s: float) -> tuple[int, dict]:
    """The ``/readyz`` answer: 503 when a critical check failed, ``degraded`` when another did."""
    checks, critical, other = await run_checks(resources, timeout_s)
    status = "unready" if critical else ("degraded" if other else "ready")
    body = {"status": status, "service": service, "instance": instance, "checks": checks, "failed": critical + other}
    return (503 if critical else 200), body


@asynccontextmanager
async def running(resources: Sequence[Resource]) -> AsyncIterator[None]:
    """Start ``resources`` in order; stop the ones that started, in reverse, whatever happens."""
    started: list[Resource] = []
    try:
        for resource in resources:
            await resource.start()
            started.append(resource)
        yield
    finally:
        for resource in reversed(started):
            try:
                await resource.stop()
            except Exception:  # keep stopping the others; the failure is logged
                log.exception("resource_stop_failed", resource=resource.name)


def create_service_app(
    *,
    service: str,
    settings: ServiceSettings,
    resources: Sequence[Resource] = (),
    routers: Sequence[APIRouter] = (),
    middleware: Sequence[Middleware] = (),
    version: str = "0.1.0",
    description: str = "",
) -> FastAPI:
    """Build a FastAPI app with the lab's conventions.

    Resources start in order and stop in reverse. ``middleware`` sits inside the metrics
    middleware, so a fast path placed there is still measured.
    """
    metrics = HttpMetrics(service)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        configure_logging(service, settings.instance_id, settings.log_level, settings.log_format)
        try:
            async with running(resources):
                log.info("service_started", resources=[r.name for r in resources])
                yield
        finally:
            log.info("service_stopped")

    app = FastAPI(
        title=service,
        version=version,
        description=description,
        lifespan=lifespan,
        middleware=list(middleware),
    )
    app.state.metrics = metrics
    app.state.settings = settings
    install_error_handlers(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "alive", "service": service, "instance": settings.instance_id}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        status, body = await readiness(service, settings.instance_id, resources, settings.readiness_timeout_s)
        return JSONResponse(body, status_code=status)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(_: Request) -> Response:
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    # Included last: a design's catch-all route (the shortener's /{code}) must not shadow these.
    for router in routers:
        app.include_router(router)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
