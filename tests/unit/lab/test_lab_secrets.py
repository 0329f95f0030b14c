"""Per-home secrets: generated once, private, passed to local processes and to compose."""

from __future__ import annotations

import stat

import pytest
import yaml

from messaging.config import MessagingSettings
from services.lab.backends.compose import project as compose
from services.lab.config import REPO_ROOT, LabSettings
from services.lab.designs import resolve
from services.lab.lab_secrets import ensure, read, secrets_path
from services.lab.stack import plan_stack
from services.settings import LoginSettings
from shop.config import ShopSettings
from shortener.config import ShortenerSettings


def test_secrets_are_generated_once_private_and_per_home(tmp_path):
    designs = resolve(["shortener", "messaging", "shop"])
    first = ensure(tmp_path / "a", designs)
    assert set(first) == {"SHORTENER_ID_SECRET", "MESSAGING_TOKEN_SECRET", "MESSAGING_LAB_PASSWORD",
                          "SHOP_TOKEN_SECRET", "SHOP_LAB_PASSWORD"}
    assert all(len(value) >= 24 for value in first.values())
    assert len({first["SHORTENER_ID_SECRET"], first["MESSAGING_TOKEN_SECRET"], first["SHOP_TOKEN_SECRET"]}) == 3
    assert first["MESSAGING_LAB_PASSWORD"] == first["SHOP_LAB_PASSWORD"]  # one password per lab
    path = secrets_path(tmp_path / "a")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure(tmp_path / "a", designs) == first == {k: v for k, v in read(path).items() if k in first}
    assert ensure(tmp_path / "b", designs)["SHOP_TOKEN_SECRET"] != first["SHOP_TOKEN_SECRET"]


def test_a_design_added_later_gets_its_own_secrets_and_the_same_password(tmp_path):
    shop = ensure(tmp_path, resolve(["shop"]))
    both = ensure(tmp_path, resolve(["shop", "messaging"]))
    assert both["SHOP_TOKEN_SECRET"] == shop["SHOP_TOKEN_SECRET"]
    assert both["MESSAGING_LAB_PASSWORD"] == shop["SHOP_LAB_PASSWORD"]


def test_the_plan_passes_bind_host_and_secrets_to_every_process(tmp_path):
    designs = resolve(["shop"])
    secrets = ensure(tmp_path, designs)
    plan = plan_stack(LabSettings(home=tmp_path, host="0.0.0.0"), designs, secrets=secrets)
    shop_processes = [c for c in plan.apps if c.design == "shop"]
    assert shop_processes
    for component in shop_processes:
        assert component.env["SHOP_BIND_HOST"] == "0.0.0.0" and "--host" in component.cmd
        assert component.cmd[component.cmd.index("--host") + 1] == "0.0.0.0"
        assert component.env["SHOP_TOKEN_SECRET"] == secrets["SHOP_TOKEN_SECRET"]


def test_compose_reads_the_generated_file():
    """Every secret a design declares is interpolated in docker-compose.yml (empty without the file:
    then the service refuses to start), and the deployment passes the file as --env-file."""
    compose_file = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    for design in resolve([]):
        env = compose_file[f"x-{design.name}-env"]
        assert env[f"{design.env_prefix}BIND_HOST"] == "0.0.0.0"
        for name in design.secrets:
            assert env[f"{design.env_prefix}{name}"] == f"${{{design.env_prefix}{name}:-}}"


def test_the_compose_command_passes_the_env_file(monkeypatch):
    monkeypatch.setattr(compose, "cli", lambda: ["docker-compose"])
    cmd = compose.command(compose.Deployment("p", ["/a.yml"], env_file="/home/secrets.env"), "up")
    assert cmd[cmd.index("--env-file") + 1] == "/home/secrets.env"
    assert "--env-file" not in compose.command(compose.Deployment("p", ["/a.yml"]), "up")


@pytest.mark.parametrize("settings_cls, name", [
    (ShortenerSettings, "shortener"), (MessagingSettings, "messaging"), (ShopSettings, "shop")])
def test_every_design_declares_what_its_settings_refuse_so_the_lab_generates_it(settings_cls, name):
    (design,) = resolve([name])
    assert {s.upper() for s in settings_cls.public_default_secrets} <= set(design.secrets)
    if issubclass(settings_cls, LoginSettings):  # guarded beyond loopback: a password is needed too
        assert "LAB_PASSWORD" in design.secrets
