"""The CI pipeline definitions, and their local twin run end to end."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from edml.codec import Codec
from edml.model_log import latest_per_name, read_model_log
from edml.settings import KafkaSettings, StorageSettings, TopicSettings

ROOT = Path(__file__).resolve().parents[2]
GITLAB = ".gitlab-ci.yml"  # where GitLab and GitHub look, so a fork runs them as they are
GITHUB = ".github/workflows/model.yml"


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text())


def test_gitlab_runs_test_train_publish_with_a_manual_publish_on_main() -> None:
    pipeline = _load(GITLAB)
    assert pipeline["stages"] == ["test", "train", "publish"]
    assert pipeline["train"]["artifacts"]["paths"] == ["model-out/"]
    assert pipeline["train"]["artifacts"]["reports"]["dotenv"] == "model.env"
    publish = pipeline["publish"]
    assert publish["needs"] == ["train"]
    assert publish["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH",
                                 "when": "manual"}]
    assert any("--version \"$MODEL_VERSION\"" in line for line in publish["script"])


def test_github_runs_test_train_publish_with_an_approved_publish_on_main() -> None:
    jobs = _load(GITHUB)["jobs"]
    assert jobs["train"]["needs"] == "test" and jobs["publish"]["needs"] == "train"
    assert jobs["publish"]["environment"] == "production"
    assert "refs/heads/main" in jobs["publish"]["if"]
    steps = " ".join(str(step) for step in jobs["publish"]["steps"])
    assert "needs.train.outputs.version" in steps and "download-artifact" in steps
    secrets = " ".join(str(v) for v in jobs["publish"]["env"].values())
    assert "secrets.EDML_KAFKA_SASL_PASSWORD" in secrets


def test_credentials_come_from_ci_secrets_only() -> None:
    github_env = _load(GITHUB)["jobs"]["publish"]["env"]
    for name, value in github_env.items():
        if any(word in name for word in ("PASSWORD", "USERNAME", "BOOTSTRAP")):
            assert str(value).startswith("${{ secrets."), name
    gitlab = _load(GITLAB)
    assigned = {**gitlab["variables"], **gitlab["publish"]["variables"]}
    assert not any("PASSWORD" in name or "USERNAME" in name for name in assigned)
    assert assigned["GOOGLE_APPLICATION_CREDENTIALS"] == "$GCP_SERVICE_ACCOUNT_KEY"


@pytest.mark.kafka
@pytest.mark.gcs
@pytest.mark.tf
def test_the_local_pipeline_trains_publishes_and_the_event_reads_back(
    kafka: KafkaSettings, topics: TopicSettings, gcs: StorageSettings
) -> None:
    env = {
        "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
        "EDML_KAFKA_BOOTSTRAP": kafka.bootstrap, "EDML_TOPIC_MODELS": topics.models,
        "EDML_STORAGE_URI": gcs.uri, "EDML_STORAGE_ENDPOINT": gcs.endpoint or "",
        "TRAIN_ARGS": "--quick --quick-rows 2000", "MODEL_NAME": "ci-trips",
        "TEST_ARGS": "-q tests/edml/test_artifacts.py",
    }
    run = subprocess.run(["bash", str(ROOT / "ci" / "run-local.sh")], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for stage in ("== stage: test", "== stage: train", "== stage: publish"):
        assert stage in run.stdout

    latest = latest_per_name(read_model_log(kafka, topics.models, Codec()))
    published = latest["ci-trips"].metadata
    assert f"== stage: publish {published.version}" in run.stdout
    assert published.storage_uri.startswith(gcs.uri)
    assert published.metrics["mae_minutes"] > 0
