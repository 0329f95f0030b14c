"""The OpenAPI document states the rules the create handler enforces: every value its patterns
admit passes the domain, and what they refuse the handler refuses too."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.app import create_service_app
from services.errors import InvalidInput
from shortener.api import build_router
from shortener.domain import RESERVED, validate_alias, validate_url
from shortener.schemas import ALIAS_PATTERN, URL_PATTERN, refuse_undocumented_url
from tests.unit.shortener.fakes import make_service

URL_RE = re.compile(URL_PATTERN)
ALIAS_SCHEMA_RE = re.compile(ALIAS_PATTERN)


def create_body_schema(**settings_overrides: object) -> dict:
    service, _ = make_service(**settings_overrides)
    app = create_service_app(service="shortener", settings=service.settings, resources=[],
                             routers=[build_router(service)])
    doc = app.openapi()
    ref = doc["paths"]["/api/v1/links"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return doc["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_the_openapi_document_carries_the_create_rules():
    props = create_body_schema(max_url_length=4096)["properties"]
    assert props["url"]["pattern"] == URL_PATTERN
    assert props["url"]["maxLength"] == 4096
    assert props["alias"]["pattern"] == ALIAS_PATTERN  # beside anyOf: a pattern constrains strings only
    expires = next(s for s in props["expires_in"]["anyOf"] if s.get("type") == "integer")
    assert (expires["minimum"], expires["maximum"]) == (1, 315_360_000)


def test_the_openapi_document_lists_403_for_a_url_pointing_at_the_shortener():
    service, _ = make_service()
    app = create_service_app(service="shortener", settings=service.settings, resources=[],
                             routers=[build_router(service)])
    assert "403" in app.openapi()["paths"]["/api/v1/links"]["post"]["responses"]


@settings(max_examples=400, deadline=None)
@given(st.from_regex(URL_RE, fullmatch=True))  # as the validator reads `$`: the end
def test_every_url_the_pattern_admits_passes_the_domain(url):
    assert validate_url(url, frozenset(), 10_000) == url


@settings(max_examples=300, deadline=None)
@given(st.from_regex(re.compile(r"\[[0-9A-Fa-f:.]{2,45}\]"), fullmatch=True))
def test_a_bracketed_host_matches_the_pattern_exactly_when_it_is_an_ipv6_address(host):
    try:
        is_ipv6 = isinstance(ipaddress.ip_address(host[1:-1]), ipaddress.IPv6Address)
    except ValueError:
        is_ipv6 = False
    assert bool(URL_RE.fullmatch(f"http://{host}/")) == is_ipv6


@pytest.mark.parametrize("url", ["http://[::]/", "http://[::ffff:192.0.2.1]:8080/x", "http://[2001:db8::1]",
                                 "HTTPS://xn--bcher-kva.example:65535/a%20b?q=*#f", "http://a:/", "http://0/"])
def test_examples_of_urls_the_pattern_admits(url):
    assert URL_RE.fullmatch(url) and validate_url(url, frozenset()) == url


@pytest.mark.parametrize("url", ["http://bücher.example/", "http://example.com/é", "http://example.com:65536/",
                                 "http://[::1]junk/", "http://[v1.x]/", "http://[fe80::1%25eth0]/", "http://a%zz/"])
def test_urls_the_domain_takes_but_the_schema_does_not_are_refused_by_the_api(url):
    with pytest.raises(InvalidInput) as info:
        refuse_undocumented_url(url, 2048)
    assert info.value.code == "url_invalid"


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.from_regex(re.compile(r"[A-Za-z0-9_.-]{1,34}"), fullmatch=True),
                 st.sampled_from(sorted(RESERVED)).map(str.upper), st.sampled_from(sorted(RESERVED))))
def test_the_alias_pattern_is_the_domain_rule(alias):
    try:
        validate_alias(alias)
        valid = True
    except InvalidInput:
        valid = False
    assert bool(ALIAS_SCHEMA_RE.fullmatch(alias)) == valid
