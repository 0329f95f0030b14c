"""Locust load for the shop: shoppers who browse, fill carts and check out, or a flash sale.

    SDLAB_SEED_FILE=seed.json locust -f loadtests/shop/locustfile.py --host http://127.0.0.1:8082

Shoppers (the default) pick tasks with explicit weights: a listing page (6), a product page
(10), a cart line (3), the cart (1), checkout of the cart (SDLAB_WRITE_WEIGHT, default 1).
``SDLAB_OPT_SCENARIO=flash-sale``: every user buys the seed's flash product, one each, at once.
Every checkout is retried with the same Idempotency-Key on 503 and on a timeout, as a careful
client does; each attempt and each 201 goes to SDLAB_ACK_LOG. Latencies are closed-loop (a
user waits for each answer); open-loop latencies come from load.k6.js.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid

from locust import FastHttpUser, constant, constant_throughput, task

from loadtests.shop.seed import load_seed

RATE = float(os.environ.get("SDLAB_RATE", "0") or 0)
USERS = int(os.environ.get("SDLAB_USERS", "50"))
WRITE_WEIGHT = int(os.environ.get("SDLAB_WRITE_WEIGHT", "1"))
SCENARIO = os.environ.get("SDLAB_OPT_SCENARIO", "shoppers")
RETRIES = 5
LISTING, PRODUCT, CART_LINE, CART, CHECKOUT = ("/api/v1/products", "/api/v1/products/{id}",
                                               "/api/v1/cart/items/{id}", "/api/v1/cart", "/api/v1/checkout")
_seed: dict = {}
_log_lock = threading.Lock()
_ack_log = None
_next_user = 0


def seed() -> dict:
    if not _seed:
        path = os.environ.get("SDLAB_SEED_FILE")
        if not path:
            raise RuntimeError("SDLAB_SEED_FILE is not set: seed first (python -m loadtests.shop.seed)")
        _seed.update(load_seed(path))
    return _seed


def log_write(record: dict) -> None:
    global _ack_log
    path = os.environ.get("SDLAB_ACK_LOG")
    if not path:
        return
    with _log_lock:
        if _ack_log is None:
            _ack_log = open(path, "a", buffering=1)
        _ack_log.write(json.dumps(record) + "\n")


def next_buyer() -> dict:
    global _next_user
    users = seed()["users"]
    _next_user += 1
    return users[(_next_user - 1) % len(users)]


class Buyer(FastHttpUser):
    """What both kinds of user share: a seeded buyer's login, and a checkout retried safely."""

    abstract = True

    def on_start(self) -> None:
        buyer = next_buyer()
        self.user_name = buyer["user"]
        self.auth = {"Authorization": f"Bearer {buyer['token']}"}
        self.bought = False

    def checkout(self, body: dict) -> None:
        key = str(uuid.uuid4())
        log_write({"event": "attempted", "user": self.user_name, "key": key})
        for attempt in range(RETRIES):
            with self.client.post(CHECKOUT, name=CHECKOUT, json=body, catch_response=True,
                                  headers={**self.auth, "Idempotency-Key": key}) as response:
                status = response.status_code
                if status in (201, 202):  # paid, or reserved with the payment pending (async checkout)
                    response.success()
                    log_write({"event": "acknowledged", "user": self.user_name, "key": key,
                               "order_id": response.json()["order_id"], "status": status})
                    return
                if status in (402, 409) and "idempotency_key_in_use" not in (response.text or ""):
                    response.success()  # declined or sold out: a correct answer, not a failure
                    return
                response.failure(f"status {status}: {(response.text or '')[:120]}")
            if status not in (0, 409, 429, 503):
                return
            time.sleep(min(2.0, 0.1 * 2**attempt))  # then retry with the same key


class Shopper(Buyer):
    # Closed loop: a slow server lowers the offered load (see the module docstring).
    wait_time = constant_throughput(RATE / USERS) if RATE > 0 else constant(0)
    abstract = SCENARIO == "flash-sale"

    def listing(self) -> None:
        params = {"category": random.choice(seed()["categories"]), "limit": 20}
        self.client.get(LISTING, name=LISTING, params=params)

    def product(self) -> None:
        self.client.get(f"/api/v1/products/{random.choice(seed()['products'])['id']}", name=PRODUCT)

    def cart_line(self) -> None:
        product = random.choice(seed()["products"])["id"]
        self.client.put(f"/api/v1/cart/items/{product}", name=CART_LINE, json={"quantity": random.randint(1, 2)},
                        headers=self.auth)

    def cart(self) -> None:
        self.client.get(CART, name=CART, headers=self.auth)

    def buy_cart(self) -> None:
        self.checkout({})

    tasks = {listing: 6, product: 10, cart_line: 3, cart: 1, buy_cart: WRITE_WEIGHT}


class FlashBuyer(Buyer):
    """One buyer, one try at the flash product (then idle): thousands of them at once is the sale."""

    wait_time = constant(1)
    # Locust runs every concrete user class in this module: only the scenario's is concrete.
    abstract = SCENARIO != "flash-sale"

    @task
    def buy(self) -> None:
        if self.bought:
            return
        self.bought = True
        self.checkout({"items": [{"product_id": seed()["flash_product"]["id"], "quantity": 1}]})
