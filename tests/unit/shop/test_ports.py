"""The ports' contracts: the fakes (and the real adapters) offer exactly the ports' methods, and
the Redis carts adapter keeps its promise of lines in product order (against a stand-in client)."""

from __future__ import annotations

import inspect

import pytest

from shop import ports
from shop.adapters.payments import HttpPayments
from shop.adapters.redis import RedisCarts, RedisProductCache, RedisStockGate
from shop.adapters.sql_catalog import SqlCatalog, SqlInventory
from shop.adapters.sql_orders import SqlOrders
from shop.domain import Line
from tests.unit.shop import fakes

PORTS = [
    (ports.Catalog, [SqlCatalog, fakes.FakeCatalog]),
    (ports.Inventory, [SqlInventory, fakes.FakeInventory]),
    (ports.Orders, [SqlOrders, fakes.FakeOrders]),
    (ports.Payments, [HttpPayments, fakes.FakePayments]),
    (ports.Carts, [RedisCarts, fakes.FakeCarts]),
    (ports.ProductCache, [RedisProductCache, fakes.FakeCache]),
    (ports.StockGate, [RedisStockGate, fakes.FakeGate]),
]
CASES = [(port, impl, name) for port, impls in PORTS for impl in impls
         for name, fn in vars(port).items() if not name.startswith("_") and callable(fn)]


@pytest.mark.parametrize("port, impl, name", CASES,
                         ids=[f"{impl.__name__}.{name}" for _, impl, name in CASES])
def test_every_implementation_has_the_ports_methods_with_their_parameters(port, impl, name):
    declared, offered = getattr(port, name), getattr(impl, name)
    assert inspect.iscoroutinefunction(declared) == inspect.iscoroutinefunction(offered)
    want = list(inspect.signature(declared).parameters)
    have = inspect.signature(offered).parameters
    assert list(have)[:len(want)] == want
    # Anything more must be optional, or a caller of the port could not call it.
    assert all(p.default is not inspect.Parameter.empty for p in list(have.values())[len(want):])


def test_the_catalog_port_declares_the_deadline_scatter_gather_passes():
    assert "deadline_s" in inspect.signature(ports.Catalog.search).parameters


class _Redis:
    """Just enough of redis.asyncio.Redis for RedisCarts.lines: HGETALL answers bytes."""

    def __init__(self, hashes: dict[str, dict[bytes, bytes]]) -> None:
        self.hashes = hashes

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        return dict(self.hashes.get(key, {}))


async def test_the_redis_cart_of_one_line():
    carts = RedisCarts(lambda: _Redis({"cart:alice": {b"42": b"3"}}), ttl_s=60)
    assert await carts.lines("alice") == [Line(42, 3)]
    assert await carts.lines("bob") == []


async def test_the_redis_cart_lists_several_lines_in_product_order():
    carts = RedisCarts(lambda: _Redis({"cart:alice": {b"42": b"3", b"7": b"1"}}), ttl_s=60)
    assert await carts.lines("alice") == [Line(7, 1), Line(42, 3)]
