"""The chat page in a real browser (Debian's chromium driven by Playwright) on the real stack, through Caddy.

Two users log in through the page and talk. The gateway that holds one page's WebSocket is
SIGKILLed; while it is down the other user keeps talking; the page reconnects through Caddy to
the other gateway, resumes, and must show every message exactly once, in order.

The page's reconnect timer runs on Playwright's fake clock, paused while the gateway is down:
the page stays disconnected until the other user's messages are stored, so they reach it
through ``resume`` (not live delivery) on every run, whatever the timing.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, Page, WebSocketRoute, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
# Debian's chromium, never a Playwright download; no sandbox (we run as root), no background
# traffic to Google (there is no internet here).
LAUNCH_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
GATEWAYS = ("messaging-gateway-1", "messaging-gateway-2")
WAIT_MS = 15_000  # every expect(): generous for a loaded 2-core machine, and only spent on failure

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"needs Debian's chromium at {CHROMIUM} (`make test` installs it as root: apt-get install chromium)")

T = TypeVar("T")
Said = list[tuple[str, str]]  # (sender, text) of each message, in seq order from 1


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(autouse=True)
def _expect_timeout() -> None:
    expect.set_options(timeout=WAIT_MS)


def _wait_for(what: str, probe: Callable[[], T | None], timeout: float = 15.0) -> T:
    """Poll ``probe`` until it returns something other than None (for state outside the browser)."""
    deadline = time.monotonic() + timeout
    while (value := probe()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
    return value


def _url(lab, name: str) -> str:
    return lab.state["components"][name]["url"]


def _healthz(lab, name: str) -> int | None:
    try:
        return httpx.get(_url(lab, name) + "/healthz", timeout=2).status_code
    except httpx.TransportError:
        return None


def _metric(lab, gateway: str, name: str) -> float:
    text = httpx.get(_url(lab, gateway) + "/metrics", timeout=5).text
    found = re.search(rf"^{name}{{[^}}]*}} (\S+)$", text, re.MULTILINE)
    assert found, f"{gateway} /metrics has no {name}"
    return float(found.group(1))


def _accepted(lab) -> dict[str, float]:
    """WebSocket connections each gateway has accepted: a counter, so a connection of an earlier
    test closing meanwhile cannot hide a new one (the ws_connections gauge would go down and up)."""
    return {g: _metric(lab, g, "ws_connections_opened_total") for g in GATEWAYS}


def _gateway_of(lab, before: dict[str, float]) -> str:
    """The one gateway that accepted a connection since ``before`` (a page just connected)."""
    def grown() -> str | None:
        now = _accepted(lab)
        up = [g for g in GATEWAYS if now[g] > before[g]]
        return up[0] if len(up) == 1 else None
    return _wait_for("a new WebSocket connection on one gateway", grown)


def _open_page(browser: Browser, base: str, *, fake_clock: bool = False) -> Page:
    page = browser.new_context().new_page()
    if fake_clock:
        page.clock.install()  # before the page loads, so its setTimeout is the fake one
    page.goto(base)
    return page


def _log_in(page: Page, user: str) -> None:
    page.fill("#user", user)
    page.click("#login button")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")


def _resumes(page: Page) -> int:
    return int(page.locator("#status").get_attribute("data-resumes"))


def _open_conversation(page: Page, cid: str) -> None:
    conv = page.locator(f'#convs .conv[data-id="{cid}"]')
    conv.click()
    expect(conv).to_have_class(re.compile(r"\bopen\b"))
    expect(page.locator("#text")).to_be_enabled()


def _expect_log(page: Page, said: Said) -> None:
    """The message list is exactly ``said``: each once, in seq order, nothing left pending."""
    rows = page.locator("#log .msg")
    expect(rows.locator(".meta")).to_have_text([f"#{seq} {sender}:" for seq, (sender, _) in enumerate(said, 1)])
    expect(rows.locator(".text")).to_have_text([text for _, text in said])
    assert rows.evaluate_all("rows => rows.map((r) => Number(r.dataset.seq))") == list(range(1, len(said) + 1))


def _say(page: Page, user: str, said: Said, text: str) -> None:
    """Type a message and send it; it is acked with the next seq and shown on the sender's page."""
    said.append((user, text))
    page.fill("#text", text)
    page.press("#text", "Enter")
    expect(page.locator("#status")).to_have_text(f"sent #{len(said)}")
    _expect_log(page, said)  # waiting here also fixes the order of seqs across the two users


def _names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"ann_{tag}", f"bob_{tag}"


def _start_chat(lab, browser: Browser, *, fake_clock_for_a: bool = False,
                setup_a: Callable[[Page], object] | None = None) -> tuple[Page, Page, str, str, str, str]:
    """A and B logged in through the page, A's conversation with B open on both, on different gateways."""
    base = f"http://127.0.0.1:{lab.env['SDLAB_MESSAGING_PORT']}"
    a_user, b_user = _names()
    a, b = _open_page(browser, base, fake_clock=fake_clock_for_a), _open_page(browser, base)
    if setup_a is not None:
        setup_a(a)
    before = _accepted(lab)
    _log_in(a, a_user)
    gw_a = _gateway_of(lab, before)
    # A starts the conversation through the page's own form; it opens at once.
    a.fill("#members", b_user)
    a.click("#newconv button")
    opened = a.locator("#convs .conv.open")
    expect(opened).to_have_text(re.compile(re.escape(b_user)))
    cid = opened.get_attribute("data-id")
    expect(a.locator("#text")).to_be_enabled()
    # B logs in after it exists, so the page lists it (the page learns of new ones only by their messages).
    before = _accepted(lab)
    _log_in(b, b_user)
    gw_b = _gateway_of(lab, before)
    # Caddy sends a new WebSocket to the gateway with the fewest: B lands beside A only if others
    # hold connections; then B reconnects until it is on the other gateway.
    for _ in range(5):
        if gw_b != gw_a:
            break
        resumes, before = _resumes(b), _accepted(lab)
        b.evaluate("() => state.ws.close()")
        expect(b.locator("#status")).to_have_attribute("data-resumes", str(resumes + 1))
        gw_b = _gateway_of(lab, before)
    assert gw_b != gw_a, f"both pages stayed on {gw_a}"
    _open_conversation(b, cid)
    # Presence: each page shows the other online.
    for page in (a, b):
        expect(page.locator(f'#convs .conv[data-id="{cid}"] .dot')).to_have_class(re.compile(r"\bon\b"))
    return a, b, a_user, b_user, cid, gw_a


def _screenshots(lab, tmp_path: Path, pages: dict[str, Page]) -> None:
    results = lab.home / "results" / f"chat-browser-{tmp_path.name}"
    results.mkdir(parents=True, exist_ok=True)
    for user, page in pages.items():
        shot = tmp_path / f"chat-{user}.png"
        page.screenshot(path=shot, full_page=True)
        shutil.copy(shot, results / shot.name)
        print(f"screenshot: {shot} (copy: {results / shot.name})")


def test_a_page_survives_its_gateway_being_killed(lab, browser: Browser, tmp_path: Path) -> None:
    a, b, a_user, b_user, cid, gw_a = _start_chat(lab, browser, fake_clock_for_a=True)
    (survivor,) = [g for g in GATEWAYS if g != gw_a]
    said: Said = []
    _say(a, a_user, said, "hello from ann")
    _say(b, b_user, said, "hi ann, bob here")
    _say(a, a_user, said, "how are the gateways?")
    _expect_log(b, said)
    # Read receipts: each page reads what arrives in the open conversation.
    expect(a.locator("#receipts")).to_have_text(f"{b_user} read #3")
    expect(b.locator("#receipts")).to_have_text(f"{a_user} read #3")

    replayed = _metric(lab, survivor, "ws_replayed_messages_total")
    try:
        # Hold A's reconnect timer (fake clock) so A stays away until B's messages are stored.
        a.clock.pause_at(a.evaluate("() => Date.now()") + 1)
        lab.run("chaos", "kill", gw_a)
        assert _healthz(lab, gw_a) is None, f"{gw_a} still answers after the kill"
        expect(a.locator("#status")).to_have_attribute("data-state", "disconnected")
        for text in ("ann? your gateway died", "still there?", "third while you were away"):
            _say(b, b_user, said, text)  # on B's page each is acked and delivered: stored and routed
        expect(a.locator("#log .msg")).to_have_count(3)  # A saw none of them live

        a.clock.resume()  # the page's backoff timer fires: reconnect through Caddy, then resume
        expect(a.locator("#status")).to_have_attribute("data-resumes", "2")
        expect(a.locator("#status")).to_have_attribute("data-state", "connected")
        _expect_log(a, said)
        # The survivor replayed them from the database: A's new connection is there.
        assert _metric(lab, survivor, "ws_replayed_messages_total") >= replayed + 3

        _say(a, a_user, said, "back, through the other gateway")
        _expect_log(b, said)
        expect(a.locator("#receipts")).to_have_text(f"{b_user} read #7")
        expect(b.locator("#receipts")).to_have_text(f"{a_user} read #7")
        _screenshots(lab, tmp_path, {a_user: a, b_user: b})
    finally:
        a.context.close()
        b.context.close()
        # The stack is shared by the rest of the session: bring the gateway back (restart also
        # starts one that is still running, should the kill not have happened).
        lab.run("chaos", "restart", gw_a, timeout=120)
        _wait_for(f"{gw_a} /healthz", lambda: True if _healthz(lab, gw_a) == 200 else None, timeout=30)


def test_a_live_message_that_overtakes_the_resume_leaves_no_gap(lab, browser: Browser) -> None:
    """A new connection gets live messages before its ``resume`` is read, and the gateway then
    replays only what comes after them: the page must read the ones in between from history."""
    holding = False
    held: list[tuple[WebSocketRoute, str]] = []

    def proxy(ws: WebSocketRoute) -> None:
        # Still through Caddy to a gateway; only the page's resume frames can be held back.
        server = ws.connect_to_server()

        def to_server(message: str | bytes) -> None:
            if holding and isinstance(message, str) and json.loads(message).get("type") == "resume":
                held.append((server, message))
            else:
                server.send(message)
        ws.on_message(to_server)

    a, b, a_user, b_user, cid, _ = _start_chat(
        lab, browser, fake_clock_for_a=True, setup_a=lambda page: page.route_web_socket(re.compile(r"/ws\?"), proxy))
    try:
        said: Said = []
        _say(a, a_user, said, "one")
        _say(b, b_user, said, "two")
        _expect_log(a, said)
        # A goes away (its reconnect timer held); B sees it offline, so its route is gone.
        a.clock.pause_at(a.evaluate("() => Date.now()") + 1)
        a.evaluate("() => state.ws.close()")
        expect(a.locator("#status")).to_have_attribute("data-state", "disconnected")
        a_dot = b.locator(f'#convs .conv[data-id="{cid}"] .dot')
        expect(a_dot).not_to_have_class(re.compile(r"\bon\b"))
        _say(b, b_user, said, "three")
        _say(b, b_user, said, "four")
        # A reconnects and its resume is held; once B sees A online, A's new route is recorded
        # and the next message reaches A's new connection live, ahead of the resume.
        holding = True
        a.clock.resume()
        expect(a.locator("#status")).to_have_attribute("data-state", "resuming")
        expect(a_dot).to_have_class(re.compile(r"\bon\b"))
        _say(b, b_user, said, "five")
        _expect_log(a, said)  # three and four too, read from history: no gap
        holding = False
        for server, message in held:
            server.send(message)
        expect(a.locator("#status")).to_have_attribute("data-state", "connected")
        _say(a, a_user, said, "six")
        _expect_log(a, said)
        _expect_log(b, said)
    finally:
        a.context.close()
        b.context.close()
