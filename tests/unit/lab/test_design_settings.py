"""Per-design knobs: SDLAB_<DESIGN>_PORT / _INSTANCES / _WORKERS, as documented, over each design's own defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.lab.config import LabSettings
from services.lab.designs import plugin_for


def test_a_design_s_defaults_come_from_its_own_declaration(monkeypatch):
    monkeypatch.delenv("SDLAB_SHOP_PORT", raising=False)
    monkeypatch.delenv("SDLAB_SHOP_INSTANCES", raising=False)
    shop = plugin_for("shop").design
    settings = LabSettings()
    assert (settings.design_port(shop), settings.design_instances(shop), settings.design_workers(shop)) == (8082, 2, 1)


def test_the_environment_then_the_caller_override_them(monkeypatch):
    shortener = plugin_for("shortener").design
    monkeypatch.setenv("SDLAB_SHORTENER_PORT", "9080")
    monkeypatch.setenv("SDLAB_SHORTENER_INSTANCES", "3")
    monkeypatch.setenv("SDLAB_SHORTENER_WORKERS", "2")
    settings = LabSettings()
    assert (settings.design_port(shortener), settings.design_instances(shortener)) == (9080, 3)
    assert settings.design_workers(shortener) == 2
    one = settings.model_copy(update={"shortener_instances": 1})
    assert one.design_instances(shortener) == 1 and LabSettings(shortener_instances=4).design_instances(shortener) == 4


def test_a_knob_out_of_range_is_refused(monkeypatch):
    monkeypatch.setenv("SDLAB_MESSAGING_INSTANCES", "17")
    with pytest.raises(ValidationError):
        LabSettings().design_instances(plugin_for("messaging").design)
