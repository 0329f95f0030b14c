"""The chart's secrets: every design's processes get a random signing key and the lab password from one
Secret (generated, or the user's), and with them their settings start guarded (README, "Security")."""

from __future__ import annotations

import base64

from services.lab.designs import resolve
from tests.unit.deploy import chart_rules as rules


def _secret(objects: list[dict]) -> dict[str, str]:
    (secret,) = rules.of_kind(objects, "Secret")
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def _pod_env(workload: dict, secret: dict[str, str]) -> dict[str, str]:
    """A design container's variables as the pod sees them (secretKeyRef resolved, fieldRef named)."""
    env = {}
    for var in rules.pod_spec(workload)["containers"][0]["env"]:
        ref = var.get("valueFrom", {})
        if "secretKeyRef" in ref:
            env[var["name"]] = secret[ref["secretKeyRef"]["key"]]
        elif "fieldRef" in ref:
            env[var["name"]] = "pod-1"
        else:
            env[var["name"]] = var["value"]
    return env


def test_every_process_gets_its_designs_generated_secrets_and_starts_guarded():
    objects = rules.render()
    secret = _secret(objects)
    assert all(len(value) >= 32 for key, value in secret.items() if key != "LAB_PASSWORD")
    assert _secret(rules.render())["SHOP_TOKEN_SECRET"] != secret["SHOP_TOKEN_SECRET"]  # random, not a constant
    designs = {d.name: d for d in resolve(["shortener", "messaging", "shop"])}
    for workload in rules.of_kind(objects, *rules.WORKLOADS):
        design = designs.get(rules.design_of(workload) or "")
        if design is None:
            continue
        env = _pod_env(workload, secret)
        assert {f"{design.env_prefix}{name}" for name in design.secrets} <= set(env), rules.component_of(workload)
        cls = rules.settings_class(design.name)
        prefix = design.env_prefix
        settings = cls(**{k[len(prefix):].lower(): v for k, v in env.items() if k.startswith(prefix)})
        assert settings.beyond_loopback and settings.guarded
        if design.name == "shop":
            assert settings.admin_users == frozenset()  # no default admin in a cluster


def test_an_existing_secret_is_used_and_none_is_made():
    objects = rules.render({"security": {"existingSecret": "lab-keys"}})
    assert rules.of_kind(objects, "Secret") == []
    refs = {var["valueFrom"]["secretKeyRef"]["name"]
            for w in rules.of_kind(objects, *rules.WORKLOADS) if rules.design_of(w)
            for var in rules.pod_spec(w)["containers"][0]["env"] if "secretKeyRef" in var.get("valueFrom", {})}
    assert refs == {"lab-keys"}
