"""Locust load for the URL shortener: Zipf-popular redirects of seeded links, and new links.

    SDLAB_SEED_FILE=results/seed.json locust -f loadtests/shortener/locustfile.py --host http://127.0.0.1:8080

Environment: SDLAB_SEED_FILE (required), SDLAB_ZIPF_S, SDLAB_READ_WEIGHT, SDLAB_WRITE_WEIGHT,
SDLAB_RATE, SDLAB_USERS, SDLAB_ACK_LOG. The engine's Locust driver adds its per-second timeline and
the run's load shape (services/lab/generators/locust_timeline.py, locust_shape.py).
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
import random
import uuid

from locust import FastHttpUser, constant, constant_throughput

from loadtests.shortener.seed import load_seed, random_client_address

ZIPF_S = float(os.environ.get("SDLAB_ZIPF_S", "1.1"))
READ_WEIGHT = int(os.environ.get("SDLAB_READ_WEIGHT", "10"))
WRITE_WEIGHT = int(os.environ.get("SDLAB_WRITE_WEIGHT", "1"))
RATE = float(os.environ.get("SDLAB_RATE", "0") or 0)
USERS = int(os.environ.get("SDLAB_USERS", "50"))

_codes: list[str] = []
_cumulative: list[float] = []
_ack_log = None


def _load_popularity() -> None:
    """Seeded codes and their cumulative Zipf weights (rank r weighs 1/r**s), once per process."""
    if _codes:
        return
    path = os.environ.get("SDLAB_SEED_FILE")
    if not path:
        raise RuntimeError("SDLAB_SEED_FILE is not set: seed links first (python -m loadtests.shortener.seed)")
    codes = [link["code"] for link in load_seed(path)]
    _cumulative.extend(itertools.accumulate(1.0 / r**ZIPF_S for r in range(1, len(codes) + 1)))
    _codes.extend(codes)


def popular_code() -> str:
    i = bisect.bisect_right(_cumulative, random.random() * _cumulative[-1])
    return _codes[min(i, len(_codes) - 1)]


def _log_create(event: str, url: str, code: str | None = None) -> None:
    global _ack_log
    path = os.environ.get("SDLAB_ACK_LOG")
    if not path:
        return
    if _ack_log is None:
        _ack_log = open(path, "a", buffering=1)
    record = {"event": event, "url": url} if code is None else {"event": event, "code": code, "url": url}
    _ack_log.write(json.dumps(record) + "\n")


class ShortenerUser(FastHttpUser):
    # Locust is closed-loop: a user sends its next request only after the last one returned,
    # so a slow server lowers the offered rate (coordinated omission). That is why the engine
    # reports offered against achieved rate.
    wait_time = constant_throughput(RATE / USERS) if RATE > 0 else constant(0)

    def on_start(self) -> None:
        _load_popularity()
        self.headers = {"X-Forwarded-For": random_client_address()}

    def redirect(self) -> None:
        with self.client.get(f"/{popular_code()}", name="/{code}", headers=self.headers,
                             allow_redirects=False, catch_response=True) as response:
            if response.status_code == 302:
                response.success()
            else:
                response.failure(f"status {response.status_code}")

    def create(self) -> None:
        url = f"https://example.com/load/{uuid.uuid4().hex}"
        _log_create("attempted", url)
        with self.client.post("/api/v1/links", name="/api/v1/links", json={"url": url}, headers=self.headers,
                              catch_response=True) as response:
            if response.status_code in (200, 201):
                response.success()
                if response.status_code == 201:
                    _log_create("acknowledged", url, response.json()["code"])
            elif response.status_code == 429:
                # The body names the client and the wait; leave both out so Locust counts one error.
                response.failure("status 429: rate_limited")
            else:
                response.failure(f"status {response.status_code}: {(response.text or '')[:200]}")

    # Weights from the environment; plain methods, since @task would add them a second time.
    tasks = {redirect: READ_WEIGHT, create: WRITE_WEIGHT}
