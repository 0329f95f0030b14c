"""Messaging through Caddy on the real stack: login, conversations, the WebSocket protocol."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


@pytest.fixture(scope="module")
def base(lab) -> str:
    return f"http://127.0.0.1:{lab.env['SDLAB_MESSAGING_PORT']}"


def _ws(base: str, token: str) -> str:
    return base.replace("http://", "ws://") + f"/ws?token={token}"


async def _login(client: httpx.AsyncClient, user: str) -> str:
    response = await client.post("/api/v1/sessions", json={"user": user})
    assert response.status_code == 201, response.text
    return response.json()["token"]


async def _next(ws, kind: str, timeout: float = 5.0) -> dict:
    """The next frame of ``kind`` (others, such as presence, are skipped)."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame["type"] == kind:
            return frame


async def _quiet(ws, seconds: float = 0.5) -> list[dict]:
    frames = []
    try:
        while True:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), seconds)))
    except asyncio.TimeoutError:
        return frames


def _names() -> tuple[str, str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"a_{tag}", f"b_{tag}", f"c_{tag}"


async def test_rest_api_login_conversations_history_presence(base):
    alice, bob, carol = _names()
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.post("/api/v1/sessions", json={"user": "Bad Name"})).status_code == 422
        assert (await client.get("/api/v1/conversations")).status_code == 401
        ta, tc = await _login(client, alice), await _login(client, carol)
        auth = {"Authorization": f"Bearer {ta}"}
        created = await client.post("/api/v1/conversations", json={"members": [bob], "title": "pair"}, headers=auth)
        assert created.status_code == 201
        conversation = created.json()
        assert conversation["members"] == [alice, bob] and conversation["last_seq"] == 0
        history = await client.get(f"/api/v1/conversations/{conversation['id']}/messages", headers=auth)
        assert history.status_code == 200 and history.json() == {"messages": []}
        outsider = await client.get(f"/api/v1/conversations/{conversation['id']}/messages",
                                    headers={"Authorization": f"Bearer {tc}"})
        assert outsider.status_code == 403 and outsider.json()["error"]["code"] == "forbidden"
        mine = await client.get("/api/v1/conversations", headers=auth)
        assert [c["id"] for c in mine.json()["items"]] == [conversation["id"]]
        bad = await client.post("/api/v1/conversations", json={"members": ["NOPE"]}, headers=auth)
        assert bad.status_code == 422 and "NOPE" in bad.json()["error"]["message"]
        presence = await client.get(f"/api/v1/presence?users={alice},{bob}", headers=auth)
        assert presence.json() == {alice: False, bob: False}
        page = await client.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]


async def test_send_ack_deliver_resend_resume_read(base):
    alice, bob, _ = _names()
    async with httpx.AsyncClient(base_url=base) as client:
        ta, tb = await _login(client, alice), await _login(client, bob)
        conversation = (await client.post("/api/v1/conversations", json={"members": [bob]},
                                          headers={"Authorization": f"Bearer {ta}"})).json()
        cid = conversation["id"]
        async with connect(_ws(base, ta)) as a1, connect(_ws(base, ta)) as a2, connect(_ws(base, tb)) as b:
            await asyncio.sleep(0.3)  # routes registered
            for i in range(1, 6):
                await a1.send(json.dumps({"type": "send", "conversation_id": cid, "client_msg_id": f"m{i}",
                                          "text": f"hello {i}"}))
                ack = await _next(a1, "ack")
                assert ack["seq"] == i and ack["client_msg_id"] == f"m{i}"
            # Every member's connections get every message, the sender's other device too, in order.
            for ws in (b, a2):
                got = [await _next(ws, "message") for _ in range(5)]
                assert [m["seq"] for m in got] == [1, 2, 3, 4, 5]
                assert got[0]["sender"] == alice and got[0]["text"] == "hello 1"
            # A resend returns the same ack and delivers nothing new.
            await a1.send(json.dumps({"type": "send", "conversation_id": cid, "client_msg_id": "m3", "text": "again"}))
            again = await _next(a1, "ack")
            assert again["seq"] == 3
            assert [f for f in await _quiet(b) if f["type"] == "message"] == []
            # Bob read up to 4: Alice's connections get a receipt.
            await b.send(json.dumps({"type": "read", "conversation_id": cid, "seq": 4}))
            receipt = await _next(a2, "receipt")
            assert receipt == {"type": "receipt", "conversation_id": cid, "user": bob, "seq": 4}
        # A new connection resumes from seq 2: 3, 4, 5 once each, in order, then "resumed".
        async with connect(_ws(base, tb)) as b2:
            await b2.send(json.dumps({"type": "resume", "positions": {cid: 2}}))
            frames = []
            while not frames or frames[-1]["type"] != "resumed":
                frames.append(json.loads(await asyncio.wait_for(b2.recv(), 5)))
            assert [f["seq"] for f in frames if f["type"] == "message"] == [3, 4, 5]
            assert frames[-1]["positions"] == {cid: 5}
        history = await client.get(f"/api/v1/conversations/{cid}/messages?after_seq=3",
                                   headers={"Authorization": f"Bearer {tb}"})
        assert [m["seq"] for m in history.json()["messages"]] == [4, 5]


async def test_hostile_frames_get_error_frames_and_the_socket_stays_open(base):
    alice, bob, carol = _names()
    async with httpx.AsyncClient(base_url=base) as client:
        ta, tc = await _login(client, alice), await _login(client, carol)
        cid = (await client.post("/api/v1/conversations", json={"members": [bob]},
                                 headers={"Authorization": f"Bearer {ta}"})).json()["id"]
    async with connect(_ws(base, tc)) as ws:
        cases = [
            ("{", "bad_frame"),
            (json.dumps({"type": "teleport"}), "bad_frame"),
            (json.dumps({"type": "send", "conversation_id": cid}), "bad_frame"),
            (json.dumps({"type": "send", "conversation_id": cid, "client_msg_id": "x", "text": "x" * 4097}),
             "message_too_large"),
            (json.dumps({"type": "send", "conversation_id": cid, "client_msg_id": "x", "text": "hi"}), "forbidden"),
            (json.dumps({"type": "read", "conversation_id": cid, "seq": 1}), "forbidden"),
        ]
        for raw, code in cases:
            await ws.send(raw)
            frame = await _next(ws, "error")
            assert frame["code"] == code and frame["message"], raw
        await ws.send(json.dumps({"type": "resume", "positions": {cid: 0}}))
        assert (await _next(ws, "error"))["code"] == "forbidden"
        assert (await _next(ws, "resumed"))["positions"] == {cid: 0}
        # A frame over 64 KiB closes the connection with 1009.
        await ws.send("x" * (64 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd.code == 1009


async def test_a_bad_token_is_refused_at_the_handshake(base):
    for url in (base.replace("http://", "ws://") + "/ws", _ws(base, "forged.token.here")):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url):
                pass
        assert refused.value.response.status_code == 401


async def test_a_flood_is_rate_limited_with_retry_after(base):
    alice, bob, _ = _names()
    async with httpx.AsyncClient(base_url=base) as client:
        ta, _tb = await _login(client, alice), await _login(client, bob)
        created = await client.post("/api/v1/conversations", json={"members": [bob]},
                                    headers={"Authorization": f"Bearer {ta}"})
    cid = created.json()["id"]
    async with connect(_ws(base, ta)) as ws:
        for i in range(400):  # the burst is 100 at 50/s: a flood this fast outruns the refill
            await ws.send(json.dumps({"type": "send", "conversation_id": cid, "client_msg_id": f"f{i}", "text": "x"}))
        refused = await _next(ws, "error", timeout=30)
        assert refused["code"] == "rate_limited" and refused["retry_after"] > 0
        assert refused["conversation_id"] == cid and refused["client_msg_id"].startswith("f")


async def test_a_draining_gateway_closes_with_1001_and_clients_come_back_through_caddy(lab, base):
    """SIGTERM (chaos stop): the gateway stops accepting and closes its sockets with 1001; a new
    connection through Caddy lands on the other gateway."""
    alice, _, _ = _names()
    async with httpx.AsyncClient(base_url=base) as client:
        token = await _login(client, alice)
    gateways = [c for c in lab.state["components"] if c.startswith("messaging-gateway-")]
    sockets = [await connect(_ws(base, token)) for _ in range(4)]  # least_conn spreads them over both
    try:
        lab.run("chaos", "stop", gateways[0])
        codes = []
        for ws in sockets:
            try:
                await asyncio.wait_for(ws.recv(), 5)
            except ConnectionClosed as closed:
                codes.append(closed.rcvd.code if closed.rcvd else None)
            except asyncio.TimeoutError:
                codes.append("open")
        assert 1001 in codes, codes  # the stopped gateway's sockets went away politely
        async with connect(_ws(base, token)) as again:  # Caddy routes around the stopped one
            await again.send(json.dumps({"type": "resume", "positions": {}}))
            assert (await _next(again, "resumed"))["positions"] == {}
    finally:
        for ws in sockets:
            await ws.close()
        lab.run("chaos", "restart", gateways[0], timeout=120)
