"""The lab's calls to a stack: retried through a transient 502/503 or a lost connection within a
deadline, anything else answered at once, and a failure reported as the call and what it got."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from services.lab import retry
from services.lab.cli import entry as cli
from services.lab.retry import RetryingTransport, RetryPolicy, StackCallFailed

FAST = RetryPolicy(deadline_s=5.0, first_wait_s=0.001, max_wait_s=0.01)


def answers(*outcomes):
    """A stand-in stack answering each call with the next outcome (a status or an exception);
    returns the transport and the list of requests it saw."""
    seen: list[httpx.Request] = []
    queue = list(outcomes)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        outcome = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(outcome, Exception):
            raise outcome
        return httpx.Response(outcome, headers={"retry-after": "0"} if outcome == 503 else {},
                              json={"n": len(seen)})

    return httpx.MockTransport(handler), seen


def call(transport, policy=FAST, method="POST", **kwargs) -> httpx.Response:
    async def go():
        async with httpx.AsyncClient(transport=RetryingTransport(policy, transport), base_url="http://stack") as c:
            return await c.request(method, "/api/v1/conversations", **kwargs)
    return asyncio.run(go())


def test_a_transient_502_503_or_lost_connection_is_tried_again_with_the_same_body():
    transport, seen = answers(502, 503, httpx.ConnectError("refused"), httpx.RemoteProtocolError("closed"), 201)
    response = call(transport, json={"members": ["b"]})
    assert response.status_code == 201 and response.json() == {"n": 5}
    assert len(seen) == 5 and all(json.loads(r.content) == {"members": ["b"]} for r in seen)


@pytest.mark.parametrize("status", [200, 400, 404, 409, 429, 500, 504])
def test_any_other_answer_comes_back_at_once(status):
    transport, seen = answers(status)
    assert call(transport).status_code == status and len(seen) == 1


def test_a_status_named_in_the_policy_is_retried_too():
    transport, seen = answers(429, 429, 200)
    policy = RetryPolicy(deadline_s=5.0, first_wait_s=0.001, max_wait_s=0.01,
                         statuses=retry.TRANSIENT_STATUSES | {429})
    assert call(transport, policy).status_code == 200 and len(seen) == 3


def test_past_the_deadline_the_error_names_the_call_and_what_it_last_got(monkeypatch):
    now = [0.0]
    waits: list[float] = []

    async def sleep(seconds):  # a clock that the waits advance: no real waiting
        waits.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(retry.asyncio, "sleep", sleep)
    transport, seen = answers(502)
    policy = RetryPolicy(deadline_s=30.0, first_wait_s=0.1, max_wait_s=2.0)

    async def go():
        t = RetryingTransport(policy, transport, clock=lambda: now[0])
        async with httpx.AsyncClient(transport=t, base_url="http://stack:8081") as c:
            await c.post("/api/v1/conversations")

    with pytest.raises(StackCallFailed) as failed:
        asyncio.run(go())
    message = str(failed.value)
    assert "POST http://stack:8081/api/v1/conversations: 502 Bad Gateway" in message
    assert f"each of {len(seen)} tries" in message and "bug" not in message
    assert sum(waits) <= 30.0 and now[0] > 30.0 - 2.0  # used the deadline, never overstepped it
    assert all(w <= 2.0 for w in waits) and waits[0] <= 0.1 and max(waits) > 1.0  # backoff, capped


def test_retry_after_is_honoured_up_to_the_cap(monkeypatch):
    waits: list[float] = []

    async def sleep(seconds):
        waits.append(seconds)

    monkeypatch.setattr(retry.asyncio, "sleep", sleep)

    def handler(request):
        return httpx.Response(503, headers={"retry-after": "60"}) if not waits else httpx.Response(200)

    assert call(httpx.MockTransport(handler), RetryPolicy(max_wait_s=1.5)).status_code == 200
    assert waits == [1.5]


def test_describe_says_which_call_got_which_status_or_error():
    request = httpx.Request("POST", "http://127.0.0.1:8081/api/v1/conversations")
    status = httpx.HTTPStatusError("x", request=request, response=httpx.Response(500, text="boom", request=request))
    assert retry.describe(status) == "POST http://127.0.0.1:8081/api/v1/conversations answered 500 Internal Server Error: boom"
    assert retry.describe(httpx.ConnectError("refused", request=request)) == \
        "POST http://127.0.0.1:8081/api/v1/conversations failed: ConnectError: refused"


@pytest.mark.parametrize("raised", [
    StackCallFailed(httpx.Request("POST", "http://h/api/v1/conversations"), 9, 30.0, "502 Bad Gateway"),
    httpx.HTTPStatusError("x", request=httpx.Request("GET", "http://h/api/v1/orders/1"),
                          response=httpx.Response(500, request=httpx.Request("GET", "http://h/api/v1/orders/1"))),
])
def test_the_cli_reports_a_stack_error_as_the_stacks_not_as_a_bug_in_sdlab(monkeypatch, capsys, raised):
    def fail(_args):
        raise raised

    monkeypatch.setitem(cli.COMMANDS, "status", fail)
    assert cli.main(["status"]) == 1
    err = capsys.readouterr().err
    assert "bug in sdlab" not in err and "http://h/api/v1/" in err and ("502" in err or "500" in err)
