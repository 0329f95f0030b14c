"""The Helm chart (deploy/helm/sdlab) renders, validates against three Kubernetes versions in strict
mode, and keeps the project's rules, for each documented value file; broken copies are caught."""

from __future__ import annotations

import copy
import functools
import re
import shutil

import helm_python
import pytest

from tests.unit.deploy import chart_rules as rules

FILES = rules.VALUE_FILES


@functools.cache
def rendered(name: str) -> tuple[dict, ...]:
    return tuple(rules.render(rules.values_of(name)))


def objects(name: str) -> list[dict]:
    """A fresh copy, so a test that breaks it leaves the others the real chart."""
    return copy.deepcopy(list(rendered(name)))


def test_the_chart_lints_clean():
    report = helm_python.lint(str(rules.CHART), strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("name", FILES)
def test_every_object_validates_in_strict_mode(name):
    objs = objects(name)
    assert {o["kind"] for o in objs} >= {"Deployment", "StatefulSet", "Service", "HorizontalPodAutoscaler",
                                        "PodDisruptionBudget", "Ingress"}
    assert rules.schema_problems(objs) == []


@pytest.mark.parametrize("name", FILES)
def test_selectors_ports_probes_and_resources(name):
    objs = objects(name)
    assert rules.selector_problems(objs) == []
    assert rules.port_problems(objs) == []
    assert rules.probe_problems(objs) == []
    assert rules.address_problems(objs) == []


@pytest.mark.parametrize("name", FILES)
def test_every_variable_is_a_setting_of_its_design(name):
    assert rules.env_problems(objects(name)) == []


@pytest.mark.parametrize("name", FILES)
def test_images_and_budgets_are_the_values(name):
    objs, values = objects(name), rules.effective_values(name)
    assert rules.image_problems(objs, values) == []
    assert rules.budget_problems(objs, values) == []


@pytest.mark.parametrize("name", FILES)
def test_the_stateless_tiers_autoscale_and_every_deployment_has_a_budget(name):
    objs = objects(name)
    deployments = {d["metadata"]["name"]: d for d in rules.of_kind(objs, "Deployment")}
    scaled = {h["spec"]["scaleTargetRef"]["name"] for h in rules.of_kind(objs, "HorizontalPodAutoscaler")}
    api = {n for n, d in deployments.items() if d["metadata"]["labels"]["sdlab/tier"] == "api"}
    assert scaled == api == {f"sdlab-{d}" for d in ("shortener", "messaging", "shop")}
    # The HPA owns the count of a scaled tier; a replicas field would fight it on every upgrade.
    assert all("replicas" not in deployments[n]["spec"] for n in scaled)
    protected = {p["metadata"]["name"] for p in rules.of_kind(objs, "PodDisruptionBudget")}
    assert set(deployments) <= protected


def test_the_multi_node_values_spread_pods_and_grow_the_parts():
    single, multi = objects("values-single-node.yaml"), objects("values-multi-node.yaml")
    assert all("affinity" in rules.pod_spec(w) for w in rules.of_kind(multi, "Deployment", "StatefulSet")
               if rules.component_of(w) != "redis")
    assert not any("affinity" in rules.pod_spec(w) for w in rules.of_kind(single, "Deployment", "StatefulSet"))

    def replicas(objs, component):
        return next(w["spec"]["replicas"] for w in rules.of_kind(objs, "StatefulSet")
                    if rules.component_of(w) == component)

    assert (replicas(single, "kafka"), replicas(multi, "kafka")) == (1, 3)
    assert replicas(multi, "postgres") > replicas(single, "postgres")


def test_a_design_can_be_left_out_and_servers_can_be_the_user_s():
    objs = rules.render({
        "designs": {"messaging": {"enabled": False}, "shop": {"enabled": False}},
        "postgres": {"enabled": False, "externalUrls": ["postgresql://app:pw@db.example:5432/lab"]},
        "redis": {"enabled": False, "externalUrl": "redis://cache.example:6379/0"},
        "kafka": {"enabled": False, "externalBootstrapServers": ["broker.example:9092"]},
    })
    assert {rules.design_of(o) for o in rules.of_kind(objs, "Deployment")} == {"shortener"}
    assert rules.of_kind(objs, "StatefulSet") == []
    env = {v["name"]: v.get("value") for v in rules.pod_spec(rules.of_kind(objs, "Deployment")[0])["containers"][0]["env"]}
    assert env["SHORTENER_DATABASE_URLS"] == "postgresql://app:pw@db.example:5432/lab"
    assert env["SHORTENER_REDIS_URL"] == "redis://cache.example:6379/0"
    assert env["SHORTENER_KAFKA_BOOTSTRAP_SERVERS"] == "broker.example:9092"
    assert rules.schema_problems(objs) == [] and rules.env_problems(objs) == [] and rules.address_problems(objs) == []


@pytest.mark.parametrize(("values", "where"), [
    ({"designs": {"shop": {"components": {"shop": {"replicas": "three"}}}}}, "/designs/shop/components/shop/replicas"),
    ({"postgress": {"shards": 4}}, "'postgress' not allowed"),
    ({"budgets": {"shop": 0}}, "/budgets/shop"),
    ({"kafka": {"externalBootstrapServers": ["kafka://broker:9092"]}}, "/kafka/externalBootstrapServers/0"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
])
def test_values_the_schema_refuses_stop_the_render(values, where):
    """values.schema.json: a typo or a wrong type in a value file fails before anything renders."""
    with pytest.raises(helm_python.HelmError, match=re.escape(where)):
        rules.render(values)


def test_an_external_part_without_its_address_is_refused():
    with pytest.raises(helm_python.HelmError, match="externalUrls"):
        rules.render({"postgres": {"enabled": False}})


def test_settings_given_in_values_reach_the_design_and_a_wrong_one_is_caught():
    objs = rules.render({"designs": {"shortener": {"settings": {"ID_SCHEME": "counter"}}}})
    assert rules.env_problems(objs) == []
    objs = rules.render({"designs": {"shortener": {"settings": {"NO_SUCH_KNOB": "1", "CODE_LENGTH": "3"}}}})
    problems = " ".join(rules.env_problems(objs))
    assert "SHORTENER_NO_SUCH_KNOB is no setting" in problems and "do not parse" in problems


# Broken copies: each rule must reject what it exists to catch.

def _first(objs, kind, component=None):
    return next(o for o in rules.of_kind(objs, kind) if component is None or rules.component_of(o) == component)


def test_a_wrong_selector_is_caught():
    objs = objects("values.yaml")
    _first(objs, "Service", "shop")["spec"]["selector"]["app.kubernetes.io/component"] = "shopp"
    _first(objs, "Deployment", "shortener")["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] = "x"
    problems = rules.selector_problems(objs)
    assert any("Service/sdlab-shop" in p for p in problems)
    assert any("Deployment/sdlab-shortener:" in p for p in problems)


def test_a_service_port_reaching_no_container_port_is_caught():
    objs = objects("values.yaml")
    _first(objs, "Service", "messaging-gateway")["spec"]["ports"][0]["targetPort"] = "websocket"
    assert rules.port_problems(objs) == ["Service/sdlab-messaging-gateway port 8000: no container port 'websocket' "
                                         "in Deployment/sdlab-messaging-gateway"]


def test_an_address_reaching_no_server_is_caught():
    objs = objects("values.yaml")
    env = rules.pod_spec(_first(objs, "Deployment", "shop"))["containers"][0]["env"]
    urls = {v["name"]: v for v in env}
    urls["SHOP_DATABASE_URLS"]["value"] += ",postgresql://postgres@sdlab-postgres-2.sdlab-postgres:5432/postgres"
    urls["SHOP_PAYMENTS_URL"]["value"] = "http://sdlab-shop-payments:8090"
    urls["SHOP_PUBLIC_URL"]["value"] = "http://shop.example.org"
    problems = rules.address_problems(objs)
    assert len(problems) == 3, problems
    assert "sdlab-postgres-2.sdlab-postgres, a pod no StatefulSet has" in problems[0]


def test_a_missing_probe_or_budget_is_caught():
    objs = objects("values.yaml")
    container = rules.pod_spec(_first(objs, "Deployment", "shop-worker"))["containers"][0]
    del container["readinessProbe"]
    del container["resources"]["limits"]["memory"]
    rules.pod_spec(_first(objs, "Deployment", "shortener"))["containers"][0]["livenessProbe"]["httpGet"]["path"] = "/readyz"
    problems = rules.probe_problems(objs)
    assert any("shop-worker" in p and "no readinessProbe" in p for p in problems)
    assert any("shop-worker" in p and "no limits for memory" in p for p in problems)
    assert any("sdlab-shortener " in p and "livenessProbe asks '/readyz'" in p for p in problems)


def test_an_unknown_field_or_a_wrong_type_fails_validation_for_every_version():
    objs = objects("values.yaml")
    rules.pod_spec(_first(objs, "Deployment", "shop"))["containers"][0]["readinesProbe"] = {}
    _first(objs, "StatefulSet", "kafka")["spec"]["replicas"] = "three"
    problems = rules.schema_problems(objs)
    assert len([p for p in problems if "readinesProbe" in p]) == len(rules.KUBE_VERSIONS)
    assert len([p for p in problems if "'three' is not of type" in p]) == len(rules.KUBE_VERSIONS)


def test_a_kind_no_schema_knows_is_caught():
    obj = {"apiVersion": "autoscaling/v9", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "x"}}
    assert len(rules.schema_problems([obj])) == len(rules.KUBE_VERSIONS)


def test_a_broken_template_in_a_copy_of_the_chart_is_caught(tmp_path):
    chart = tmp_path / "sdlab"
    shutil.copytree(rules.CHART, chart)
    apps = chart / "templates" / "apps.yaml"
    apps.write_text(apps.read_text().replace("containerPort: 8000", "containerPorts: 8000"))
    objs = rules.render(chart=chart)
    assert rules.schema_problems(objs, versions=rules.KUBE_VERSIONS[:1])
    assert rules.port_problems(objs)


def test_a_setting_the_class_lacks_or_a_required_one_left_unset_is_caught():
    class Strict(rules.settings_class("shop")):
        must_be_set: str

    objs = objects("values.yaml")
    rules.pod_spec(_first(objs, "Deployment", "shop"))["containers"][0]["env"].append({"name": "SHOP_TYPO", "value": "1"})
    problems = rules.env_problems(objs, {"shop": Strict})
    assert any("SHOP_TYPO is no setting of Strict" in p for p in problems)
    assert any("SHOP_MUST_BE_SET has no default and is not set" in p for p in problems)


def test_an_image_or_pull_policy_other_than_the_values_is_caught():
    objs, values = objects("values-multi-node.yaml"), rules.effective_values("values-multi-node.yaml")
    rules.pod_spec(_first(objs, "Deployment", "shop"))["containers"][0]["image"] = "sdlab-python:latest"
    rules.pod_spec(_first(objs, "StatefulSet", "redis"))["containers"][0]["image"] = "redis:latest"
    problems = rules.image_problems(objs, values)
    assert len(problems) == 2 and "registry.example.com/sdlab/sdlab-python:0.1.0" in problems[0]
