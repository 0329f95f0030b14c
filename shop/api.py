"""HTTP entrypoint: catalog, cart, checkout and orders (``/api/v1``); errors become statuses here only.

Ids are decimal strings in JSON: they are 63-bit integers (time | bucket | sequence), and a
JavaScript client would round them as numbers.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path as PathParam, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.auth import TokenSigner, current_user
from services.errors import LabError, NotFound
from services.http import error_responses, lab_error_parts
from shop.domain import (MAX_CATEGORY, MAX_NAME, MAX_PRICE_CENTS, MAX_STOCK, Line, NewProduct, Order,
                         StoredResponse, UnknownProduct, check_idempotency_key)
from shop.ports import ProductQuery
from shop.saga import CheckoutSaga
from shop.service import ShopService
from shop.sharding import parse_id

ID = "^[0-9]{1,19}$"
NO_NUL = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"  # not blank, no NUL (PostgreSQL text cannot hold one)
IdPath = Annotated[str, PathParam(pattern=ID, description="a decimal id as the API returned it")]


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=MAX_NAME, json_schema_extra={"pattern": NO_NUL})
    category: str = Field(..., min_length=1, max_length=MAX_CATEGORY, json_schema_extra={"pattern": NO_NUL})
    price_cents: int = Field(..., ge=0, le=MAX_PRICE_CENTS)
    stock: int = Field(..., ge=0, le=MAX_STOCK)


class QuantityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quantity: int = Field(..., ge=0, le=10_000, description="0 removes the line")


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product_id: str = Field(..., pattern=ID)
    quantity: int = Field(..., ge=1, le=10_000)


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
    if isinstance(outcome, Order):
        return StoredResponse(201, _order_body(outcome))
    status, body, _ = lab_error_parts(outcome)
    return StoredResponse(status, body)


def build_router(service: ShopService, saga: CheckoutSaga, signer: TokenSigner) -> APIRouter:
    router = APIRouter(tags=["shop"])
    user_dep = current_user(signer)
    common = {401: "no token, or a bad one", 422: "invalid parameters, named in the message",
              503: "a shard (or Redis, for carts) did not answer; retry"}
    auth = error_responses(common)
    with_body = error_responses({400: "the body is not JSON", **common})
    not_found = error_responses({404: "no such product or order", **common})

    @router.post("/api/v1/products", status_code=201, responses=error_responses(
        {400: "the body is not JSON", 403: "not an admin", **common}))
    async def create_product(body: ProductIn, user: str = Depends(user_dep)) -> dict:
        product = await service.create_product(user, NewProduct(body.name, body.category, body.price_cents,
                                                                body.stock))
        return product.public()

    @router.get("/api/v1/products/{product_id}", responses=not_found)
    async def product(product_id: IdPath) -> dict:
        return (await service.product(_id(product_id))).public()

    @router.get("/api/v1/products", responses=error_responses(common))
    async def list_products(category: str | None = Query(None, max_length=MAX_CATEGORY),
                            q: str | None = Query(None, max_length=100, description="text in the name"),
                            min_price: int | None = Query(None, ge=0, le=MAX_PRICE_CENTS),
                            max_price: int | None = Query(None, ge=0, le=MAX_PRICE_CENTS),
                            limit: int = Query(20, ge=1, le=500),
                            cursor: str | None = Query(None, max_length=200)) -> dict:
        listing = await service.list_products(
            ProductQuery(category, q.replace("\x00", "") if q else None, min_price, max_price, None, limit), cursor)
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

    @router.post("/api/v1/checkout", status_code=201, responses=error_responses({
        400: "no Idempotency-Key header, or the body is not JSON", 402: "the payment was declined",
        409: "out of stock, or a checkout with this key is still running", **common}))
    async def checkout(body: CheckoutIn | None = None, user: str = Depends(user_dep),
                       idempotency_key: str | None = Header(None, max_length=300,
                                                            description="any unique string; retry with the same")
                       ) -> JSONResponse:
        key = check_idempotency_key(idempotency_key)
        body = body or CheckoutIn()
        items = [Line(_id(i.product_id), i.quantity) for i in body.items] if body.items is not None else None
        outcome = await saga.checkout(user, key, body.model_dump(exclude_none=True),
                                      lambda: service.checkout_lines(user, items))
        if isinstance(outcome, StoredResponse):
            return JSONResponse(outcome.body, status_code=outcome.status, headers={"Idempotent-Replayed": "true"})
        response = render(outcome)
        await saga.remember(user, key, response)
        if isinstance(outcome, Order) and items is None:
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
                     cursor: str | None = Query(None, pattern=ID, description="next_cursor of the page before"),
                     user: str = Depends(user_dep)) -> dict:
        found = await service.orders(user, parse_id(cursor) if cursor else None, limit)
        return {"items": [_order_body(o) for o in found],
                "next_cursor": str(found[-1].id) if len(found) == limit else None}

    return router


def _cart(lines: list[dict]) -> dict:
    return {"items": lines, "total_cents": sum(line["price_cents"] * line["quantity"] for line in lines)}
