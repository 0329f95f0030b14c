"""The shortener through Caddy, as a user meets it."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest


@pytest.fixture(scope="module")
def api(lab):
    with httpx.Client(base_url=lab.url(), timeout=10) as client:
        yield client


def _instances(lab) -> list[str]:
    return [c["url"] for n, c in lab.state["components"].items()
            if c["kind"] == "app" and c.get("design") == "shortener" and "analytics" not in n]


def _new_url() -> str:
    return f"https://example.com/e2e/{uuid.uuid4().hex}"


def test_create_redirect_and_count_clicks(api):
    url = _new_url()
    created = api.post("/api/v1/links", json={"url": url})
    assert created.status_code == 201
    body = created.json()
    assert body["url"] == url and body["delete_token"] and body["short_url"].endswith("/" + body["code"])
    for _ in range(5):
        redirect = api.get(f"/{body['code']}")
        assert redirect.status_code == 302 and redirect.headers["location"] == url
    deadline = time.monotonic() + 20
    clicks = 0
    while time.monotonic() < deadline and clicks < 5:
        clicks = api.get(f"/api/v1/links/{body['code']}").json()["clicks"]
        time.sleep(0.3)
    assert clicks == 5, "clicks travel instance → Kafka → aggregator → PostgreSQL"


def test_same_url_twice_gives_the_same_code(api):
    url = _new_url()
    first, second = api.post("/api/v1/links", json={"url": url}), api.post("/api/v1/links", json={"url": url})
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["code"] == second.json()["code"] and second.json()["delete_token"] is None


def test_delete_invalidates_every_instance(lab, api):
    created = api.post("/api/v1/links", json={"url": _new_url()}).json()
    code = created["code"]
    for base in _instances(lab):  # each instance now has it in its in-process cache
        assert httpx.get(f"{base}/{code}").status_code == 302
    assert api.delete(f"/api/v1/links/{code}", headers={"X-Delete-Token": "wrong"}).status_code == 403
    assert api.delete(f"/api/v1/links/{code}", headers={"X-Delete-Token": created["delete_token"]}).status_code == 204
    time.sleep(0.3)  # the invalidation travels over Redis pub/sub
    for base in _instances(lab):
        resp = httpx.get(f"{base}/{code}")
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "link_not_found", base


def test_expired_link_is_gone(api):
    code = api.post("/api/v1/links", json={"url": _new_url(), "expires_in": 1}).json()["code"]
    assert api.get(f"/{code}").status_code == 302
    time.sleep(1.2)
    gone = api.get(f"/{code}")
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "link_expired"


def test_alias_and_bad_input_get_clear_4xx(api):
    alias = f"e2e-{uuid.uuid4().hex[:8]}"
    assert api.post("/api/v1/links", json={"url": _new_url(), "alias": alias}).status_code == 201
    taken = api.post("/api/v1/links", json={"url": _new_url(), "alias": alias})
    assert taken.status_code == 409 and "taken" in taken.json()["error"]["message"]
    for payload, needle in [
        ({"url": "javascript:alert(1)"}, "scheme"),
        ({"url": "data:text/html,hi"}, "scheme"),
        ({"url": "https://user:pw@example.com/"}, "credentials"),
        ({"url": "https://example.com/" + "a" * 2100}, "limit is 2048"),
        ({"url": _new_url(), "alias": "docs"}, "reserved"),
        ({"url": _new_url(), "alias": "a b"}, "alias must be"),
        ({"url": _new_url(), "expires_in": 0}, "expires_in"),
        ({}, "url"),
    ]:
        resp = api.post("/api/v1/links", json=payload)
        assert resp.status_code == 422, payload
        assert needle in resp.json()["error"]["message"], (payload, resp.json())
    self_link = api.post("/api/v1/links", json={"url": "http://127.0.0.1:9/loop"})
    assert self_link.status_code == 403 and "this shortener" in self_link.json()["error"]["message"]
    bad_json = api.post("/api/v1/links", content=b"{not json", headers={"content-type": "application/json"})
    assert bad_json.status_code == 422 and "not valid JSON" in bad_json.json()["error"]["message"]
    not_allowed = api.put("/api/v1/links/abc")
    assert not_allowed.status_code == 405 and not_allowed.headers["allow"] == "DELETE, GET, HEAD"
    assert api.get("/nosuchcode").status_code == 404


def test_rate_limit_answers_429_with_retry_after(lab):
    base = _instances(lab)[0]
    client_ip = f"198.19.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    statuses = []
    with httpx.Client(base_url=base, timeout=10, headers={"X-Forwarded-For": client_ip}) as client:
        for _ in range(80):
            resp = client.post("/api/v1/links", json={"url": _new_url()})
            statuses.append(resp.status_code)
            if resp.status_code == 429:
                assert int(resp.headers["retry-after"]) >= 1
                assert resp.json()["error"]["code"] == "rate_limited"
                break
    assert statuses[-1] == 429 and statuses.count(201) >= 50, statuses
    other = httpx.post(f"{base}/api/v1/links", json={"url": _new_url()}, headers={"X-Forwarded-For": "198.19.251.1"})
    assert other.status_code == 201, "another client has its own bucket"


def _clicks_reach(api, code: str, expected: int, timeout_s: float = 40) -> int:
    deadline, clicks = time.monotonic() + timeout_s, -1
    while time.monotonic() < deadline and clicks < expected:
        clicks = api.get(f"/api/v1/links/{code}").json()["clicks"]
        time.sleep(0.5)
    return clicks


def test_clicks_survive_a_broker_restart_that_loses_every_topic(lab, api):
    """Tansu keeps its log in memory: a restart loses topics and offsets. Producers recreate the
    topic, the consumer group rejoins, and later clicks are counted again."""
    code = api.post("/api/v1/links", json={"url": _new_url()}).json()["code"]
    for _ in range(3):
        assert api.get(f"/{code}").status_code == 302
    assert _clicks_reach(api, code, 3) == 3
    lab.run("chaos", "restart", "kafka")
    for _ in range(5):
        assert api.get(f"/{code}").status_code == 302, "redirects do not wait on the broker"
    assert _clicks_reach(api, code, 8) == 8
