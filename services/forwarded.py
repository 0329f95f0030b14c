"""The client's address behind the load balancer: X-Forwarded-For, believed from trusted proxies only.

Used wherever a limit is kept per client (the shortener's create limit, the lab login's).
"""

from __future__ import annotations

import ipaddress

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def client_address(request_client: str | None, forwarded_for: str | None,
                   trusted: Networks) -> str:
    """The client's address: X-Forwarded-For is believed only when it comes from a trusted proxy.

    Of the forwarded chain, the rightmost address that is not a trusted proxy is the client as
    our own proxy saw it; everything left of it could be forged by the client.
    """
    peer = request_client or "unknown"
    if not forwarded_for or not _is_trusted(peer, trusted):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer
        if not _is_trusted(hop, trusted):
            return hop
    return peer


def _is_trusted(address: str, trusted: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def trusted_networks(entries: list[str]) -> Networks:
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)
