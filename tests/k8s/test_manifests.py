"""The Kubernetes manifests: valid for Kubernetes 1.30 and the newest schemas, in strict
mode, and consistent with what the service serves and reads."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from services.settings import ScoringSettings
from services.web import HEALTH_PATH, METRICS_PATH, READY_PATH
from tests.k8s.render import render
from tests.ops.prometheus import binary

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = sorted(p for p in (K8S / "overlays").iterdir() if p.is_dir())
VERSIONS = ["1.30.0", latest_version()]


def _kubectl(directory: Path) -> list[dict[str, Any]] | None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True,
                         text=True, timeout=60)
    if out.returncode != 0:
        pytest.fail(f"kubectl kustomize {directory} failed: {out.stderr}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def _by_kind(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{r['kind']}/{r['metadata']['name']}": r for r in resources}


def _scoring(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return _by_kind(resources)["StatefulSet/edml-scoring"]


@pytest.fixture(params=OVERLAYS, ids=lambda p: p.name)
def overlay(request: pytest.FixtureRequest) -> Path:
    return request.param  # type: ignore[no-any-return]


def test_there_are_dev_and_prod_overlays() -> None:
    assert {p.name for p in OVERLAYS} >= {"dev", "prod"}


def test_the_test_renderer_agrees_with_kubectl_kustomize(overlay: Path) -> None:
    rendered = _kubectl(overlay)
    if rendered is None:
        pytest.skip("kubectl is not installed here; the test renderer stands alone")
    assert _by_kind(render(overlay)) == _by_kind(rendered)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_rendered_manifest_validates_strictly(overlay: Path, version: str) -> None:
    resources = _kubectl(overlay) or render(overlay)
    assert {r["kind"] for r in resources} >= {"StatefulSet", "Service",
                                              "PodDisruptionBudget", "ConfigMap", "Job"}
    for resource in resources:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError as exc:  # a missing schema fails too
            pytest.fail(f"no {version} schema for {resource['kind']}: {exc}")
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{resource['kind']}/{resource['metadata']['name']} ({version}): "
                        f"{exc.message} at {list(exc.path)}")


def test_probes_use_the_paths_and_port_the_service_serves(overlay: Path) -> None:
    pod = _scoring(render(overlay))["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == ScoringSettings().web_port
    assert container["readinessProbe"]["httpGet"] == {"path": READY_PATH, "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": HEALTH_PATH, "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == HEALTH_PATH


def _setting_names() -> set[str]:
    names = set()
    settings = ScoringSettings()
    for field, value in settings:
        if hasattr(value, "model_config"):  # nested: kafka, topics, storage, registry
            prefix = value.model_config["env_prefix"]
            names |= {f"{prefix}{name}".upper() for name in type(value).model_fields}
        else:
            names.add(f"EDML_SCORING_{field}".upper())
    return names


def test_every_configmap_setting_is_one_the_service_reads(overlay: Path) -> None:
    config = _by_kind(render(overlay))["ConfigMap/edml-scoring"]["data"]
    unknown = set(config) - _setting_names()
    assert not unknown, f"settings the service does not read: {sorted(unknown)}"
    ScoringSettings.model_validate({})  # defaults valid; values are checked below
    assert int(config["EDML_SCORING_WEB_PORT"]) == ScoringSettings().web_port


def test_replicas_never_exceed_the_records_partitions(overlay: Path) -> None:
    resources = render(overlay)
    partitions = int(_by_kind(resources)["ConfigMap/edml-scoring"]["data"][
        "EDML_TOPIC_PARTITIONS"])
    assert 1 <= _scoring(resources)["spec"]["replicas"] <= partitions


def test_the_pod_runs_locked_down_and_keeps_its_state_on_a_volume(overlay: Path) -> None:
    statefulset = _scoring(render(overlay))
    pod = statefulset["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {"allowPrivilegeEscalation": False,
                                            "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["data"] == "/data"
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert container["resources"]["limits"]["memory"]
    assert pod["terminationGracePeriodSeconds"] >= 30


def test_no_secret_value_is_committed() -> None:
    for path in K8S.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            assert not doc or doc.get("kind") != "Secret", f"{path} holds a Secret"


def test_the_image_holds_every_package_edml_installs() -> None:
    import tomllib

    dockerfile = (ROOT / "Dockerfile").read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    tops = {name.split(".")[0] for name in pyproject["tool"]["setuptools"]["packages"]}
    for top in sorted(tops):
        assert f"COPY {top} ./{top}" in dockerfile, f"the image lacks {top}/"


def test_every_path_and_command_the_dockerfile_names_exists() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        match = re.match(r"COPY (?!--from)(.+) \S+$", line)
        if match:
            for source in match[1].split():
                assert (ROOT / source).exists(), f"Dockerfile copies a missing {source}"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'ENTRYPOINT ["edml"]' in dockerfile and 'edml = "edml.cli:main"' in pyproject
    assert 'CMD ["serve"]' in dockerfile
    from edml.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert "serve" in commands and "publish" in commands
    assert f"EXPOSE {ScoringSettings().web_port}" in dockerfile
    assert re.search(r"^USER 10001", dockerfile, re.M)
    final_stage = dockerfile.rsplit("FROM ", 1)[1]
    assert "pip install" not in final_stage and "COPY --from=build /opt/edml" in final_stage


def _pods(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by_kind = _by_kind(resources)
    return {name: by_kind[name]["spec"]["template"]["spec"]
            for name in ("StatefulSet/edml-scoring", "Job/edml-publish")}


def test_a_key_file_is_named_only_where_a_key_is_mounted(overlay: Path) -> None:
    for name, pod in _pods(render(overlay)).items():
        container = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        key = env.get("GOOGLE_APPLICATION_CREDENTIALS")
        if key is None:  # Application Default Credentials: the pod's service account
            assert pod["serviceAccountName"] in ("edml-scoring", "edml-publish",
                                             "edml-controller"), name
            continue
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volume = mounts[str(Path(key).parent)]
        secret = next(v for v in pod["volumes"] if v["name"] == volume)["secret"]
        assert not secret.get("optional"), f"{name}: the key may be absent, the variable not"


def test_the_base_and_prod_use_workload_identity_and_dev_a_key() -> None:
    for overlay in ("prod", "dev"):
        resources = render(K8S / "overlays" / overlay)
        accounts = {r["metadata"]["name"]: r for r in resources if r["kind"] == "ServiceAccount"}
        assert set(accounts) == {"edml-scoring", "edml-publish", "edml-controller"}
        annotated = all("iam.gke.io/gcp-service-account" in a["metadata"].get("annotations", {})
                        for a in accounts.values())
        envs = [e["name"] for pod in _pods(resources).values()
                for e in pod["containers"][0].get("env", [])]
        assert annotated == (overlay == "prod")
        assert ("GOOGLE_APPLICATION_CREDENTIALS" in envs) == (overlay == "dev")


def test_one_rollout_controller_runs_locked_down_and_never_two_at_once(overlay: Path) -> None:
    deployment = _by_kind(render(overlay))["Deployment/edml-controller"]
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["controller"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["serviceAccountName"] == "edml-controller"


def test_one_retrainer_answers_requests_as_the_publisher_with_a_writable_work_dir(
        overlay: Path) -> None:
    deployment = _by_kind(render(overlay))["Deployment/edml-retrainer"]
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["retrain", "--follow"]
    assert pod["serviceAccountName"] == "edml-publish"  # it writes the model bucket
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert env["EDML_RETRAIN_WORK_DIR"].startswith("/work/") and "/work" in mounts


def test_the_pod_monitor_scrapes_every_scoring_pod_as_the_job_the_alerts_select(
        overlay: Path) -> None:
    monitoring = _by_kind(render(K8S / "monitoring"))
    monitor = monitoring["PodMonitor/edml-scoring"]["spec"]
    pod = _scoring(render(overlay))["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert monitor["selector"]["matchLabels"].items() <= labels.items()
    assert labels[monitor["jobLabel"]] == "edml-scoring"  # the alerts' up{job="edml-scoring"}
    ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    for endpoint in monitor["podMetricsEndpoints"]:
        assert endpoint["port"] in ports and endpoint["path"] == METRICS_PATH


def test_the_prometheus_rule_is_a_rule_file_promtool_accepts(tmp_path: Path) -> None:
    rule = _by_kind(render(K8S / "monitoring"))["PrometheusRule/edml-scoring"]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rule["spec"]))
    out = subprocess.run([binary("promtool"), "check", "rules", str(tmp_path / "rules.yml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr
