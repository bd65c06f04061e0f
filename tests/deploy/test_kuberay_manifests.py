"""deploy/kuberay/*.yaml, checked statically (no Kubernetes cluster here): each RayJob validates
against KubeRay's published CRD schema (tests/deploy/kuberay_crd/, see its README), read the
way `kubectl apply --validate=strict` reads it (an unknown field is an error); no secret is
written inline; every image tag is pinned; GPU workers ask for GPUs.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
MANIFESTS = sorted((ROOT / "deploy" / "kuberay").glob("*.yaml"))
RAYJOB_SCHEMA = json.loads((HERE / "kuberay_crd" / "ray.io_rayjobs.v1.json").read_text())

# Names of variables that carry a credential, or an address that may hold one (a database URL
# with its password, an MLflow URL with a login): their value comes from a Secret.
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET|KEY|USERNAME|URI|URL|STORAGE", re.I)
# user:password@ in a URL, or a long hex/base64 string: what a pasted secret looks like.
SECRET_VALUE = re.compile(r"://[^/\s:@]+:[^/\s@]+@|\b[0-9a-f]{32,}\b|\b[A-Za-z0-9+/]{40,}={0,2}")


def strict(schema: Any) -> Any:
    """The schema with unknown fields refused: every object that lists its properties and does
    not ask to keep unknown ones gets additionalProperties: false (what the API server's strict
    field validation does; plain JSON Schema would accept a misspelt field)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


STRICT_RAYJOB = strict(RAYJOB_SCHEMA)


def schema_errors(doc: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(STRICT_RAYJOB)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def documents() -> list[tuple[str, dict]]:
    out = []
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return out


def rayjobs() -> list[tuple[str, dict]]:
    return [(name, doc) for name, doc in documents() if doc["kind"] == "RayJob"]


def pod_specs(job: dict) -> Iterator[tuple[str, dict]]:
    spec = job["spec"]
    cluster = spec["rayClusterSpec"]
    yield "head", cluster["headGroupSpec"]["template"]["spec"]
    for group in cluster.get("workerGroupSpecs", []):
        yield f"worker group {group['groupName']}", group["template"]["spec"]
    if "submitterPodTemplate" in spec:
        yield "submitter", spec["submitterPodTemplate"]["spec"]


def containers(job: dict) -> Iterator[tuple[str, dict]]:
    for where, pod in pod_specs(job):
        for c in pod.get("initContainers", []) + pod["containers"]:
            yield f"{where}/{c['name']}", c


def images(node: Any) -> Iterator[str]:
    """Every `image:` value anywhere in a manifest."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image":
                yield value
            else:
                yield from images(value)
    elif isinstance(node, list):
        for item in node:
            yield from images(item)


def unpinned(image: str) -> bool:
    """No tag, or `latest`; a digest (@sha256:...) pins it too."""
    if "@sha256:" in image:
        return False
    name, _, tag = image.rpartition(":")
    return not name or "/" in tag or tag in ("", "latest")


def inline_secrets(job: dict) -> list[str]:
    found = []
    for where, c in containers(job):
        for var in c.get("env", []):
            if "value" in var and (
                SECRET_NAME.search(var["name"]) or SECRET_VALUE.search(str(var["value"]))
            ):
                found.append(f"{where}: {var['name']} has an inline value")
            ref = var.get("valueFrom", {})
            if SECRET_NAME.search(var["name"]) and "secretKeyRef" not in ref:
                found.append(f"{where}: {var['name']} does not come from a Secret")
        for arg in c.get("command", []) + c.get("args", []):
            if SECRET_VALUE.search(arg):
                found.append(f"{where}: a secret on the command line")
    for text in (job["spec"].get("entrypoint", ""), job["spec"].get("runtimeEnvYAML", "")):
        if SECRET_VALUE.search(text) or re.search(r"--(tracking-uri|optuna-storage)", text):
            found.append(f"entrypoint/runtimeEnvYAML: a store address or secret inline: {text}")
    return found


def test_there_is_a_rayjob():
    assert [name for name, _ in rayjobs()] == ["rayjob.yaml:RayJob/ablation-study"]


@pytest.mark.parametrize("name,job", rayjobs())
def test_rayjob_validates_against_kuberay_crd(name, job):
    assert job["apiVersion"] == "ray.io/v1"
    assert schema_errors(job) == [], name


def test_schema_check_refuses_a_misspelt_field_and_a_wrong_type():
    (_, job), *_ = rayjobs()
    bad = copy.deepcopy(job)
    bad["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParam"] = {}
    bad["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] = "two"
    errors = schema_errors(bad)
    assert any("rayStartParam" in e for e in errors), errors
    assert any("workerGroupSpecs/0/replicas" in e for e in errors), errors


@pytest.mark.parametrize("name,job", rayjobs())
def test_no_secret_inline(name, job):
    assert inline_secrets(job) == [], name
    for path in MANIFESTS:  # no Secret object with its data in the repository either
        assert "kind: Secret" not in path.read_text(), path


def test_inline_secret_check_catches_a_pasted_token_and_a_password_in_a_url():
    (_, job), *_ = rayjobs()
    bad = copy.deepcopy(job)
    head = bad["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["env"][0] = {"name": "RAY_AUTH_TOKEN", "value": "0123456789abcdef" * 4}
    head["env"].append({"name": "DB", "value": "postgresql://optuna:hunter2@db:5432/optuna"})
    found = inline_secrets(bad)
    assert any("RAY_AUTH_TOKEN has an inline value" in f for f in found), found
    assert any("DB has an inline value" in f for f in found), found


@pytest.mark.parametrize("name,job", rayjobs())
def test_every_image_tag_pinned(name, job):
    found = list(images(job))
    assert found and [i for i in found if unpinned(i)] == [], found
    assert all(unpinned(i) for i in ("ablation", "ablation:latest", "reg.io:5000/ablation"))
    assert not unpinned("reg.io:5000/ablation:0.1.0")


@pytest.mark.parametrize("name,job", rayjobs())
def test_cluster_runs_this_ray_with_token_auth_and_gpu_workers(name, job):
    cluster = job["spec"]["rayClusterSpec"]
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ray_pin = next(p for p in pins if p.startswith("ray[")).split("==")[1]
    assert cluster["rayVersion"] == ray_pin
    assert cluster["authOptions"]["mode"] == "token"
    for where, c in containers(job):
        token = [v for v in c.get("env", []) if v["name"] == "RAY_AUTH_TOKEN"]
        ref = token[0]["valueFrom"]["secretKeyRef"] if token else {}
        assert ref == {"name": cluster["authOptions"]["secretName"], "key": "auth_token"}, where
    for group in cluster["workerGroupSpecs"]:
        for c in group["template"]["spec"]["containers"]:
            limits = c["resources"]["limits"]
            assert int(limits["nvidia.com/gpu"]) >= 1, group["groupName"]
    assert "--address auto" in job["spec"]["entrypoint"]
