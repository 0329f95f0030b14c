"""The lab's own HTTP calls to a stack, retried through what a busy or fresh stack does for a moment.

A stack just started, or one on a loaded machine, answers a few calls with ``502`` (Caddy could not
reach an instance yet, or lost the connection to one), ``503`` (an instance not ready, or shedding
load) or drops a connection; the next call a moment later succeeds. Seeding, the post-run checks
and the other calls the lab makes on a stack go through :class:`RetryingTransport`: such a call is
tried again with a growing, jittered wait until it succeeds or :attr:`RetryPolicy.deadline_s` has
passed since its first try; then :class:`StackCallFailed` says which call, what it last got and for
how long. Any other answer is returned as it is, at once.

Retrying a POST may apply it twice when the first try reached the app but its answer was lost; the
lab's seeding tolerates that (an extra record nobody counts on). A leaf module: it imports nothing
from ``services.lab``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

TRANSIENT_STATUSES = frozenset({502, 503})
DEADLINE_S = 30.0  # per call: a stack that answers nothing for this long is down, not busy


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a call again: on a connection error or one of ``statuses``, waiting
    ``first_wait_s`` doubling up to ``max_wait_s`` (each drawn from its upper half, so that many
    callers do not retry in step; a ``Retry-After`` the answer carries is honoured up to
    ``max_wait_s``), as long as the wait ends within ``deadline_s`` of the first try."""

    deadline_s: float = DEADLINE_S
    first_wait_s: float = 0.1
    max_wait_s: float = 2.0
    statuses: frozenset[int] = TRANSIENT_STATUSES


class StackCallFailed(Exception):
    """A call to the stack kept failing past its deadline: which call, what it last got, how long."""

    def __init__(self, request: httpx.Request, tries: int, seconds: float, last: str) -> None:
        self.method, self.url, self.tries, self.seconds, self.last = request.method, str(request.url), tries, seconds, last
        super().__init__(f"{self.method} {self.url}: {last} on each of {tries} tries over {seconds:.0f} s; the stack "
                         "is not answering that call (see `sdlab status` and `sdlab logs`)")


# What a call to a stack can end in that is the stack's doing (or the network's), not the lab's.
STACK_ERRORS = (StackCallFailed, httpx.HTTPError)


def describe(exc: StackCallFailed | httpx.HTTPError) -> str:
    """One line for an error from a stack: the call and the status (with the start of the body) or
    the connection error; for :class:`StackCallFailed`, its own message."""
    if isinstance(exc, StackCallFailed):
        return str(exc)
    try:
        call = f"{exc.request.method} {exc.request.url}"
    except RuntimeError:  # an error raised before any request was built
        call = "a call to the stack"
    if isinstance(exc, httpx.HTTPStatusError):
        r = exc.response
        try:
            body = r.text[:200].strip()
        except httpx.ResponseNotRead:  # a streamed answer: its status says enough
            body = ""
        return f"{call} answered {r.status_code} {r.reason_phrase}" + (f": {body}" if body else "")
    return f"{call} failed: {type(exc).__name__}: {exc}"


class _Attempts:
    """The bookkeeping of one call's tries: the wait before the next one, or the final error."""

    def __init__(self, policy: RetryPolicy, request: httpx.Request, clock: Callable[[], float],
                 rng: random.Random) -> None:
        self.policy, self.request, self.clock, self.rng = policy, request, clock, rng
        self.started, self.tries = clock(), 0

    def wait_after(self, response: httpx.Response | None, error: Exception | None) -> float:
        """The wait before the next try; raises :class:`StackCallFailed` when it would end past the deadline."""
        self.tries += 1
        p = self.policy
        wait = min(p.max_wait_s, p.first_wait_s * 2 ** (self.tries - 1))
        wait = self.rng.uniform(wait / 2, wait)
        if response is not None:
            try:
                wait = max(wait, min(p.max_wait_s, float(response.headers["retry-after"])))
            except (KeyError, ValueError):
                pass
        elapsed = self.clock() - self.started
        if elapsed + wait > p.deadline_s:
            last = (f"{response.status_code} {response.reason_phrase}" if response is not None
                    else f"{type(error).__name__}: {error}")
            raise StackCallFailed(self.request, self.tries, elapsed, last) from error
        return wait


class RetryingTransport(httpx.AsyncBaseTransport):
    """An httpx transport that retries a call per :class:`RetryPolicy` (see the module's docstring)."""

    def __init__(self, policy: RetryPolicy = RetryPolicy(), inner: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None) -> None:
        self.policy, self.inner = policy, inner or httpx.AsyncHTTPTransport()
        self.clock, self.rng = clock, rng or random.Random()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        attempts = _Attempts(self.policy, request, self.clock, self.rng)
        while True:
            try:
                response = await self.inner.handle_async_request(request)
            except httpx.TransportError as exc:
                wait = attempts.wait_after(None, exc)
            else:
                if response.status_code not in self.policy.statuses:
                    return response
                try:
                    wait = attempts.wait_after(response, None)
                finally:
                    await response.aclose()
            await asyncio.sleep(wait)

    async def aclose(self) -> None:
        await self.inner.aclose()


def client(policy: RetryPolicy = RetryPolicy(), limits: httpx.Limits | None = None, **kwargs) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` (``base_url``, ``timeout``... as usual) whose calls retry per ``policy``."""
    inner = httpx.AsyncHTTPTransport(limits=limits) if limits is not None else httpx.AsyncHTTPTransport()
    return httpx.AsyncClient(transport=RetryingTransport(policy, inner), **kwargs)
