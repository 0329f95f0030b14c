"""How fresh a read must be, chosen per request (see :mod:`services.clients.read_routing`).

The client states it with headers: ``X-Read-After-LSN: <lsn>`` (the ``X-Commit-LSN`` a write
answered: read-your-writes), or ``X-Read-From: primary``; with neither, a read may be served by a
replica and be as stale as its replication lag. Pure: no I/O, no framework.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.errors import InvalidInput

COMMIT_LSN_HEADER = "X-Commit-LSN"
READ_AFTER_HEADER = "X-Read-After-LSN"
READ_FROM_HEADER = "X-Read-From"
# A WAL position as the number of bytes since its start (pg_lsn - '0/0'), in decimal: a form a schema
# states exactly (schema fuzzers ignore a header's pattern and send "0"), and 19 digits stay below
# pg_lsn's 2**64.
LSN_PATTERN = r"^[0-9]{1,19}$"
_LSN = re.compile(LSN_PATTERN)


class BadConsistency(InvalidInput):
    """A read's consistency headers cannot be honoured as written (a 4xx at the entrypoint)."""

    code = "invalid_consistency"


@dataclass(frozen=True)
class ReadConsistency:
    after_lsn: int | None = None
    primary: bool = False

    @classmethod
    def from_headers(cls, read_after: str | None, read_from: str | None) -> ReadConsistency:
        if read_from is not None and read_from.strip().lower() not in ("primary", "replica"):
            raise BadConsistency(f"{READ_FROM_HEADER} must be 'primary' or 'replica', not {read_from[:40]!r}")
        if read_after is not None and not _LSN.fullmatch(read_after.strip()):
            raise BadConsistency(f"{READ_AFTER_HEADER} must be the WAL position {COMMIT_LSN_HEADER} gave (1-19 digits)")
        return cls(after_lsn=int(read_after.strip()) if read_after is not None else None,
                   primary=read_from is not None and read_from.strip().lower() == "primary")


STALE_OK = ReadConsistency()
FROM_PRIMARY = ReadConsistency(primary=True)
