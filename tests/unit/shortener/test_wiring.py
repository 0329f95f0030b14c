"""The shortener's composition root: ``wire`` builds every part without connecting; the app serves them."""

from __future__ import annotations

from shortener.config import ShortenerSettings
from shortener.main import create_app, wire


def test_wire_builds_the_service_on_its_adapters_and_starts_analytics_only_when_enabled():
    w = wire(ShortenerSettings(id_scheme="counter"))
    assert w.resources == [w.redis, w.db, w.listener, w.publisher]
    assert w.service.clicks is w.publisher and w.service.repo is not None
    quiet = wire(ShortenerSettings(analytics_enabled=False))
    assert quiet.resources == [quiet.redis, quiet.db, quiet.listener]


def test_the_app_serves_what_wire_built():
    app = create_app(ShortenerSettings())
    assert app.state.service is app.state.wiring.service
