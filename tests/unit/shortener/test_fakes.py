"""The fakes implement the ports exactly: a fake that drifted from its port would test nothing."""

from __future__ import annotations

import inspect

import pytest

from shortener import ports
from shortener.domain import LinkClicked
from tests.unit.shortener.fakes import (
    FakeCache,
    FakeClicks,
    FakeCounter,
    FakeInvalidator,
    FakeLimiter,
    FakeRepo,
    link,
)

PAIRS = [
    (ports.LinkRepository, FakeRepo),
    (ports.LinkCache, FakeCache),
    (ports.RateLimiter, FakeLimiter),
    (ports.ClickSink, FakeClicks),
    (ports.Invalidator, FakeInvalidator),
    (ports.CounterSource, FakeCounter),
]


def _port_methods(port: type) -> list[str]:
    return [name for name, value in vars(port).items() if inspect.isfunction(value) and not name.startswith("_")]


@pytest.mark.parametrize(("port", "fake"), PAIRS, ids=lambda p: p.__name__)
def test_fake_has_every_port_method_with_the_same_signature(port, fake):
    for name in _port_methods(port):
        expected, actual = getattr(port, name), getattr(fake, name)
        assert list(inspect.signature(actual).parameters) == list(inspect.signature(expected).parameters), name
        assert inspect.iscoroutinefunction(actual) == inspect.iscoroutinefunction(expected), name


async def test_fake_repo_keeps_one_generated_link_per_url_but_lets_aliases_share_it():
    repo = FakeRepo()
    first = link("aaaaaaa", "https://example.com/")
    assert (await repo.insert(first, b"d", b"t")).inserted
    again = await repo.insert(link("bbbbbbb", "https://example.com/"), b"d", b"t")
    assert again.existing_by_url == first
    assert (await repo.insert(link("myalias", "https://example.com/", custom_alias=True), b"d", b"t")).inserted


async def test_fake_repo_applies_a_click_batch_once():
    repo = FakeRepo()
    repo.add(link("aaaaaaa"))
    batch = LinkClicked("b1", "i1", {"aaaaaaa": 3})
    assert await repo.apply_clicks(batch) is True
    assert await repo.apply_clicks(batch) is False
    assert (await repo.get_with_clicks("aaaaaaa")).clicks == 3
