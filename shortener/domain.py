"""The shortener's pure logic: validation, code schemes, links, click batches. No I/O here."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import socket
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit, urlunsplit

from services.errors import Forbidden, Gone, InvalidInput

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ALIAS_RE = re.compile(r"^[A-Za-z0-9_-]{3,32}$")
# Paths the service answers itself; no link may take them.
RESERVED = frozenset(
    {"api", "healthz", "readyz", "metrics", "docs", "redoc", "openapi.json", "favicon.ico",
     "robots.txt", "static", "admin", "login", "logout", "health", "status"}
)
MIN_EXPIRY = timedelta(seconds=1)
MAX_EXPIRY = timedelta(days=3650)


# --- commands and events -------------------------------------------------------------------

@dataclass(frozen=True)
class ShortenUrl:
    url: str
    alias: str | None = None
    expires_in: timedelta | None = None


@dataclass(frozen=True)
class Link:
    code: str
    url: str
    created_at: datetime
    expires_at: datetime | None = None
    custom_alias: bool = False
    clicks: int = 0

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def require_live(self, now: datetime) -> None:
        if self.expired(now):
            raise Gone(f"link {self.code!r} expired at {self.expires_at.isoformat()}", code="link_expired")


@dataclass(frozen=True)
class LinkCreated:
    link: Link
    delete_token: str | None  # None when the URL already had a link: only its creator may delete it
    created: bool


@dataclass
class LinkClicked:
    """A batch of clicks counted by one instance; ``batch_id`` makes redelivery harmless."""

    batch_id: str
    instance: str
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"batch_id": self.batch_id, "instance": self.instance, "counts": self.counts}

    @classmethod
    def from_json(cls, data: dict) -> "LinkClicked":
        counts = {str(k): int(v) for k, v in dict(data["counts"]).items() if int(v) > 0}
        return cls(batch_id=str(data["batch_id"]), instance=str(data["instance"]), counts=counts)


# --- validation ----------------------------------------------------------------------------

def validate_url(url: str, own_hosts: frozenset[str], max_length: int = 2048) -> str:
    """The URL as it will be stored and sent in ``Location`` (ASCII), or InvalidInput naming the
    problem (Forbidden for a URL pointing at this shortener).

    Every check runs on the normalised URL, so a Unicode spelling of a host (full-width
    letters, an ideographic full stop) cannot slip past the own-host check.
    """
    if len(url) > max_length:
        raise InvalidInput(f"url is {len(url)} characters; the limit is {max_length}", code="url_too_long")
    if any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp") for ch in url):
        raise InvalidInput("url contains whitespace or control characters; percent-encode them", code="url_invalid")
    try:
        parts = urlsplit(url)
        parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidInput(f"url is not a valid URL: {exc}", code="url_invalid") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = scheme or "none"
        raise InvalidInput(f"url scheme {shown!r} is not allowed; only http and https", code="url_scheme")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("url contains credentials (user:password@); remove them", code="url_credentials")
    if not parts.hostname:
        raise InvalidInput("url has no host", code="url_invalid")
    stored = url if url.isascii() else _ascii_url(url)
    if len(stored) > max_length:
        raise InvalidInput(f"url is {len(stored)} characters once encoded as ASCII; the limit is {max_length}",
                           code="url_too_long")
    host = _canonical_host(urlsplit(stored).hostname or "")
    if host in own_hosts or host in {_canonical_host(h) for h in own_hosts}:
        # Forbidden, not InvalidInput: the URL is well formed, and which hosts are this shortener's is
        # a deployment's setting that no request schema can state.
        raise Forbidden(f"url points at this shortener ({host}); links to itself would loop", code="url_self")
    return stored


def _canonical_host(host: str) -> str:
    """Lower case, no trailing dot, and IPv4 shorthands (``127.1``, ``2130706433``) as dotted quads."""
    host = host.lower().rstrip(".")
    if host and all(c in "0123456789abcdefx." for c in host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            pass
    return host


def _ascii_url(url: str) -> str:
    """IDNA for the host, percent-encoding for the rest: a Location header must be ASCII."""
    parts = urlsplit(url)
    try:
        host = parts.hostname.encode("idna").decode() if parts.hostname else ""
    except UnicodeError:
        raise InvalidInput("url host is not a valid internationalised domain name", code="url_invalid") from None
    if any(ch.isspace() for ch in host):
        raise InvalidInput("url host contains whitespace", code="url_invalid")
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets
    netloc = host + (f":{parts.port}" if parts.port is not None else "")
    keep = "!#$%&'()*+,-./:;=?@[]_~"
    return urlunsplit((parts.scheme, netloc, quote(parts.path, safe=keep), quote(parts.query, safe=keep),
                       quote(parts.fragment, safe=keep)))


def validate_alias(alias: str) -> str:
    if not ALIAS_RE.match(alias):
        raise InvalidInput("alias must be 3-32 characters of A-Z, a-z, 0-9, '_' or '-'", code="alias_invalid")
    if alias.lower() in RESERVED:
        raise InvalidInput(f"alias {alias!r} is reserved", code="alias_reserved")
    return alias


def validate_expiry(expires_in: timedelta | None) -> timedelta | None:
    if expires_in is not None and not (MIN_EXPIRY <= expires_in <= MAX_EXPIRY):
        raise InvalidInput("expires_in must be between 1 second and 10 years", code="expiry_invalid")
    return expires_in


def is_code_shaped(path_segment: str) -> bool:
    return bool(ALIAS_RE.match(path_segment)) and path_segment.lower() not in RESERVED


# --- code schemes ----------------------------------------------------------------------------

def base62(n: int, length: int) -> str:
    out = []
    for _ in range(length):
        n, r = divmod(n, 62)
        out.append(ALPHABET[r])
    return "".join(reversed(out))


def hash_code(url: str, salt: int, length: int = 7) -> str:
    """base62 of a hash of the URL; on a collision the caller retries with the next salt."""
    digest = hashlib.sha256(f"{salt}:{url}".encode()).digest()
    return base62(int.from_bytes(digest[:8], "big") % 62**length, length)


def random_code(length: int = 7) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


class CounterObfuscator:
    """A keyed permutation of [0, 62**length): unique codes from a counter, without the order showing.

    A balanced Feistel network over the smallest even number of bits that covers the range,
    with cycle walking: a result outside the range is permuted again until it falls inside.
    A permutation is a bijection, so distinct counters always give distinct codes.
    """

    ROUNDS = 4

    def __init__(self, secret: bytes, length: int = 7) -> None:
        self.length = length
        self.size = 62**length
        bits = self.size.bit_length()
        self.half = (bits + 1) // 2
        self.mask = (1 << self.half) - 1
        self._keys = [hashlib.sha256(secret + bytes([i])).digest() for i in range(self.ROUNDS)]

    def _round(self, i: int, value: int) -> int:
        mac = hmac.new(self._keys[i], value.to_bytes(8, "big"), hashlib.sha256).digest()
        return int.from_bytes(mac[:8], "big") & self.mask

    def _permute(self, n: int) -> int:
        left, right = n >> self.half, n & self.mask
        for i in range(self.ROUNDS):
            left, right = right, left ^ self._round(i, right)
        return (left << self.half) | right

    def permute(self, n: int) -> int:
        if not 0 <= n < self.size:
            raise ValueError(f"counter {n} outside [0, {self.size})")
        value = self._permute(n)
        while value >= self.size:
            value = self._permute(value)
        return value

    def code(self, n: int) -> str:
        return base62(self.permute(n), self.length)


# --- delete tokens ---------------------------------------------------------------------------

def new_delete_token() -> str:
    return secrets.token_urlsafe(24)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def token_matches(token: str, digest: bytes | None) -> bool:
    return digest is not None and hmac.compare_digest(token_digest(token), digest)


def url_digest(url: str) -> bytes:
    return hashlib.sha256(url.encode()).digest()
