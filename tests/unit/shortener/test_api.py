"""The HTTP surface, wired as ``shortener/main.py`` wires it but with in-memory fakes (no servers)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import httpx
import pytest
from starlette.middleware import Middleware

from services.app import create_service_app
from services.forwarded import client_address, trusted_networks
from shortener.api import RedirectFastPath, build_router
from shortener.domain import LinkClicked
from tests.unit.shortener.fakes import Fakes, link, make_service, utcnow

URL = "https://example.com/article?id=42"
LINKS = "/api/v1/links"


class Api:
    def __init__(self, client: httpx.AsyncClient, service, fakes: Fakes) -> None:
        self.client, self.service, self.fakes = client, service, fakes


@pytest.fixture
async def make_api() -> AsyncIterator[Callable[..., Api]]:
    clients: list[httpx.AsyncClient] = []

    def build(**settings_overrides: object) -> Api:
        service, fakes = make_service(**settings_overrides)
        app = create_service_app(
            service="shortener",
            settings=service.settings,
            resources=[],
            routers=[build_router(service)],
            middleware=[Middleware(RedirectFastPath, service=service)],
        )
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        clients.append(client)
        return Api(client, service, fakes)

    yield build
    for client in clients:
        await client.aclose()


@pytest.fixture
def api(make_api) -> Api:
    return make_api(public_url="https://sho.rt")


def error_of(resp: httpx.Response) -> dict:
    body = resp.json()
    assert set(body) == {"error"}
    assert body["error"]["status"] == resp.status_code
    return body["error"]


# --- create ----------------------------------------------------------------------------------

async def test_create_returns_201_with_the_link(api):
    resp = await api.client.post(LINKS, json={"url": URL})
    assert resp.status_code == 201
    body = resp.json()
    assert body["url"] == URL
    assert re.fullmatch(r"[0-9A-Za-z]{7}", body["code"])
    assert body["short_url"] == f"https://sho.rt/{body['code']}"
    assert body["expires_at"] is None
    assert body["delete_token"]


async def test_create_with_alias_and_expiry(api):
    resp = await api.client.post(LINKS, json={"url": URL, "alias": "my-link", "expires_in": 3600})
    assert resp.status_code == 201
    assert resp.json()["code"] == "my-link"
    assert resp.json()["expires_at"] is not None


async def test_create_of_a_known_url_returns_200_with_the_same_code_and_no_token(api):
    first = (await api.client.post(LINKS, json={"url": URL})).json()
    again = await api.client.post(LINKS, json={"url": URL})
    assert again.status_code == 200
    assert again.json()["code"] == first["code"]
    assert again.json()["delete_token"] is None


@pytest.mark.parametrize(("body", "code", "names"), [
    ({"url": "javascript:alert(1)"}, "url_scheme", "javascript"),
    ({"url": URL, "alias": "no spaces"}, "alias_invalid", "alias"),
    ({"url": URL, "alias": "healthz"}, "alias_reserved", "healthz"),
    ({"url": URL, "expires_in": 0}, "invalid_input", "expires_in"),
    ({"alias": "my-link"}, "invalid_input", "url"),
    ({"url": "http://bücher.example/"}, "url_invalid", "ASCII"),
    ({"url": "http://example.com:70000/"}, "url_invalid", "Port out of range"),
    ({"url": "http://[::1/"}, "url_invalid", "IPv6"),
    ({"url": "http://x[::1]junk/"}, "url_invalid", "IPv6"),
])
async def test_invalid_create_is_422_with_a_message_naming_the_problem(api, body, code, names):
    resp = await api.client.post(LINKS, json=body)
    assert resp.status_code == 422
    error = error_of(resp)
    assert error["code"] == code
    assert names in error["message"]
    assert api.fakes.repo.rows == {}


async def test_url_pointing_at_the_shortener_is_403_naming_its_host(api):
    resp = await api.client.post(LINKS, json={"url": "https://sho.rt/abc1234"})
    assert resp.status_code == 403
    error = error_of(resp)
    assert error["code"] == "url_self" and "sho.rt" in error["message"]
    assert api.fakes.repo.rows == {}


async def test_url_at_the_configured_limit_is_accepted_and_one_more_is_422(make_api):
    api = make_api(max_url_length=100)
    base = "https://example.com/"
    assert (await api.client.post(LINKS, json={"url": base + "a" * (100 - len(base))})).status_code == 201
    resp = await api.client.post(LINKS, json={"url": base + "a" * (101 - len(base))})
    assert resp.status_code == 422 and error_of(resp)["code"] == "url_too_long"


@pytest.mark.parametrize("expires_in", [True, "3600", 3600.5])
async def test_expires_in_is_a_json_integer_not_a_boolean_or_a_string(api, expires_in):
    resp = await api.client.post(LINKS, json={"url": URL, "expires_in": expires_in})
    assert resp.status_code == 422 and "expires_in" in error_of(resp)["message"]


async def test_expires_in_may_be_an_integral_float(api):
    assert (await api.client.post(LINKS, json={"url": URL, "expires_in": 3600.0})).status_code == 201


async def test_missing_url_message_says_the_field_is_required(api):
    resp = await api.client.post(LINKS, json={})
    assert error_of(resp)["message"] == "url: Field required"


async def test_taken_alias_is_409(api):
    await api.client.post(LINKS, json={"url": URL, "alias": "my-link"})
    resp = await api.client.post(LINKS, json={"url": "https://other.example/", "alias": "my-link"})
    assert resp.status_code == 409
    assert error_of(resp)["code"] == "alias_taken"


async def test_rate_limited_create_is_429_with_retry_after(api):
    api.fakes.limiter.wait = 2.5
    resp = await api.client.post(LINKS, json={"url": URL})
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "3"
    assert error_of(resp)["code"] == "rate_limited"


async def test_create_while_the_database_is_down_is_503_with_retry_after(api):
    api.fakes.repo.down = True
    resp = await api.client.post(LINKS, json={"url": URL})
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "2"
    assert error_of(resp)["code"] == "database_unavailable"


async def test_rate_limit_key_is_the_forwarded_client_when_the_peer_is_a_trusted_proxy(api):
    # httpx's ASGITransport presents the peer as 127.0.0.1, a trusted proxy in these settings.
    await api.client.post(LINKS, json={"url": URL}, headers={"X-Forwarded-For": "198.51.100.4, 203.0.113.9"})
    assert api.fakes.limiter.clients == ["203.0.113.9"]


async def test_rate_limit_key_ignores_forwarded_for_from_an_untrusted_peer(make_api):
    api = make_api(trusted_proxies=["10.0.0.0/8"])
    await api.client.post(LINKS, json={"url": URL}, headers={"X-Forwarded-For": "203.0.113.9"})
    assert api.fakes.limiter.clients == ["127.0.0.1"]


# --- redirect --------------------------------------------------------------------------------

async def test_get_code_redirects_with_302(api):
    code = (await api.client.post(LINKS, json={"url": URL})).json()["code"]
    resp = await api.client.get(f"/{code}")
    assert resp.status_code == 302
    assert resp.headers["location"] == URL
    assert resp.content == b""


async def test_head_code_redirects_too(api):
    api.fakes.repo.add(link("abc1234", URL))
    resp = await api.client.head("/abc1234")
    assert resp.status_code == 302
    assert resp.headers["location"] == URL


async def test_redirect_counts_a_click(api):
    api.fakes.repo.add(link("abc1234", URL))
    await api.client.get("/abc1234")
    await api.client.get("/abc1234")
    assert api.fakes.clicks.counts == {"abc1234": 2}


async def test_redirect_status_301_when_configured(make_api):
    api = make_api(redirect_status=301)
    api.fakes.repo.add(link("abc1234", URL))
    resp = await api.client.get("/abc1234")
    assert resp.status_code == 301
    assert resp.headers["location"] == URL


async def test_unknown_code_is_404_json(api):
    resp = await api.client.get("/nosuch1")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/json"
    assert error_of(resp)["code"] == "link_not_found"
    assert api.fakes.clicks.counts == {}


@pytest.mark.parametrize("path", ["/ab", "/favicon.ico", "/has.dot"])
async def test_path_that_cannot_be_a_code_is_404_json(api, path):
    resp = await api.client.get(path)
    assert resp.status_code == 404
    assert error_of(resp)["code"] == "link_not_found"
    assert api.fakes.repo.gets == 0


async def test_expired_code_is_410(api):
    api.fakes.repo.add(link("old1234", URL, expires_at=utcnow() - timedelta(seconds=1)))
    resp = await api.client.get("/old1234")
    assert resp.status_code == 410
    assert error_of(resp)["code"] == "link_expired"


async def test_redirect_while_the_database_is_down_is_503_with_retry_after(api):
    api.fakes.repo.down = True
    resp = await api.client.get("/abc1234")
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "2"
    assert error_of(resp)["code"] == "database_unavailable"


async def test_head_error_has_no_body(api):
    resp = await api.client.head("/nosuch1")
    assert resp.status_code == 404
    assert resp.content == b""


# --- the service's own paths are not codes ---------------------------------------------------

async def test_healthz_answers_as_itself(api):
    resp = await api.client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json()["status"] == "alive"
    assert api.fakes.repo.gets == 0


async def test_readyz_answers_as_itself(api):
    resp = await api.client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json()["status"] == "ready"
    assert api.fakes.repo.gets == 0


async def test_metrics_answers_as_itself(api):
    resp = await api.client.get("/metrics")
    assert resp.status_code == 200
    assert "http_requests_total" in resp.text
    assert api.fakes.repo.gets == 0


async def test_docs_answer_as_themselves(api):
    resp = await api.client.get("/docs")
    assert resp.status_code == 200
    assert "swagger" in resp.text.lower()
    assert api.fakes.repo.gets == 0


async def test_openapi_answers_as_itself(api):
    resp = await api.client.get("/openapi.json")
    assert resp.status_code == 200
    assert {"/api/v1/links", "/{code}"} <= set(resp.json()["paths"])
    assert api.fakes.repo.gets == 0


async def test_metrics_count_redirects_under_the_code_route(api):
    api.fakes.repo.add(link("abc1234", URL))
    for _ in range(3):
        await api.client.get("/abc1234")
    text = (await api.client.get("/metrics")).text
    assert re.search(r'^http_requests_total\{[^}]*route="/\{code\}"[^}]*status="302"[^}]*\} 3\.0$', text, re.M)
    assert 'route="/abc1234"' not in text


# --- read and delete -------------------------------------------------------------------------

async def test_get_link_returns_clicks_from_the_database(api):
    api.fakes.repo.add(link("abc1234", URL))
    await api.fakes.repo.apply_clicks(LinkClicked("b1", "i1", {"abc1234": 4}))
    resp = await api.client.get(f"{LINKS}/abc1234")
    assert resp.status_code == 200
    body = resp.json()
    assert (body["code"], body["url"], body["clicks"]) == ("abc1234", URL, 4)
    assert body["short_url"] == "https://sho.rt/abc1234"


async def test_a_create_hands_out_its_commit_lsn_and_a_read_can_ask_to_see_it(api):
    api.fakes.repo.lsn = "23803720"  # a database with replicas
    created = await api.client.post(LINKS, json={"url": URL})
    assert created.status_code == 201 and created.headers["X-Commit-LSN"] == "23803720"
    again = await api.client.post(LINKS, json={"url": URL})
    assert again.status_code == 200 and "X-Commit-LSN" not in again.headers  # nothing was written
    code = created.json()["code"]
    assert (await api.client.get(f"{LINKS}/{code}", headers={"X-Read-After-LSN": "23803720"})).status_code == 200
    assert (await api.client.get(f"{LINKS}/{code}", headers={"X-Read-From": "primary"})).status_code == 200
    assert (await api.client.get(f"{LINKS}/{code}")).status_code == 200
    assert [(c.after_lsn, c.primary) for c in api.fakes.repo.consistencies] == [
        (23803720, False), (None, True), (None, False)]


async def test_without_replicas_a_create_has_no_commit_lsn(api):
    assert "X-Commit-LSN" not in (await api.client.post(LINKS, json={"url": URL})).headers


@pytest.mark.parametrize("headers", [{"X-Read-After-LSN": "yesterday"}, {"X-Read-After-LSN": "0/16B3748"},
                                     {"X-Read-From": "the-fastest"}])
async def test_consistency_headers_that_cannot_be_honoured_are_a_4xx(api, headers):
    api.fakes.repo.add(link("abc1234", URL))
    resp = await api.client.get(f"{LINKS}/abc1234", headers=headers)
    assert resp.status_code == 422, resp.text
    assert api.fakes.repo.consistencies == []


async def test_get_unknown_link_is_404(api):
    resp = await api.client.get(f"{LINKS}/nosuch1")
    assert resp.status_code == 404
    assert error_of(resp)["code"] == "link_not_found"


async def test_delete_with_the_token_is_204_and_the_link_is_gone(api):
    created = (await api.client.post(LINKS, json={"url": URL})).json()
    resp = await api.client.delete(f"{LINKS}/{created['code']}", headers={"X-Delete-Token": created["delete_token"]})
    assert resp.status_code == 204
    assert (await api.client.get(f"/{created['code']}")).status_code == 404


async def test_delete_with_a_wrong_token_is_403(api):
    created = (await api.client.post(LINKS, json={"url": URL})).json()
    resp = await api.client.delete(f"{LINKS}/{created['code']}", headers={"X-Delete-Token": "wrong"})
    assert resp.status_code == 403
    assert error_of(resp)["code"] == "bad_delete_token"
    assert (await api.client.get(f"/{created['code']}")).status_code == 302


async def test_delete_without_the_token_header_is_422(api):
    created = (await api.client.post(LINKS, json={"url": URL})).json()
    resp = await api.client.delete(f"{LINKS}/{created['code']}")
    assert resp.status_code == 422
    assert "x-delete-token" in error_of(resp)["message"]


# --- client_address --------------------------------------------------------------------------

LOCAL = trusted_networks(["127.0.0.1"])


def test_forwarded_for_is_ignored_from_an_untrusted_peer():
    assert client_address("198.51.100.1", "203.0.113.9", LOCAL) == "198.51.100.1"


def test_forwarded_for_is_believed_from_a_trusted_peer():
    assert client_address("127.0.0.1", "203.0.113.9", LOCAL) == "203.0.113.9"


def test_rightmost_untrusted_hop_is_the_client():
    # The leftmost entry is whatever the client sent; only the hop our proxy appended counts.
    assert client_address("127.0.0.1", "6.6.6.6, 203.0.113.9, 127.0.0.1", LOCAL) == "203.0.113.9"


def test_garbage_in_forwarded_for_falls_back_to_the_peer():
    assert client_address("127.0.0.1", "not-an-address", LOCAL) == "127.0.0.1"
    assert client_address("127.0.0.1", "203.0.113.9, <script>", LOCAL) == "127.0.0.1"


def test_no_forwarded_for_gives_the_peer():
    assert client_address("127.0.0.1", None, LOCAL) == "127.0.0.1"
    assert client_address("127.0.0.1", " , ", LOCAL) == "127.0.0.1"


def test_missing_peer_is_unknown():
    assert client_address(None, "203.0.113.9", LOCAL) == "unknown"


def test_trusted_networks_accept_cidr_entries():
    trusted = trusted_networks(["10.0.0.0/8", "127.0.0.1"])
    assert client_address("10.1.2.3", "203.0.113.9, 10.9.9.9", trusted) == "203.0.113.9"
    assert client_address("11.0.0.1", "203.0.113.9", trusted) == "11.0.0.1"


def test_ipv6_hops_are_understood():
    trusted = trusted_networks(["::1", "fd00::/8"])
    assert client_address("::1", "2001:db8::7, fd00::1", trusted) == "2001:db8::7"
