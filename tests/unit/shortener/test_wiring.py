"""The shortener's composition root: ``wire`` builds every part without connecting; the app serves them."""

from __future__ import annotations

from shortener.config import ShortenerSettings
from shortener.main import create_app, wire


def test_wire_builds_the_service_on_its_adapters_and_starts_analytics_only_when_enabled():
    w = wire(ShortenerSettings(id_scheme="counter"))
    assert w.resources == [w.redis, w.db, w.reads, w.listener, w.publisher]
    assert w.service.clicks is w.publisher and w.service.repo is not None
    quiet = wire(ShortenerSettings(analytics_enabled=False))
    assert quiet.resources == [quiet.redis, quiet.db, quiet.reads, quiet.listener]


def test_reads_go_to_the_replicas_a_multi_host_url_lists_unless_turned_off():
    one = "postgresql://postgres@127.0.0.1:5432/postgres"
    members = "postgresql://postgres@127.0.0.1:5432,127.0.0.1:5532/postgres?target_session_attrs=read-write"
    assert not wire(ShortenerSettings(database_urls=[one])).reads.routes_reads
    routed = wire(ShortenerSettings(database_urls=[members])).reads
    assert [p.url for p in routed.replicas] == [
        "postgresql://postgres@127.0.0.1:5432/postgres?target_session_attrs=standby",
        "postgresql://postgres@127.0.0.1:5532/postgres?target_session_attrs=standby"]
    assert not wire(ShortenerSettings(database_urls=[members], read_from_replicas=False)).reads.routes_reads


def test_the_app_serves_what_wire_built():
    app = create_app(ShortenerSettings())
    assert app.state.service is app.state.wiring.service
