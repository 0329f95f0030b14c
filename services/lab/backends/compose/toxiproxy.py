"""Network faults through Toxiproxy, which the compose deployment puts in front of every shared part."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from services.lab.errors import LabCommandError

TOXICS = ("latency", "bandwidth", "reset", "down", "up", "clear")


@dataclass(frozen=True)
class ToxiproxyCall:
    method: str
    path: str
    body: dict | None


def toxic_calls(part: str, toxic: str, *, latency_ms: int = 100, jitter_ms: int = 0, rate_kbps: int = 64) -> list[ToxiproxyCall]:
    """The Toxiproxy API calls for a network fault on the proxy in front of ``part``."""
    if toxic == "latency":
        attrs = {"latency": latency_ms, "jitter": jitter_ms}
        return [ToxiproxyCall("POST", f"/proxies/{part}/toxics", {"name": f"{part}-latency", "type": "latency", "stream": "downstream", "toxicity": 1.0, "attributes": attrs})]
    if toxic == "bandwidth":
        attrs = {"rate": rate_kbps}
        return [ToxiproxyCall("POST", f"/proxies/{part}/toxics", {"name": f"{part}-bandwidth", "type": "bandwidth", "stream": "downstream", "toxicity": 1.0, "attributes": attrs})]
    if toxic == "reset":
        attrs = {"timeout": 0}
        return [ToxiproxyCall("POST", f"/proxies/{part}/toxics", {"name": f"{part}-reset", "type": "reset_peer", "stream": "downstream", "toxicity": 1.0, "attributes": attrs})]
    if toxic == "down":
        return [ToxiproxyCall("POST", f"/proxies/{part}", {"enabled": False})]
    if toxic == "up":
        return [ToxiproxyCall("POST", f"/proxies/{part}", {"enabled": True})]
    if toxic == "clear":
        return [ToxiproxyCall("POST", "/reset", None)]
    raise LabCommandError(f"unknown toxic {toxic!r}; choose from: {', '.join(TOXICS)}")


def apply_toxic(toxiproxy_url: str, calls: list[ToxiproxyCall]) -> str:
    for call in calls:
        data = json.dumps(call.body).encode() if call.body is not None else None
        req = urllib.request.Request(f"{toxiproxy_url}{call.path}", data=data, method=call.method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=5):
                pass
        except urllib.error.HTTPError as exc:
            raise LabCommandError(f"Toxiproxy refused {call.method} {call.path}: {exc.code} {exc.read()[:200]!r}") from None
        except OSError as exc:
            raise LabCommandError(
                f"cannot reach Toxiproxy at {toxiproxy_url} ({exc}); toxics need compose mode with the official images (`docker compose up`; the stand-in run has no Toxiproxy)"
            ) from None
    return f"applied {len(calls)} Toxiproxy call(s)"
