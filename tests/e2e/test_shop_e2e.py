"""The shop through Caddy on the real stack: login, catalog, cart, checkout with idempotency keys,
orders, and one user never reaching another's cart or orders."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest


@pytest.fixture(scope="module")
def base(lab) -> str:
    return f"http://127.0.0.1:{lab.env['SDLAB_SHOP_PORT']}"


def _auth(client: httpx.Client, user: str) -> dict:
    response = client.post("/api/v1/sessions", json={"user": user})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _tag() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def admin(base) -> dict:
    with httpx.Client(base_url=base, timeout=10) as client:
        return _auth(client, "admin")


def _product(client: httpx.Client, admin: dict, stock: int, price: int = 1000, category: str | None = None) -> str:
    body = {"name": f"Thing {_tag()}", "category": category or f"cat_{_tag()}", "price_cents": price, "stock": stock}
    response = client.post("/api/v1/products", json=body, headers=admin)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["stock"] == stock and created["id"].isdigit()
    return created["id"]


def test_catalog_admin_only_validation_and_pages(base, admin):
    with httpx.Client(base_url=base, timeout=10) as client:
        shopper = _auth(client, f"s_{_tag()}")
        body = {"name": "Mug", "category": "kitchen", "price_cents": 500, "stock": 5}
        assert client.post("/api/v1/products", json=body).status_code == 401
        forbidden = client.post("/api/v1/products", json=body, headers=shopper)
        assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "not_admin"
        for bad in ({**body, "name": ""}, {**body, "price_cents": -1}, {**body, "stock": -3}):
            refused = client.post("/api/v1/products", json=bad, headers=admin)
            assert refused.status_code == 422 and refused.json()["error"]["message"]
        product = _product(client, admin, stock=7, price=1234)
        page = client.get(f"/api/v1/products/{product}").json()
        assert page == {"id": product, "name": page["name"], "category": page["category"], "price_cents": 1234,
                        "stock": 7}
        assert client.get("/api/v1/products/99999999").status_code == 404
        assert client.get("/api/v1/products/not-a-number").status_code in (404, 422)


def test_listing_is_merged_over_shards_sorted_and_paged(base, admin):
    category = f"cat_{_tag()}"
    with httpx.Client(base_url=base, timeout=10) as client:
        made = {_product(client, admin, stock=1, price=100 + 10 * i, category=category) for i in range(9)}
        seen, cursor, prices = [], None, []
        while True:
            params = {"category": category, "limit": 4, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/v1/products", params=params).json()
            assert page["partial"] is False
            seen += [p["id"] for p in page["items"]]
            prices += [p["price_cents"] for p in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert sorted(seen) == sorted(made) and len(seen) == len(made) and prices == sorted(prices)
        assert client.get("/api/v1/products", params={"cursor": "garbage!"}).status_code == 422
        empty = client.get("/api/v1/products", params={"category": category, "min_price": 500, "max_price": 100})
        assert empty.status_code == 200 and empty.json()["items"] == []  # no price is in an empty range


def test_cart_checkout_and_idempotent_replay(base, admin):
    with httpx.Client(base_url=base, timeout=10) as client:
        buyer, other = _auth(client, f"b_{_tag()}"), _auth(client, f"o_{_tag()}")
        product = _product(client, admin, stock=5, price=250)
        assert client.put(f"/api/v1/cart/items/{product}", json={"quantity": -1}, headers=buyer).status_code == 422
        cart = client.put(f"/api/v1/cart/items/{product}", json={"quantity": 2}, headers=buyer).json()
        assert cart == {"items": [{"product_id": product, "quantity": 2, "price_cents": 250}], "total_cents": 500}
        assert client.get("/api/v1/cart", headers=other).json() == {"items": [], "total_cents": 0}
        missing = client.post("/api/v1/checkout", json={}, headers=buyer)
        assert missing.status_code == 400 and "Idempotency-Key" in missing.json()["error"]["message"]
        key = {"Idempotency-Key": str(uuid.uuid4())}
        first = client.post("/api/v1/checkout", json={}, headers={**buyer, **key})
        assert first.status_code == 201, first.text
        order = first.json()
        assert order["status"] == "paid" and order["total_cents"] == 500
        # The retry of a cart checkout finds the cart emptied, and still gets the first answer.
        assert client.get("/api/v1/cart", headers=buyer).json()["items"] == []
        again = client.post("/api/v1/checkout", json={}, headers={**buyer, **key})
        assert again.status_code == 201 and again.json() == order and again.headers["idempotent-replayed"] == "true"
        reused = client.post("/api/v1/checkout", json={"items": [{"product_id": product, "quantity": 1}]},
                             headers={**buyer, **key})
        assert reused.status_code == 409 and reused.json()["error"]["code"] == "idempotency_key_reused"
        # The same key is another user's own key: no clash across users.
        theirs = client.post("/api/v1/checkout", json={"items": [{"product_id": product, "quantity": 1}]},
                             headers={**other, **key})
        assert theirs.status_code == 201
        assert client.get(f"/api/v1/products/{product}").json()["stock"] == 2
        assert client.get(f"/api/v1/orders/{order['order_id']}", headers=buyer).json() == order
        assert client.get(f"/api/v1/orders/{order['order_id']}", headers=other).status_code == 404
        listed = client.get("/api/v1/orders", headers=buyer).json()["items"]
        assert [o["order_id"] for o in listed] == [order["order_id"]]


def test_out_of_stock_names_the_product_and_takes_nothing(base, admin):
    with httpx.Client(base_url=base, timeout=10) as client:
        buyer = _auth(client, f"b_{_tag()}")
        scarce, plenty = _product(client, admin, stock=1), _product(client, admin, stock=10)
        body = {"items": [{"product_id": plenty, "quantity": 3}, {"product_id": scarce, "quantity": 2}]}
        refused = client.post("/api/v1/checkout", json=body, headers={**buyer, "Idempotency-Key": str(uuid.uuid4())})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "out_of_stock"
        assert scarce in refused.json()["error"]["message"]
        assert client.get(f"/api/v1/products/{plenty}").json()["stock"] == 10  # its reservation was undone
        assert client.get(f"/api/v1/products/{scarce}").json()["stock"] == 1


async def test_concurrent_duplicates_make_one_order(base, admin):
    """Ten copies of one checkout at once (a double-clicking client): one order, one charge;
    the others are told the key is in use or get the first answer replayed."""
    with httpx.Client(base_url=base, timeout=10) as sync:
        buyer = _auth(sync, f"d_{_tag()}")
        product = _product(sync, admin, stock=50)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"items": [{"product_id": product, "quantity": 1}]}
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        answers = await asyncio.gather(*(client.post("/api/v1/checkout", json=body, headers={**buyer, **key})
                                         for _ in range(10)))
        statuses = sorted(a.status_code for a in answers)
        assert set(statuses) <= {201, 409} and 201 in statuses, statuses
        assert all(a.json()["error"]["code"] == "idempotency_key_in_use" for a in answers if a.status_code == 409)
        assert len({a.json()["order_id"] for a in answers if a.status_code == 201}) == 1
        orders = (await client.get("/api/v1/orders", headers=buyer)).json()["items"]
        assert len(orders) == 1
        assert (await client.get(f"/api/v1/products/{product}")).json()["stock"] == 49


def test_flash_sale_never_oversells(base, admin):
    """Forty buyers at once for five units: five paid orders, the rest sold out, stock 0."""
    with httpx.Client(base_url=base, timeout=10) as sync:
        product = _product(sync, admin, stock=5)
        buyers = [_auth(sync, f"f{i}_{_tag()}") for i in range(40)]

    async def buy(client: httpx.AsyncClient, auth: dict) -> int:
        response = await client.post("/api/v1/checkout", json={"items": [{"product_id": product, "quantity": 1}]},
                                     headers={**auth, "Idempotency-Key": str(uuid.uuid4())})
        return response.status_code

    async def sale() -> list[int]:
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            return await asyncio.gather(*(buy(client, b) for b in buyers))

    statuses = asyncio.run(sale())
    assert statuses.count(201) == 5 and statuses.count(409) == 35, statuses
    with httpx.Client(base_url=base, timeout=10) as client:
        assert client.get(f"/api/v1/products/{product}").json()["stock"] == 0


def test_a_burst_past_what_runs_at_once_sells_every_unit_and_refuses_the_rest_cleanly(base, admin):
    """300 buyers for 50 units, 100 requests in flight through Caddy: a burst queues (admission, a
    bounded wait) instead of timing out inside as if PostgreSQL were down. Every unit sells; every
    other buyer is told sold out (409), or busy (429, Retry-After); never 503 while the databases
    answer."""
    with httpx.Client(base_url=base, timeout=10) as sync:
        product = _product(sync, admin, stock=50)
        buyers = [_auth(sync, f"b{i}_{_tag()}") for i in range(300)]

    async def sale() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        in_flight = asyncio.Semaphore(100)
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
            async def buy(auth: dict) -> httpx.Response:
                async with in_flight:
                    return await client.post("/api/v1/checkout",
                                             json={"items": [{"product_id": product, "quantity": 1}]},
                                             headers={**auth, "Idempotency-Key": str(uuid.uuid4())})
            return await asyncio.gather(*(buy(b) for b in buyers))

    answers = asyncio.run(sale())
    statuses = [a.status_code for a in answers]
    codes = sorted({a.json()["error"]["code"] for a in answers if a.status_code >= 400})
    assert statuses.count(201) == 50, (statuses.count(201), codes)
    assert set(statuses) <= {201, 409, 429}, sorted(set(statuses))
    assert set(codes) <= {"out_of_stock", "busy"}, codes
    assert all(a.headers.get("Retry-After") for a in answers if a.status_code == 429)
    with httpx.Client(base_url=base, timeout=10) as client:
        assert client.get(f"/api/v1/products/{product}").json()["stock"] == 0
