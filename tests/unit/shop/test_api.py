"""The shop's HTTP API over in-memory fakes: statuses, error codes and idempotent checkout as a
client sees them (``/api/v1``; ids are decimal strings)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from services.admission import Admission
from services.app import create_service_app
from services.auth import LoginGuard, TokenSigner, sessions_router
from services.idempotency import MAX_IDEMPOTENCY_KEY
from shop.api import ID, NO_NUL, build_router
from shop.config import ShopSettings
from shop.domain import MAX_NAME, MAX_PRICE_CENTS, OrderStatus
from shop.saga import CheckoutSaga
from shop.service import ShopService
from shop.sharding import compose_id
from tests.unit.shop.fakes import (
    Clock,
    FakeCache,
    FakeCarts,
    FakeCatalog,
    FakeOrders,
    FakePayments,
)


@dataclass
class Api:
    client: TestClient
    catalog: FakeCatalog
    orders: FakeOrders
    carts: FakeCarts
    cache: FakeCache
    payments: FakePayments
    lamp: str
    mug: str

    password: str | None = None  # the lab password, when the shop is guarded

    def login(self, user: str) -> dict[str, str]:
        response = self.client.post("/api/v1/sessions", json={"user": user, "password": self.password})
        assert response.status_code == 201, response.text
        return {"Authorization": f"Bearer {response.json()['token']}"}

    def checkout(self, user: str, key: str | None, body: dict | None = None):
        headers = self.login(user)
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.client.post("/api/v1/checkout", json=body, headers=headers)


def _items(*pairs: tuple[str, int]) -> dict:
    return {"items": [{"product_id": pid, "quantity": q} for pid, q in pairs]}


def _error(response) -> str:
    return response.json()["error"]["code"]


@pytest.fixture
def payments(request) -> FakePayments:
    """Scripted by ``@pytest.mark.parametrize("payments", [{...}], indirect=True)``."""
    return FakePayments(**getattr(request, "param", {}))


@pytest.fixture
def shop_settings(request) -> ShopSettings:
    """Overridden by ``@pytest.mark.parametrize("shop_settings", [{...}], indirect=True)``."""
    return ShopSettings(idempotency_lease_s=10, reservation_ttl_s=60, **getattr(request, "param", {}))


@pytest.fixture
def api(payments: FakePayments, shop_settings: ShopSettings) -> Iterator[Api]:
    settings = shop_settings
    clock = Clock()
    catalog = FakeCatalog(shards=3, clock=clock)
    orders, carts, cache = FakeOrders(clock, catalog.map), FakeCarts(), FakeCache()
    service = ShopService(settings, catalog, carts, cache, orders)
    saga = CheckoutSaga(settings, orders, catalog.inventory, payments, clock=clock)
    admission = Admission(settings.checkout_max_in_flight, settings.checkout_queue_s)
    signer = TokenSigner(settings.token_secret.get_secret_value(), ttl_s=settings.token_ttl_s)
    app = create_service_app(service="shop", settings=settings,
                             routers=[sessions_router(signer, LoginGuard.from_settings(settings)),
                                      build_router(service, saga, signer, admission)])
    lamp = catalog.add(3, "Desk lamp", 1999, stock=5, category="lamps")
    mug = catalog.add(200, "Mug", 500, stock=2, category="kitchen")
    with TestClient(app) as client:
        password = settings.lab_password.get_secret_value() if settings.lab_password else None
        yield Api(client, catalog, orders, carts, cache, payments, str(lamp.id), str(mug.id), password)


# -- sessions and products --------------------------------------------------------------------------

def test_a_login_gives_a_token_and_requests_without_one_are_401(api):
    response = api.client.post("/api/v1/sessions", json={"user": "alice"})
    assert response.status_code == 201
    assert response.json()["user"] == "alice" and response.json()["token"].count(".") == 2
    bad = api.client.post("/api/v1/sessions", json={"user": "Not Valid!"})
    assert bad.status_code == 422 and _error(bad) == "invalid_user"
    anonymous = api.client.get("/api/v1/cart")
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
    forged = api.client.get("/api/v1/cart", headers={"Authorization": "Bearer x.y.z"})
    assert forged.status_code == 401 and _error(forged) == "unauthorized"


def test_only_an_admin_creates_products(api):
    product = {"name": "Chair", "category": "home", "price_cents": 4500, "stock": 3}
    refused = api.client.post("/api/v1/products", json=product, headers=api.login("alice"))
    assert refused.status_code == 403 and _error(refused) == "not_admin"
    assert api.catalog.called("create") == []

    created = api.client.post("/api/v1/products", json=product, headers=api.login("admin"))
    assert created.status_code == 201
    body = created.json()
    assert body == {"id": body["id"], "name": "Chair", "category": "home", "price_cents": 4500, "stock": 3}
    assert isinstance(body["id"], str) and body["id"].isdigit() and int(body["id"]) in api.catalog.inventory.products
    assert int(body["id"]) in api.cache.pages  # the page is cached as it is created
    fetched = api.client.get(f"/api/v1/products/{body['id']}")
    assert fetched.status_code == 200 and fetched.json() == body


GUARDED = {"bind_host": "0.0.0.0", "token_secret": "a-generated-secret-of-at-least-32-bytes", "lab_password": "pw"}


@pytest.mark.parametrize("shop_settings", [GUARDED], indirect=True)
def test_a_forged_admin_is_403_outside_loopback(api):
    """Beyond loopback nobody is an admin by default: a login named admin (with the lab password) is a user."""
    product = {"name": "Chair", "category": "home", "price_cents": 4500, "stock": 3}
    refused = api.client.post("/api/v1/products", json=product, headers=api.login("admin"))
    assert refused.status_code == 403 and _error(refused) == "not_admin"
    assert api.catalog.called("create") == []
    no_password = api.client.post("/api/v1/sessions", json={"user": "admin"})
    assert no_password.status_code == 401


@pytest.mark.parametrize("shop_settings", [{**GUARDED, "admins": ["ops"]}], indirect=True)
def test_outside_loopback_the_named_admins_create_products(api):
    product = {"name": "Chair", "category": "home", "price_cents": 4500, "stock": 3}
    assert api.client.post("/api/v1/products", json=product, headers=api.login("ops")).status_code == 201
    assert api.client.post("/api/v1/products", json=product, headers=api.login("admin")).status_code == 403


@pytest.mark.parametrize("fields, code, words", [
    ({"name": "   "}, "invalid_name", "name must be"),
    ({"category": "\t"}, "invalid_category", "category must be"),
    ({"price_cents": -1}, "invalid_input", "price_cents"),
    ({"stock": "many"}, "invalid_input", "stock"),
    ({"colour": "red"}, "invalid_input", "colour"),
])
def test_an_invalid_product_is_422_with_a_message(api, fields, code, words):
    product = {"name": "Chair", "category": "home", "price_cents": 4500, "stock": 3, **fields}
    response = api.client.post("/api/v1/products", json=product, headers=api.login("admin"))
    assert response.status_code == 422
    assert _error(response) == code and words in response.json()["error"]["message"]
    assert api.catalog.called("create") == []


def test_an_unknown_product_is_404(api):
    missing = compose_id(1_000, 5, 1)
    for path in (f"/api/v1/products/{missing}", "/api/v1/products/0"):
        response = api.client.get(path)
        assert response.status_code == 404 and _error(response) == "not_found", path
    assert api.client.get("/api/v1/products/12abc").status_code == 422


def test_a_product_page_reads_its_stock_live(api):
    first = api.client.get(f"/api/v1/products/{api.lamp}").json()
    assert first["stock"] == 5 and first["name"] == "Desk lamp"
    api.catalog.inventory.products[int(api.lamp)].available = 1  # sold elsewhere
    assert api.client.get(f"/api/v1/products/{api.lamp}").json()["stock"] == 1


# -- listing -------------------------------------------------------------------------------------

def test_the_listing_is_ordered_and_complete_when_every_shard_answers(api):
    body = api.client.get("/api/v1/products").json()
    assert [p["id"] for p in body["items"]] == [api.mug, api.lamp]
    assert body["partial"] is False and "missing_shards" not in body and body["next_cursor"] is None


def test_a_listing_with_a_shard_down_is_partial_and_names_it(api):
    down = api.catalog.map.shard_of_id(int(api.mug))
    api.catalog.down.add(down)
    response = api.client.get("/api/v1/products")
    assert response.status_code == 200
    body = response.json()
    assert body["partial"] is True and body["missing_shards"] == [down]
    assert [p["id"] for p in body["items"]] == [api.lamp]


def test_the_listing_pages_and_refuses_bad_cursors_and_limits(api):
    first = api.client.get("/api/v1/products", params={"limit": 1}).json()
    assert [p["id"] for p in first["items"]] == [api.mug] and first["next_cursor"]
    second = api.client.get("/api/v1/products", params={"limit": 1, "cursor": first["next_cursor"]}).json()
    assert [p["id"] for p in second["items"]] == [api.lamp] and second["next_cursor"] is None
    assert first["next_cursor"] == f"500_{api.mug}"  # the keyset position: price_id of the last product
    malformed = api.client.get("/api/v1/products", params={"cursor": "garbage!"})
    assert malformed.status_code == 422 and "cursor" in malformed.json()["error"]["message"]
    # No id is that large: the position after every product priced 1 (the schema allows 19 digits).
    beyond = api.client.get("/api/v1/products", params={"cursor": f"1_{'9' * 19}"})
    assert beyond.status_code == 200 and [p["id"] for p in beyond.json()["items"]] == [api.mug, api.lamp]
    big = api.client.get("/api/v1/products", params={"limit": 101})
    assert big.status_code == 422 and "limit" in big.json()["error"]["message"]
    assert api.catalog.called("search") and all(q.limit <= 21 for _, q, _ in api.catalog.called("search"))


# -- carts -----------------------------------------------------------------------------------------

def test_a_cart_line_is_set_replaced_and_removed_with_zero(api):
    headers = api.login("alice")
    put = api.client.put(f"/api/v1/cart/items/{api.lamp}", json={"quantity": 2}, headers=headers)
    assert put.status_code == 200
    assert put.json() == {"items": [{"product_id": api.lamp, "quantity": 2, "price_cents": 1999}],
                          "total_cents": 3998}
    api.client.put(f"/api/v1/cart/items/{api.mug}", json={"quantity": 1}, headers=headers)
    cart = api.client.get("/api/v1/cart", headers=headers).json()
    assert cart["total_cents"] == 3998 + 500 and len(cart["items"]) == 2
    removed = api.client.put(f"/api/v1/cart/items/{api.lamp}", json={"quantity": 0}, headers=headers)
    assert removed.json() == {"items": [{"product_id": api.mug, "quantity": 1, "price_cents": 500}],
                              "total_cents": 500}
    assert api.carts.carts["alice"] == {int(api.mug): 1}


@pytest.mark.parametrize("quantity", [-1, 10_001, 101, 1.5])
def test_a_bad_quantity_is_422(api, quantity):
    response = api.client.put(f"/api/v1/cart/items/{api.lamp}", json={"quantity": quantity},
                              headers=api.login("alice"))
    assert response.status_code == 422 and _error(response) in ("invalid_input", "invalid_quantity")
    assert api.carts.carts.get("alice", {}) == {}


def test_an_unknown_product_cannot_go_in_the_cart(api):
    response = api.client.put(f"/api/v1/cart/items/{compose_id(1, 5, 1)}", json={"quantity": 1},
                              headers=api.login("alice"))
    assert response.status_code == 404 and api.carts.carts.get("alice", {}) == {}


# -- checkout ------------------------------------------------------------------------------------

def test_checkout_needs_an_idempotency_key(api):
    for key in (None, "  "):
        response = api.checkout("alice", key, _items((api.lamp, 1)))
        assert response.status_code == 400 and _error(response) == "idempotency_key_missing"
        assert response.json()["error"]["message"] == (
            "the Idempotency-Key header is required on checkout (any unique string, e.g. a UUID; "
            "send the same key again to retry safely)")
    assert api.orders.keys == {}


def test_a_checkout_is_created_once_and_replayed_identically(api):
    first = api.checkout("alice", "k1", _items((api.lamp, 2), (api.mug, 1)))
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    body = first.json()
    assert body["status"] == "paid" and body["total_cents"] == 2 * 1999 + 500
    assert isinstance(body["order_id"], str)
    assert [(i["product_id"], i["quantity"]) for i in body["items"]] == sorted([(api.lamp, 2), (api.mug, 1)])

    again = api.checkout("alice", "k1", _items((api.lamp, 2), (api.mug, 1)))
    assert again.status_code == 201 and again.json() == body
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(api.payments.called("charge")) == 1
    assert api.catalog.inventory.products[int(api.lamp)].available == 3


def test_a_key_reused_for_another_body_is_409(api):
    assert api.checkout("alice", "k1", _items((api.lamp, 1))).status_code == 201
    reused = api.checkout("alice", "k1", _items((api.lamp, 2)))
    assert reused.status_code == 409 and _error(reused) == "idempotency_key_reused"
    # Keys are per user: another user's "k1" is a new checkout.
    assert api.checkout("bob", "k1", _items((api.lamp, 2))).status_code == 201


def test_the_openapi_document_states_the_rules_the_handlers_enforce(api):
    doc = api.client.get("/openapi.json").json()
    checkout = doc["paths"]["/api/v1/checkout"]["post"]
    key = next(p for p in checkout["parameters"] if p["name"] == "Idempotency-Key")
    assert key["required"] and key["schema"]["maxLength"] == MAX_IDEMPOTENCY_KEY
    assert "409 idempotency_key_reused" in key["description"]
    assert "another body" in checkout["responses"]["409"]["description"]
    product_id = doc["paths"]["/api/v1/products/{product_id}"]["get"]["parameters"][0]
    assert product_id["schema"]["pattern"] == ID
    product = doc["components"]["schemas"]["ProductIn"]["properties"]
    assert (product["name"]["maxLength"], product["name"]["pattern"]) == (MAX_NAME, NO_NUL)
    assert product["price_cents"]["maximum"] == MAX_PRICE_CENTS


def test_out_of_stock_is_409_and_is_replayed(api):
    response = api.checkout("alice", "k1", _items((api.lamp, 1), (api.mug, 3)))
    assert response.status_code == 409 and _error(response) == "out_of_stock"
    assert api.catalog.inventory.products[int(api.lamp)].available == 5
    again = api.checkout("alice", "k1", _items((api.lamp, 1), (api.mug, 3)))
    assert again.status_code == 409 and again.json() == response.json()
    assert again.headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("payments", [{"charges": ["declined"]}], indirect=True)
def test_a_declined_payment_is_402(api):
    response = api.checkout("alice", "k1", _items((api.lamp, 1)))
    assert response.status_code == 402 and _error(response) == "payment_declined"
    assert api.catalog.inventory.products[int(api.lamp)].available == 5
    (order,) = api.orders.orders.values()
    assert order.status == OrderStatus.FAILED and order.failure == "payment_declined"


@pytest.mark.parametrize("payments", [{"charges": ["unavailable"], "voids": ["unavailable"]}], indirect=True)
def test_a_provider_outage_is_503_and_the_retry_resumes(api):
    response = api.checkout("alice", "k1", _items((api.lamp, 1)))
    assert response.status_code == 503 and _error(response) == "payments_unavailable"
    assert response.headers["Retry-After"] == "1"
    api.orders.clock.advance(0.001)
    retry = api.checkout("alice", "k1", _items((api.lamp, 1)))
    assert retry.status_code == 201 and retry.json()["status"] == "paid"
    assert "Idempotent-Replayed" not in retry.headers
    assert len(api.payments.captured) == 1


@pytest.mark.parametrize("payments", [{"charges": ["unavailable"]}], indirect=True)
def test_a_payment_not_taken_is_a_final_402_replayed_to_retries(api):
    """The order failed (the charge was voided), so the answer is final: a 402, not a 503 that
    would invite retries of a key whose answer can no longer change."""
    response = api.checkout("alice", "k1", _items((api.lamp, 1)))
    assert response.status_code == 402 and _error(response) == "payment_not_taken"
    again = api.checkout("alice", "k1", _items((api.lamp, 1)))
    assert again.status_code == 402 and again.json() == response.json()


def test_an_order_is_visible_to_its_buyer_only(api):
    order_id = api.checkout("alice", "k1", _items((api.lamp, 1))).json()["order_id"]
    mine = api.client.get(f"/api/v1/orders/{order_id}", headers=api.login("alice"))
    assert mine.status_code == 200 and mine.json()["order_id"] == order_id and mine.json()["status"] == "paid"
    theirs = api.client.get(f"/api/v1/orders/{order_id}", headers=api.login("bob"))
    assert theirs.status_code == 404 and _error(theirs) == "not_found"
    missing = api.client.get(f"/api/v1/orders/{int(order_id) + 1}", headers=api.login("alice"))
    assert missing.status_code == 404


def test_orders_are_listed_newest_first_with_a_cursor(api):
    ids = [api.checkout("alice", f"k{i}", _items((api.lamp, 1))).json()["order_id"] for i in range(3)]
    headers = api.login("alice")
    page = api.client.get("/api/v1/orders", params={"limit": 2}, headers=headers).json()
    assert [o["order_id"] for o in page["items"]] == [ids[2], ids[1]] and page["next_cursor"] == ids[1]
    rest = api.client.get("/api/v1/orders", params={"limit": 2, "cursor": page["next_cursor"]}, headers=headers).json()
    assert [o["order_id"] for o in rest["items"]] == [ids[0]] and rest["next_cursor"] is None
    assert api.client.get("/api/v1/orders", headers=api.login("bob")).json()["items"] == []
    # 19 digits the schema admits, past the largest id: past every order, a page like the first
    # (schemathesis found the 422 this once was: a schema-valid request refused).
    beyond = api.client.get("/api/v1/orders", params={"limit": 2, "cursor": "9980514452061483502"}, headers=headers)
    assert beyond.status_code == 200 and [o["order_id"] for o in beyond.json()["items"]] == [ids[2], ids[1]]


def test_an_empty_cart_checkout_is_refused_as_cart_empty(api):
    # The brief said 422 empty_order; shop.service now answers 409 cart_empty on purpose (a valid
    # request the cart's state refuses).
    response = api.checkout("alice", "k1")
    assert response.status_code == 409 and _error(response) == "cart_empty"
    assert api.orders.orders == {}


def test_a_cart_checkout_buys_the_cart_and_empties_it(api):
    headers = api.login("alice")
    api.client.put(f"/api/v1/cart/items/{api.mug}", json={"quantity": 2}, headers=headers)
    api.client.put(f"/api/v1/cart/items/{api.lamp}", json={"quantity": 1}, headers=headers)
    response = api.checkout("alice", "cart-1")
    assert response.status_code == 201 and response.json()["total_cents"] == 1999 + 2 * 500
    assert api.client.get("/api/v1/cart", headers=headers).json() == {"items": [], "total_cents": 0}
    again = api.checkout("alice", "cart-1")  # the cart is empty now: the key still replays the order
    assert again.status_code == 201 and again.json() == response.json()


def test_checkout_items_are_validated_at_the_edge(api):
    assert api.checkout("alice", "k1", {"items": []}).status_code == 422
    assert api.checkout("alice", "k2", {"items": [{"product_id": api.lamp, "quantity": 0}]}).status_code == 422
    unknown = api.checkout("alice", "k3", _items((str(compose_id(1, 5, 1)), 1)))
    assert unknown.status_code == 404 and _error(unknown) == "not_found"
    too_many = api.checkout("alice", "k4", _items((api.lamp, 101)))
    assert too_many.status_code == 422 and _error(too_many) == "invalid_input"


def test_a_created_product_hands_out_its_shards_commit_lsn_and_pages_read_as_asked(api):
    api.catalog.lsn = "94417352"  # shards with replicas
    product = {"name": "Kettle", "category": "kitchen", "price_cents": 2500, "stock": 3}
    created = api.client.post("/api/v1/products", json=product, headers=api.login("admin"))
    assert created.status_code == 201 and created.headers["X-Commit-LSN"] == "94417352"
    product_id = created.json()["id"]
    api.catalog.consistencies.clear()
    assert api.client.get(f"/api/v1/products/{product_id}", headers={"X-Read-After-LSN": "94417352"}).status_code == 200
    assert api.client.get(f"/api/v1/products/{api.lamp}").status_code == 200
    assert [(op, c.after_lsn, c.primary) for op, c in api.catalog.consistencies] == [
        ("get", 94417352, False), ("get", None, False)]


def test_a_listing_with_a_token_reads_every_shards_primary_and_a_cart_checks_the_primary(api):
    api.client.get("/api/v1/products")
    api.client.get("/api/v1/products", headers={"X-Read-After-LSN": "94417352"})
    searches = [c for op, c in api.catalog.consistencies if op == "search"]
    assert [c.primary for c in searches] == [False] * 3 + [True] * 3  # three shards each
    api.catalog.consistencies.clear()
    put = api.client.put(f"/api/v1/cart/items/{api.mug}", json={"quantity": 1}, headers=api.login("bob"))
    assert put.status_code == 200, put.text
    # The existence check on the primary; the cart's prices may be a replica's (checkout reads them again).
    assert [c.primary for op, c in api.catalog.consistencies] == [True, False]


def test_without_replicas_a_created_product_has_no_commit_lsn(api):
    product = {"name": "Kettle", "category": "kitchen", "price_cents": 2500, "stock": 3}
    created = api.client.post("/api/v1/products", json=product, headers=api.login("admin"))
    assert created.status_code == 201 and "X-Commit-LSN" not in created.headers


def test_an_lsn_that_is_not_one_is_a_422_on_a_product_page(api):
    assert api.client.get(f"/api/v1/products/{api.lamp}", headers={"X-Read-After-LSN": "latest"}).status_code == 422
