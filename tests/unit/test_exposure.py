"""Beyond loopback, no public secrets and a guarded login: the settings that decide it (services/settings.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from messaging.config import MessagingSettings
from services.auth import TokenSigner
from services.errors import Unauthorized
from services.lab.designs import resolve
from services.lab.lab_secrets import ensure
from services.settings import is_loopback, load_settings
from shop.config import ShopSettings
from shortener.config import ShortenerSettings

SECRET = "a-generated-secret-of-at-least-32-bytes"


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("lab.example.com", False),
])
def test_what_counts_as_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("cls, env_name", [
    (MessagingSettings, "MESSAGING_TOKEN_SECRET"),
    (ShopSettings, "SHOP_TOKEN_SECRET"),
    (ShortenerSettings, "SHORTENER_ID_SECRET"),
])
def test_a_public_default_secret_is_refused_beyond_loopback(cls, env_name):
    assert not cls().guarded  # on loopback, today's defaults still start
    with pytest.raises(ValidationError, match=f"{env_name} is unset or the public default.*listens on 0.0.0.0"):
        cls(bind_host="0.0.0.0")
    with pytest.raises(ValidationError, match=env_name):
        cls(exposed=True)  # a deployment that says so, whatever the process binds


def test_the_public_value_set_on_purpose_is_refused_too():
    public = ShopSettings.model_fields["token_secret"].default.get_secret_value()
    with pytest.raises(ValidationError, match="SHOP_TOKEN_SECRET"):
        ShopSettings(bind_host="0.0.0.0", token_secret=public, lab_password="pw")
    with pytest.raises(ValidationError, match="SHOP_TOKEN_SECRET"):
        ShopSettings(bind_host="0.0.0.0", token_secret="", lab_password="pw")


def test_a_guarded_login_needs_the_lab_password():
    with pytest.raises(ValidationError, match="SHOP_LAB_PASSWORD must be set"):
        ShopSettings(bind_host="0.0.0.0", token_secret=SECRET)
    settings = ShopSettings(bind_host="0.0.0.0", token_secret=SECRET, lab_password="pw")
    assert settings.guarded and settings.beyond_loopback


def test_compose_listens_everywhere_but_says_it_is_not_exposed():
    """Its containers bind 0.0.0.0 (so secrets are required) while only Caddy's loopback port is published."""
    with pytest.raises(ValidationError, match="SHOP_TOKEN_SECRET"):
        ShopSettings(bind_host="0.0.0.0", exposed=False)
    settings = ShopSettings(bind_host="0.0.0.0", exposed=False, token_secret=SECRET)
    assert not settings.guarded and settings.admin_users == {"admin"}


def test_admins_need_an_explicit_list_when_guarded():
    assert ShopSettings().admin_users == {"admin"}  # loopback: as simple as before
    guarded = dict(bind_host="0.0.0.0", token_secret=SECRET, lab_password="pw")
    assert ShopSettings(**guarded).admin_users == frozenset()
    assert ShopSettings(**guarded, admins=["ops"]).admin_users == {"ops"}


def test_the_environment_decides_and_a_refusal_is_one_line(monkeypatch):
    monkeypatch.setenv("SHOP_BIND_HOST", "0.0.0.0")
    with pytest.raises(SystemExit) as refused:
        load_settings(ShopSettings)
    reason = str(refused.value.code)
    assert "\n" not in reason and reason.startswith("refusing to start: ") and "SHOP_TOKEN_SECRET" in reason
    monkeypatch.setenv("SHOP_TOKEN_SECRET", SECRET)
    monkeypatch.setenv("SHOP_LAB_PASSWORD", "pw")
    monkeypatch.setenv("SHOP_ADMINS", "ops,root")
    settings = load_settings(ShopSettings)
    assert settings.guarded and settings.admin_users == {"ops", "root"}


@pytest.mark.parametrize("cls, design", [(MessagingSettings, "messaging"), (ShopSettings, "shop")])
def test_a_token_signed_with_the_old_public_default_fails_against_a_generated_secret(tmp_path, cls, design):
    prefix = cls.model_config["env_prefix"]
    generated = ensure(tmp_path, resolve([design]))
    settings = cls(bind_host="0.0.0.0", token_secret=generated[f"{prefix}TOKEN_SECRET"],
                   lab_password=generated[f"{prefix}LAB_PASSWORD"])  # what `sdlab up` passes: accepted
    signer = TokenSigner(settings.token_secret.get_secret_value(), ttl_s=60)
    public = cls.model_fields["token_secret"].default.get_secret_value()
    forged = TokenSigner(public, ttl_s=60).issue("admin")
    with pytest.raises(Unauthorized, match="not valid"):
        signer.verify(forged)
    assert signer.verify(signer.issue("admin")) == "admin"
