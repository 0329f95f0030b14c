"""Fuzz messaging's REST API (OpenAPI spec) with schemathesis against a real instance, logged in.

Every check runs, with no exclusion: no 5xx, status codes, content types, headers (a 401's
WWW-Authenticate, a 503's Retry-After) and bodies (the kit's one error body) match the schema,
schema-valid requests are accepted and invalid ones refused, unsupported methods get a 405 with
an Allow header, ``ignored_auth`` (the bearer scheme is declared, so each operation is also sent
without a token and with a bad one: 401), and the stateful links (a created conversation's id
feeds its history). The rules the handlers enforce beyond types are stated in the schema so that
the positive and negative checks hold: the user-name pattern, presence's
``name(,name){0,999}``, a conversation id's 32 hex digits, a title that is not blank and has no
NUL (PostgreSQL text cannot hold one; it was a 500), ``members`` of at most 999 names: the caller
joins too, so no array the schema admits makes more than the 1000 members a conversation holds
(whether a name is the caller's own depends on who calls, which no schema can state; with 1000
names allowed, 1000 distinct ones besides the caller were a 422 left to chance).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import httpx


def test_messaging_openapi_fuzz_finds_nothing(lab, tmp_path):
    instance = lab.state["components"]["messaging-1"]["url"]
    login = httpx.post(f"{instance}/api/v1/sessions", json={"user": f"fuzz_{uuid.uuid4().hex[:8]}"}, timeout=10)
    assert login.status_code == 201, login.text
    token = login.json()["token"]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run", f"{instance}/openapi.json",
         "--checks", "all", "--header", f"Authorization: Bearer {token}",
         "--max-examples", "40", "--request-timeout", "10", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
        cwd=tmp_path,  # schemathesis keeps a crash cache (.schemathesis/) in its working directory
    )
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Tested: 5" in result.stdout, result.stdout[-2000:]
    print(result.stdout[-1200:])  # the run's summary, for a log read with pytest -s
