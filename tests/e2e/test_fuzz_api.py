"""Fuzz the shortener's OpenAPI spec against a real instance: no 5xx, answers match the schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings


@pytest.fixture(scope="session")
def shortener_schema(lab):
    instance = lab.state["components"]["shortener-1"]["url"]
    return schemathesis.openapi.from_url(f"{instance}/openapi.json")


schema = schemathesis.pytest.from_fixture("shortener_schema")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms(case):
    case.call_and_validate()
