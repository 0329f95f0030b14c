"""The Helm chart, rendered offline, and the project's rules on what it renders.

Helm v4 runs in-process (helm-python-sdk: no helm binary, no cluster); each rule returns the
problems it finds as one line each, so a test asserts none on the chart and some on a broken copy.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import helm_python
import kubernetes_validate
import yaml
from pydantic_settings import BaseSettings

from services.lab.budgets import rules as budgets
from services.lab.config import REPO_ROOT
from services.lab.stack import LIVENESS_PATH, READINESS_PATH
from services.settings import ServiceSettings

CHART = REPO_ROOT / "deploy" / "helm" / "sdlab"
VALUE_FILES = ("values.yaml", "values-single-node.yaml", "values-multi-node.yaml")
# Three minor versions a user may run, oldest to newest, all bundled by kubernetes-validate.
KUBE_VERSIONS = ("1.30.0", "1.33.0", "1.36.0")
RELEASE = "sdlab"
WORKLOADS = ("Deployment", "StatefulSet")


def values_of(name: str) -> dict:
    """A value file as a user passes it with -f (values.yaml: the defaults, nothing passed)."""
    return {} if name == "values.yaml" else yaml.safe_load((CHART / name).read_text())


def effective_values(name: str) -> dict:
    """What the templates see: the chart's defaults under the file, merged key by key as Helm does."""
    return _merge(yaml.safe_load((CHART / "values.yaml").read_text()), values_of(name))


def _merge(base: dict, over: Mapping) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else value
    return out


def render(values: dict | None = None, chart: Path = CHART) -> list[dict]:
    """Every object the chart renders for ``values``, parsed."""
    with helm_python.Chart.load(str(chart)) as loaded:
        manifests = loaded.render(values=values or {}, name=RELEASE, namespace="sdlab")
    return [doc for text in manifests.values() for doc in yaml.safe_load_all(text) if doc]


def schema_problems(objects: Iterable[dict], versions: Iterable[str] = KUBE_VERSIONS) -> list[str]:
    """Strict OpenAPI validation: a wrong type, an unknown field or an unknown kind is a problem."""
    problems = []
    for version in versions:
        for obj in objects:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                problems.append(f"{version} {_ref(obj)}: {'.'.join(map(str, exc.path))}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                problems.append(f"{version} {_ref(obj)}: {exc.message}")
    return problems


def _ref(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def of_kind(objects: Iterable[dict], *kinds: str) -> list[dict]:
    return [o for o in objects if o["kind"] in kinds]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def _pod_labels(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"].get("labels", {})


def _selects(selector: Mapping, labels: Mapping) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def selector_problems(objects: list[dict]) -> list[str]:
    """Each workload selects its own pods; each Service and PDB selects some workload's pods; each
    HPA scales a Deployment that exists; each Ingress backend is a Service port that exists."""
    workloads = of_kind(objects, *WORKLOADS)
    problems = [f"{_ref(w)}: selector {w['spec']['selector']['matchLabels']} misses its pod labels"
                for w in workloads if not _selects(w["spec"]["selector"]["matchLabels"], _pod_labels(w))]
    for obj in of_kind(objects, "Service", "PodDisruptionBudget"):
        selector = obj["spec"]["selector"]
        selector = selector.get("matchLabels", {}) if obj["kind"] == "PodDisruptionBudget" else selector
        if not any(_selects(selector, _pod_labels(w)) for w in workloads):
            problems.append(f"{_ref(obj)}: selector {selector} matches no pods")
    deployments = {d["metadata"]["name"] for d in of_kind(objects, "Deployment")}
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        if hpa["spec"]["scaleTargetRef"]["name"] not in deployments:
            problems.append(f"{_ref(hpa)}: scales {hpa['spec']['scaleTargetRef']['name']}, which is not rendered")
    ports = {(s["metadata"]["name"], p.get("name")) for s in of_kind(objects, "Service") for p in s["spec"]["ports"]}
    for ingress in of_kind(objects, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                service = path["backend"]["service"]
                if (service["name"], service["port"].get("name")) not in ports:
                    problems.append(f"{_ref(ingress)}: {rule['host']}{path['path']} goes to no Service port")
    return problems


def port_problems(objects: list[dict]) -> list[str]:
    """Every Service port reaches a port (by name or number) of every container set it selects."""
    problems = []
    workloads = of_kind(objects, *WORKLOADS)
    for service in of_kind(objects, "Service"):
        selected = [w for w in workloads if _selects(service["spec"]["selector"], _pod_labels(w))]
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for w in selected:
                # A port without a number (a misspelt containerPort) reaches nothing, whatever its name.
                offered = [p for c in pod_spec(w)["containers"] for p in c.get("ports", [])
                           if isinstance(p.get("containerPort"), int)]
                if not any(target in (p.get("name"), p["containerPort"]) for p in offered):
                    problems.append(f"{_ref(service)} port {port['port']}: no container port {target!r} in {_ref(w)}")
    return problems


def probe_problems(objects: list[dict]) -> list[str]:
    """Every container of every workload has both probes and CPU and memory requests and limits;
    the designs' probes use the paths they serve (/readyz checks dependencies, /healthz only life)."""
    problems = []
    for w in of_kind(objects, *WORKLOADS):
        spec = pod_spec(w)
        for container in spec["containers"]:
            where = f"{_ref(w)} container {container['name']}"
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in container:
                    problems.append(f"{where}: no {probe}")
            for part in ("requests", "limits"):
                missing = {"cpu", "memory"} - set(container.get("resources", {}).get(part, {}))
                if missing:
                    problems.append(f"{where}: no {part} for {', '.join(sorted(missing))}")
            if design_of(w):
                expected = {"readinessProbe": READINESS_PATH, "livenessProbe": LIVENESS_PATH}
                for probe, path in expected.items():
                    got = container.get(probe, {}).get("httpGet", {}).get("path")
                    if got != path:
                        problems.append(f"{where}: {probe} asks {got!r}, not {path}")
        for container in spec.get("initContainers", []):
            if not {"requests", "limits"} <= set(container.get("resources", {})):
                problems.append(f"{_ref(w)} init container {container['name']}: no resources")
    return problems


def design_of(obj: dict) -> str | None:
    return obj["metadata"].get("labels", {}).get("sdlab/design")


def component_of(obj: dict) -> str:
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]


def settings_class(design: str) -> type[ServiceSettings]:
    """The design's one settings class, found in its config.py."""
    module = importlib.import_module(f"{design}.config")
    found = [v for v in vars(module).values()
             if isinstance(v, type) and issubclass(v, ServiceSettings) and v.__module__ == module.__name__]
    assert len(found) == 1, f"{design}.config should define one settings class, not {found}"
    return found[0]


def env_problems(objects: list[dict], classes: Mapping[str, type[BaseSettings]] | None = None) -> list[str]:
    """Every variable set on a design's containers names a field of its settings class (the ServiceSettings
    base included), every field without a default is set, and the values given parse."""
    problems = []
    for w in of_kind(objects, *WORKLOADS):
        design = design_of(w)
        if not design:
            continue
        cls = (classes or {}).get(design) or settings_class(design)
        prefix = cls.model_config.get("env_prefix", "")
        for container in [*pod_spec(w).get("initContainers", []), *pod_spec(w)["containers"]]:
            where = f"{_ref(w)} container {container['name']}"
            given: dict[str, str] = {}
            for var in container.get("env", []):
                name = var["name"]
                field = name[len(prefix):].lower() if name.startswith(prefix) else None
                if field not in cls.model_fields:
                    problems.append(f"{where}: {name} is no setting of {cls.__name__} (prefix {prefix})")
                    continue
                given[field] = var.get("value", "from-the-pod")  # valueFrom: known only in the pod
            problems += [f"{where}: {prefix}{f.upper()} has no default and is not set"
                         for f, info in cls.model_fields.items() if info.is_required() and f not in given]
            try:
                cls(**given)
            except ValueError as exc:
                problems.append(f"{where}: the values given do not parse: {str(exc).splitlines()[0]}")
    return problems


def expected_image(values: Mapping) -> str:
    image = values["image"]
    ref = f"{image['repository']}:{image['tag']}"
    return f"{image['registry'].rstrip('/')}/{ref}" if image["registry"] else ref


def image_problems(objects: list[dict], values: Mapping) -> list[str]:
    """The designs' containers run the project's image as the values name it and pull it as they say;
    the data parts run the images the values name."""
    problems = []
    for w in of_kind(objects, *WORKLOADS):
        spec = pod_spec(w)
        if design_of(w):
            wanted = {"image": expected_image(values), "imagePullPolicy": values["image"]["pullPolicy"]}
        else:
            wanted = {"image": values[component_of(w)]["image"]}
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            for key, value in wanted.items():
                if container.get(key) != value:
                    problems.append(f"{_ref(w)} container {container['name']}: {key} {container.get(key)!r}, "
                                    f"values say {value!r}")
    return problems


def cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def budget_problems(objects: list[dict], values: Mapping) -> list[str]:
    """Each workload's CPU request and limit is its budget as the lab resolves it (services/lab/budgets/rules.py)."""
    problems = []
    for w in of_kind(objects, *WORKLOADS):
        component = component_of(w)
        budget = budgets.for_component(values["budgets"], component) or values["defaultCores"]
        for container in pod_spec(w)["containers"]:
            got = {part: cores(container["resources"][part]["cpu"]) for part in ("requests", "limits")}
            if any(abs(v - budget) > 1e-9 for v in got.values()):
                problems.append(f"{_ref(w)}: cpu {got}, the lab's budget for {component} is {budget}")
    return problems


def _addresses(value: str) -> list[tuple[str, int | None]]:
    """(host, port) of every address in a URL, a list of URLs or a list of host:port."""
    found = []
    for part in re.split(r",", value):
        netloc = urlsplit(part if "://" in part else f"//{part}").netloc.rsplit("@", 1)[-1]
        host, _, port = netloc.partition(":")
        found.append((host, int(port) if port else None))
    return found


def address_problems(objects: list[dict]) -> list[str]:
    """Every in-release address a design is given (``sdlab-...`` hosts in its URL settings) reaches a
    Service port, and a ``pod.service`` host a pod the StatefulSet has; a public URL's host is an Ingress host."""
    services = {s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]} for s in of_kind(objects, "Service")}
    pods = {f"{w['metadata']['name']}-{i}.{w['spec']['serviceName']}"
            for w in of_kind(objects, "StatefulSet") for i in range(w["spec"]["replicas"])}
    hosts = {r["host"] for i in of_kind(objects, "Ingress") for r in i["spec"]["rules"]}
    problems = []
    for w in of_kind(objects, "Deployment"):
        for var in pod_spec(w)["containers"][0].get("env", []):
            name, value = var["name"], var.get("value") or ""
            for host, port in _addresses(value) if re.search(r"_(URLS?|SERVERS)$", name) else []:
                if name.endswith("PUBLIC_URL"):
                    if hosts and host not in hosts:
                        problems.append(f"{_ref(w)}: {name} names {host}, which no Ingress rule serves")
                elif host.startswith(f"{RELEASE}-"):
                    service = host.split(".", 1)[1] if "." in host else host
                    if "." in host and host not in pods:
                        problems.append(f"{_ref(w)}: {name} names {host}, a pod no StatefulSet has")
                    if port not in services.get(service, set()):
                        problems.append(f"{_ref(w)}: {name} names {service}:{port}, which no Service offers")
    return problems
