"""Fixtures shared by every tier. The real stack starts once per session, on free ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.lab import Lab


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The whole stack (Redis, 2 PostgreSQL, Kafka, Caddy, 2 shortener instances, the aggregator)."""
    lab = Lab.create(tmp_path_factory.mktemp("lab"), port_start=21000)
    lab.run("up", timeout=180)
    try:
        yield lab
    finally:
        lab.run("down", check=False)
