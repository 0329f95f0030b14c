"""HTTP entrypoint: catalog, cart, checkout and orders (``/api/v1``); errors become statuses here only.

Ids are decimal strings in JSON: they are 63-bit integers (time | bucket | sequence), and a
JavaScript client would round them as numbers.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path as PathParam, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.admission import Admission
from services.auth import TokenSigner, current_user
from services.consistency import COMMIT_LSN_HEADER, ReadConsistency
from services.errors import LabError, NotFound
from services.http import JsonInt, error_responses, lab_error_parts, read_consistency
from services.idempotency import MAX_IDEMPOTENCY_KEY, check_idempotency_key
from shop.domain import (MAX_CATEGORY, MAX_NAME, MAX_PAGE, MAX_PRICE_CENTS, MAX_QUANTITY, MAX_STOCK, Line, NewProduct,
                         Order, OrderStatus, StoredResponse, UnknownProduct)
from shop.ports import ProductQuery
from shop.saga import CheckoutSaga
from shop.scatter import CURSOR
from shop.service import ShopService
from shop.sharding import LARGEST_ID, parse_id

ID = "^[0-9]{1,19}$"
# Not blank (spaces, tabs and line breaks only), no NUL (PostgreSQL text cannot hold one): the
# same rule as the domain's, spelled out, since "whitespace" differs between regex dialects.
NO_NUL = r"^[^\u0000]*[^ \t\n\r\u0000][^\u0000]*$"
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": True,
    "description": ("any unique string (a UUID); send the same key again to retry the same checkout safely: "
                    "the same key with the same body replays the first answer (Idempotent-Replayed: true); "
                    "with another body it is 409 idempotency_key_reused"),
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY, "pattern": "^[ -~]*[!-~][ -~]*$"},
}
CHECKOUT_KEY = " on checkout (any unique string, e.g. a UUID; send the same key again to retry safely)"
NO_NUL_OR_EMPTY = r"^[^\u0000]*$"
ORDER_CURSOR = "^[1-9][0-9]{0,18}$"
IdPath = Annotated[str, PathParam(pattern=ID, description="a decimal id as the API returned it")]


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=MAX_NAME, json_schema_extra={"pattern": NO_NUL})
    category: str = Field(..., min_length=1, max_length=MAX_CATEGORY, json_schema_extra={"pattern": NO_NUL})
    price_cents: JsonInt = Field(..., ge=0, le=MAX_PRICE_CENTS)
    stock: JsonInt = Field(..., ge=0, le=MAX_STOCK)


class QuantityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quantity: JsonInt = Field(..., ge=0, le=MAX_QUANTITY, description="0 removes the line")


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product_id: str = Field(..., pattern=ID)
    quantity: JsonInt = Field(..., ge=1, le=MAX_QUANTITY)


class CheckoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[ItemIn] | None = Field(None, min_length=1, max_length=50,
                                       description="buy these directly; without it, the cart is checked out")


def _id(text: str) -> int:
    found = parse_id(text)
    if found is None:
        raise UnknownProduct(text)
    return found


def _order_body(order: Order) -> dict:
    return order.public()


def render(outcome: Order | LabError) -> StoredResponse:
    """A checkout's answer: 201 for an order that ended paid, 202 for one accepted and still pending
    (an asynchronous checkout: read the order for its outcome), the error's status otherwise."""
    if isinstance(outcome, Order):
        return StoredResponse(202 if outcome.status == OrderStatus.PENDING else 201, _order_body(outcome))
    status, body, _ = lab_error_parts(outcome)
    return StoredResponse(status, body)


def build_router(service: ShopService, saga: CheckoutSaga, signer: TokenSigner, admission: Admission) -> APIRouter:
    router = APIRouter(tags=["shop"])
    user_dep = current_user(signer)
    common = {401: "no token, or a bad one", 422: "invalid parameters, named in the message",
              503: "a shard (or Redis, for carts) did not answer; retry"}
    auth = error_responses(common)
    with_body = error_responses({400: "the body is not JSON", **common})
    not_found = error_responses({404: "no such product or order", **common})

    @router.post("/api/v1/products", status_code=201, responses=error_responses(
        {400: "the body is not JSON", 403: "not an admin", **common}))
    async def create_product(body: ProductIn, response: Response, user: str = Depends(user_dep)) -> dict:
        product = await service.create_product(user, NewProduct(body.name, body.category, body.price_cents,
                                                                body.stock))
        if (token := await service.read_token(product.id)) is not None:
            response.headers[COMMIT_LSN_HEADER] = token
        return product.public()

    @router.get("/api/v1/products/{product_id}", responses=not_found)
    async def product(product_id: IdPath, consistency: ReadConsistency = Depends(read_consistency)) -> dict:
        return (await service.product(_id(product_id), consistency)).public()

    @router.get("/api/v1/products", responses=error_responses(common))
    async def list_products(category: str | None = Query(None, max_length=MAX_CATEGORY, pattern=NO_NUL_OR_EMPTY),
                            q: str | None = Query(None, max_length=100, pattern=NO_NUL_OR_EMPTY,
                                                  description="text in the name"),
                            min_price: int | None = Query(None, ge=0, le=MAX_PRICE_CENTS),
                            max_price: int | None = Query(None, ge=0, le=MAX_PRICE_CENTS),
                            limit: int = Query(20, ge=1, le=MAX_PAGE),
                            cursor: str | None = Query(None, pattern=CURSOR,
                                                       description="next_cursor of the page before"),
                            consistency: ReadConsistency = Depends(read_consistency)) -> dict:
        listing = await service.list_products(
            ProductQuery(category, q, min_price, max_price, None, limit), cursor, consistency)
        body = {"items": [p.public() for p in listing.items], "next_cursor": listing.next_cursor,
                "partial": listing.partial}
        if listing.partial:
            body["missing_shards"] = listing.missing_shards
        return body

    @router.put("/api/v1/cart/items/{product_id}", responses=with_body | not_found)
    async def set_cart_line(product_id: IdPath, body: QuantityIn, user: str = Depends(user_dep)) -> dict:
        return _cart(await service.set_cart_line(user, _id(product_id), body.quantity))

    @router.get("/api/v1/cart", responses=auth)
    async def cart(user: str = Depends(user_dep)) -> dict:
        return _cart(await service.cart(user))

    @router.post("/api/v1/checkout", status_code=201, openapi_extra={"parameters": [IDEMPOTENCY_KEY]},
                 responses={202: {"description": "accepted, payment pending (SHOP_CHECKOUT_MODE=async): read the "
                                                 "order for its outcome"},
                            **error_responses({
                                400: "no Idempotency-Key header, or the body is not JSON",
                                402: "the payment was declined, or not taken (the provider did not answer)",
                                404: "an item names no product",
                                409: "out of stock, the cart is empty, a checkout with this key is still running, "
                                     "or this key was used with another body",
                                429: "too many checkouts at once on this instance; retry after Retry-After",
                                **common})})
    async def checkout(body: CheckoutIn | None = None, user: str = Depends(user_dep),
                       # Read here and checked by the handler (a missing key is a 400 that names it,
                       # not the 422 of a validation error); the schema above says it is required.
                       idempotency_key: str | None = Header(None, include_in_schema=False)) -> JSONResponse:
        key = check_idempotency_key(idempotency_key, why=CHECKOUT_KEY)
        body = body or CheckoutIn()
        items = [Line(_id(i.product_id), i.quantity) for i in body.items] if body.items is not None else None
        async with admission.turn():
            response, replayed = await saga.checkout(user, key, body.model_dump(exclude_none=True),
                                                     lambda: service.checkout_lines(user, items), render)
        if replayed:
            return JSONResponse(response.body, status_code=response.status, headers={"Idempotent-Replayed": "true"})
        if response.status < 300 and items is None:
            await service.clear_cart(user)
        return JSONResponse(response.body, status_code=response.status)

    @router.get("/api/v1/orders/{order_id}", responses=not_found)
    async def order(order_id: IdPath, user: str = Depends(user_dep)) -> dict:
        found = parse_id(order_id)
        if found is None:
            raise NotFound(f"no order {order_id}")
        return _order_body(await service.order(user, found))

    @router.get("/api/v1/orders", responses=auth)
    async def orders(limit: int = Query(20, ge=1, le=100),
                     cursor: str | None = Query(None, pattern=ORDER_CURSOR,
                                                description="next_cursor of the page before"),
                     user: str = Depends(user_dep)) -> dict:
        # Orders older than the cursor. The schema admits any 19 digits, more than the largest id
        # (2**63 - 1): such a cursor is past every order, as the products' cursor is past every id.
        before = min(int(cursor), LARGEST_ID) if cursor else None
        found = await service.orders(user, before, limit)
        return {"items": [_order_body(o) for o in found],
                "next_cursor": str(found[-1].id) if len(found) == limit else None}

    return router


def _cart(lines: list[dict]) -> dict:
    return {"items": lines, "total_cents": sum(line["price_cents"] * line["quantity"] for line in lines)}
