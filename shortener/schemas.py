"""The shortener's JSON bodies as its OpenAPI document states them.

The create body's patterns and bounds are the rules the handler enforces, so a client (or a
fuzzer) that keeps to the schema is refused only for what no schema can say: an alias already
taken (409), a URL pointing at this shortener (403), a rate limit (429). The limits come from
:mod:`shortener.domain` and the settings, so they are stated once.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from services.errors import InvalidInput
from services.http import bounded_json_int
from shortener.domain import ALIAS_RE, MAX_EXPIRY, MIN_EXPIRY, RESERVED, validate_url

# RFC 3986 spelled in ASCII: the host a registered name (an international one in its xn-- form)
# or a bracketed IPv6 address, a port up to 65535, the rest printable. The domain would take
# a Unicode URL and encode it, but whether a Unicode host survives IDNA, and how long the URL
# grows once percent-encoded, are rules no JSON Schema can state; an ASCII URL has neither.
_REG_NAME = r"(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})+"
_H16 = r"[0-9A-Fa-f]{1,4}"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_LS32 = rf"(?:{_H16}:{_H16}|{_OCTET}(?:\.{_OCTET}){{3}})"
_IPV6 = "|".join((
    rf"(?:{_H16}:){{6}}{_LS32}",
    rf"::(?:{_H16}:){{5}}{_LS32}",
    rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
    rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
    rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
    rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
))
_PORT = r"(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
URL_PATTERN = rf"^[Hh][Tt][Tt][Pp][Ss]?://(?:{_REG_NAME}|\[(?:{_IPV6})\])(?::{_PORT}?)?(?:[/?#][!-~]*)?$"
_URL_RE = re.compile(URL_PATTERN)

# The alias rule of the domain, with its reserved paths (in any case) spelled out.
_RESERVED_ALIASES = "|".join(
    "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)
    for word in sorted(RESERVED) if ALIAS_RE.match(word)
)
ALIAS_PATTERN = rf"^(?!(?:{_RESERVED_ALIASES})$){ALIAS_RE.pattern[1:]}"

ExpirySeconds = bounded_json_int(int(MIN_EXPIRY.total_seconds()), int(MAX_EXPIRY.total_seconds()))

URL_DESCRIPTION = ("http(s) URL to shorten, in ASCII as RFC 3986 spells it: the host a name (an international "
                   "one in its xn-- form) or a bracketed IPv6 address, an optional port up to 65535, the rest "
                   "printable with anything else percent-encoded; up to {limit} characters. A URL pointing at "
                   "this shortener is refused with 403 (a link to itself would loop).")


def refuse_undocumented_url(url: str, max_length: int) -> str:
    """The URL if it has the documented shape, else InvalidInput: the domain's own reason when it
    has one (a scheme, credentials, a control character), or the ASCII rule above."""
    if len(url) <= max_length and _URL_RE.fullmatch(url):
        return url
    validate_url(url, frozenset(), max_length)
    raise InvalidInput("url is not in the form this API takes: ASCII only (the host in its xn-- form, the rest "
                       "percent-encoded), a host name or a bracketed IPv6 address, a port up to 65535",
                       code="url_invalid")


def create_link_body(max_url_length: int) -> type[BaseModel]:
    """The create body for this deployment's URL limit (``max_url_length`` is a setting)."""

    class CreateLink(BaseModel):
        url: str = Field(..., description=URL_DESCRIPTION.format(limit=max_url_length),
                         json_schema_extra={"pattern": URL_PATTERN, "maxLength": max_url_length})
        alias: str | None = Field(None, description="custom code: 3-32 of A-Z a-z 0-9 _ -, not a reserved path "
                                  f"({', '.join(sorted(RESERVED))}, in any case)",
                                  json_schema_extra={"pattern": ALIAS_PATTERN})
        expires_in: ExpirySeconds | None = Field(None, description="seconds until the link expires")

        @field_validator("url")
        @classmethod
        def _documented_shape(cls, url: str) -> str:
            return refuse_undocumented_url(url, max_url_length)

    return CreateLink


class LinkOut(BaseModel):
    code: str
    short_url: str
    url: str
    expires_at: datetime | None
    delete_token: str | None = Field(None, description="only for the creator; needed to delete the link")


class LinkInfo(BaseModel):
    code: str
    short_url: str
    url: str
    created_at: datetime
    expires_at: datetime | None
    clicks: int
