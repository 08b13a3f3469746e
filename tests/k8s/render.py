"""A small kustomize: just the features edml's overlays use, so the manifests can be
checked where no kubectl is installed. Where kubectl is, a test checks that both agree."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]


def _pointer(path: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p.replace("~1", "/").replace("~0", "~")
            for p in path.lstrip("/").split("/")]


def _apply_op(doc: Resource, op: dict[str, Any]) -> None:
    *parents, last = _pointer(op["path"])
    node: Any = doc
    for part in parents:
        node = node[part]
    if op["op"] in ("replace", "add"):
        if isinstance(node, list) and op["op"] == "add":
            node.insert(len(node) if last == "-" else int(last), op["value"])
        else:
            node[last] = op["value"]
    elif op["op"] == "remove":
        del node[last]
    else:
        raise ValueError(f"unsupported patch op {op['op']}")


def _config_map(spec: dict[str, Any]) -> Resource:
    data = dict(line.split("=", 1) for line in spec.get("literals", []))
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": spec["name"]},
            "data": data}


def render(directory: Path) -> list[Resource]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            resources += render(path)
        else:
            resources += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for spec in kustomization.get("configMapGenerator", []):
        if spec.get("behavior") == "merge":
            target = next(r for r in resources
                          if r["kind"] == "ConfigMap" and r["metadata"]["name"] == spec["name"])
            target["data"].update(_config_map(spec)["data"])
        else:
            resources.append(_config_map(spec))
    resources = copy.deepcopy(resources)
    for label in kustomization.get("labels", []):
        for resource in resources:
            resource["metadata"].setdefault("labels", {}).update(label["pairs"])
    for image in kustomization.get("images", []):
        for resource in resources:
            for container in _containers(resource):
                name, _, tag = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:" \
                                         f"{image.get('newTag', tag)}"
    for replica in kustomization.get("replicas", []):
        for resource in resources:
            if resource["metadata"]["name"] == replica["name"] and "replicas" in resource.get(
                    "spec", {}):
                resource["spec"]["replicas"] = replica["count"]
    for patch in kustomization.get("patches", []):
        target = patch["target"]
        for resource in resources:
            if resource["kind"] == target["kind"] and \
                    resource["metadata"]["name"] == target["name"]:
                for op in yaml.safe_load(patch["patch"]):
                    _apply_op(resource, op)
    if "namespace" in kustomization:
        for resource in resources:
            resource["metadata"]["namespace"] = kustomization["namespace"]
    return resources


def _containers(resource: Resource) -> list[dict[str, Any]]:
    spec = resource.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    if resource["kind"] == "CronJob":
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    return list(pod.get("containers", [])) + list(pod.get("initContainers", []))
