"""Fuzz the shop's REST API (OpenAPI spec) with schemathesis against a real instance, logged in
as an admin (so product creation is reached too).

Every check runs, with no exclusion: no 5xx, status codes, content types, headers and bodies
match the schema, schema-valid requests are accepted and invalid ones refused, unsupported methods
get a 405 with an Allow header, ``ignored_auth`` (each operation is also sent without a token
and with a bad one: 401). The rules the handlers enforce beyond types are in the schema: ids are
1-19 decimal digits, names are not blank and hold no NUL, quantities and prices have bounds.
Each valid Idempotency-Key is made unique per call (see shop_fuzz_hooks.py for why).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def test_shop_openapi_fuzz_finds_nothing(lab, tmp_path):
    instance = lab.state["components"]["shop-1"]["url"]
    login = httpx.post(f"{instance}/api/v1/sessions", json={"user": "admin"}, timeout=10)
    assert login.status_code == 201, login.text
    result = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run", f"{instance}/openapi.json",
         "--checks", "all", "--header", f"Authorization: Bearer {login.json()['token']}",
         "--max-examples", "40", "--request-timeout", "10", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.e2e.shop_fuzz_hooks", "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stdout[-5000:]
    assert "Tested: 9" in result.stdout, result.stdout[-2000:]
