"""Error kinds shared by every design's domain.

Domains and adapters raise these (pure Python, no web framework); only the entrypoints turn them
into status codes (:mod:`services.http`) or error frames.
"""

from __future__ import annotations


class LabError(Exception):
    """Base of every expected error; ``code`` is a stable machine-readable name."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidInput(LabError):
    code = "invalid_input"


class NotFound(LabError):
    code = "not_found"


class Gone(LabError):
    code = "gone"


class Conflict(LabError):
    code = "conflict"


class Unauthorized(LabError):
    """No credentials, or credentials that do not check out."""

    code = "unauthorized"


class Forbidden(LabError):
    code = "forbidden"


class PaymentRequired(LabError):
    """A payment was refused (HTTP's 402)."""

    code = "payment_required"


class RateLimited(LabError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class Unavailable(LabError):
    """A dependency is down or overloaded; the caller should retry later."""

    code = "unavailable"

    def __init__(self, message: str, *, retry_after_s: float = 1.0, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class DependencyUnavailable(Unavailable):
    """A server a design depends on (PostgreSQL, Redis, Kafka, the payment provider) did not answer:
    timeout, refused, reset. Adapters raise only a subclass of this, which names the dependency.

    A use case may catch it to answer more precisely (a cache miss, a specific code or wording);
    one it lets through is still an :class:`Unavailable`, so it reaches the client through the one
    mapping every entrypoint uses (503 with Retry-After, or an error frame), never as a 500.
    """

    dependency = "a dependency"

    def __init__(self, reason: str = "", *, dependency: str | None = None, retry_after_s: float = 1.0,
                 code: str | None = None) -> None:
        super().__init__(reason, retry_after_s=retry_after_s, code=code)
        if dependency is not None:
            self.dependency = dependency
