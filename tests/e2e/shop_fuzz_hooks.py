"""Schemathesis hooks for the shop's fuzz test (loaded through SCHEMATHESIS_HOOKS).

A schema-valid Idempotency-Key is replaced by a fresh UUID on every call: generated keys repeat
(hypothesis shrinks towards "0"), and a repeated key with another body is rightly refused with 422
``idempotency_key_reused``, which the fuzzer would call a valid request rejected. Key reuse has
its own tests (test_shop_e2e.py); invalid keys are left as generated, so the negative checks keep them.
"""

from __future__ import annotations

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"^[ -~]*[!-~][ -~]*$")


def _drops_a_parameter(case) -> bool:
    """A coverage case that leaves a required parameter out on purpose (such as the Authorization
    header): left exactly as generated, since an edit makes schemathesis re-derive what it tests."""
    data = getattr(getattr(case.meta, "phase", None), "data", None)
    return "MISSING" in str(getattr(data, "scenario", "")).upper()


@schemathesis.hook
def before_call(context, case, **kwargs) -> None:
    if _drops_a_parameter(case):
        return
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and len(key) <= 255 and VALID_KEY.fullmatch(key):
        case.headers["Idempotency-Key"] = str(uuid.uuid4())
