"""Fuzz the shortener's OpenAPI spec with schemathesis against a real instance.

Every check runs, with no exclusion: no 5xx, status codes, content types, headers and bodies
match the schema, schema-valid requests are accepted and invalid ones refused, and the stateful
links between operations. The create body's schema states what the handler enforces
(shortener/schemas.py): the url is an ASCII http(s) URL with a registered-name or bracketed IPv6
host and a port up to 65535, at most ``max_url_length`` characters; the alias is 3-32 of
A-Z a-z 0-9 _ - and not a reserved path in any case; expires_in is 1 s to 10 years.

One rule is not expressible: a url whose host is this shortener's own (its public host and
``own_hosts``, a deployment's setting, in any IPv4 spelling such as ``2130706433``) is refused,
since the link would loop. It is a 403 ``url_self``, which the positive-data check counts as a
refusal a valid request may get, not a 422. Another rule depends on the clock: a link read after
it expired is 410 ``link_expired``, which shortener_schemathesis.toml allows for the two reads (and
nothing else), since the stateful phase may read a link it created with a short expiry.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CONFIG = Path(__file__).with_name("shortener_schemathesis.toml")


def test_openapi_fuzz_finds_nothing(lab, tmp_path):
    instance = lab.state["components"]["shortener-1"]["url"]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(CONFIG),
         "run", f"{instance}/openapi.json",
         "--checks", "all",
         "--max-examples", "40", "--request-timeout", "10", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
        cwd=tmp_path,  # schemathesis keeps a crash cache (.schemathesis/) in its working directory
    )
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Tested: 4" in result.stdout, result.stdout[-2000:]
    print(result.stdout[-1200:])  # the run's summary, for a log read with pytest -s
