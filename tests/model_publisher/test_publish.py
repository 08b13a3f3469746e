"""Publishing against the real local broker and the GCS emulator, and every refusal."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf

from edml.artifacts import artifact_uri, checksum_of
from edml.errors import ArtifactError, BrokerError, ModelError, StorageError
from edml.local.processes import free_port
from edml.settings import KafkaSettings, StorageSettings, TopicSettings
from edml.storage import open_store
from model_publisher.models import history, latest, promote, rollback, status, verify_stored
from model_publisher.publish import publish
from model_publisher.settings import PublisherSettings

pytestmark = [pytest.mark.kafka, pytest.mark.gcs, pytest.mark.tf]


@pytest.fixture
def settings(kafka: KafkaSettings, topics: TopicSettings, gcs: StorageSettings
             ) -> PublisherSettings:
    return PublisherSettings(kafka=kafka, topics=topics, storage=gcs, git_commit="0123abcd")


def _versions(settings: PublisherSettings, name: str = "trips") -> list[str]:
    return [e.metadata.version for e in history(settings, name)]


def test_publish_stores_the_artifact_and_announces_it(
    quick_model: Path, settings: PublisherSettings, tmp_path: Path
) -> None:
    done = publish(quick_model, "trips", settings, version="v1")

    m = done.metadata
    assert m.storage_uri == artifact_uri(settings.storage.uri, "trips", "v1")
    assert m.checksum == checksum_of(quick_model)
    assert m.git_commit == "0123abcd"
    assert {s.name for s in m.signature.inputs} == {
        "pickup_datetime", "pickup_zone_id", "dropoff_zone_id", "passenger_count"}
    assert m.metrics["mae_minutes"] > 0
    verify_stored(settings, m.storage_uri, m.checksum)  # the stored files match the manifest
    assert latest(settings)["trips"].metadata == m


def test_v2_becomes_current_history_keeps_both_and_rollback_restores_v1(
    quick_model: Path, settings: PublisherSettings
) -> None:
    publish(quick_model, "trips", settings, version="v1")
    publish(quick_model, "trips", settings, version="v2")
    assert latest(settings)["trips"].metadata.version == "v2"
    assert _versions(settings) == ["v1", "v2"]

    rollback(settings, "trips", "v1")

    assert latest(settings)["trips"].metadata.version == "v1"
    assert _versions(settings) == ["v1", "v2", "v1"]


def test_a_version_is_made_from_project_version_time_and_commit(
    quick_model: Path, settings: PublisherSettings
) -> None:
    version = publish(quick_model, "trips", settings).metadata.version
    project, stamp, sha = version.rsplit("-", 2)
    assert project == "0.1.0" and len(stamp) == 14 and stamp.isdigit() and sha == "0123abc"


def _unchanged(settings: PublisherSettings, versions: list[str], uri: str | None) -> None:
    assert _versions(settings) == versions
    if uri is not None:
        assert not open_store(settings.storage, uri).exists(uri)


def test_publish_refuses_an_existing_version(quick_model: Path,
                                             settings: PublisherSettings) -> None:
    publish(quick_model, "trips", settings, version="v1")
    with pytest.raises(ArtifactError, match="exists already"):
        publish(quick_model, "trips", settings, version="v1")
    assert _versions(settings) == ["v1"]


def test_publish_refuses_a_folder_that_is_not_a_savedmodel(
    settings: PublisherSettings, tmp_path: Path
) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.h5").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a SavedModel"):
        publish(tmp_path / "model", "trips", settings, version="v1")
    _unchanged(settings, [], artifact_uri(settings.storage.uri, "trips", "v1"))


def test_publish_refuses_a_corrupt_savedmodel(
    quick_model: Path, settings: PublisherSettings, tmp_path: Path
) -> None:
    broken = shutil.copytree(quick_model, tmp_path / "broken")
    (broken / "saved_model.pb").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="does not load"):
        publish(broken, "trips", settings, version="v1")
    _unchanged(settings, [], artifact_uri(settings.storage.uri, "trips", "v1"))


def test_publish_names_the_reference_profile_and_refuses_a_malformed_one(
    quick_model: Path, settings: PublisherSettings, tmp_path: Path
) -> None:
    broken = shutil.copytree(quick_model, tmp_path / "broken-profile")
    (broken / "edml_profile.json").write_text('{"format": 1, "areas": []}')
    with pytest.raises(ModelError, match="malformed reference profile"):
        publish(broken, "trips", settings, version="v1")
    _unchanged(settings, [], artifact_uri(settings.storage.uri, "trips", "v1"))
    assert publish(quick_model, "trips", settings, version="v1").metadata.profile == \
        "edml_profile.json"


def _model_needing_trip_distance(tmp_path: Path) -> Path:
    """A SavedModel that wants the actual trip distance, which no request carries."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="trip_distance"),
                                  tf.TensorSpec([None], tf.int64, name="pickup_zone_id")])
    def serve(trip_distance: tf.Tensor, pickup_zone_id: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"duration_seconds": trip_distance * 120.0}

    path = tmp_path / "needs-distance"
    tf.saved_model.save(tf.Module(), str(path), signatures={"serving_default": serve})
    return path


def test_publish_refuses_a_signature_the_records_cannot_satisfy(
    settings: PublisherSettings, tmp_path: Path
) -> None:
    with pytest.raises(ModelError, match="input 'trip_distance' is not a TripRequest field"):
        publish(_model_needing_trip_distance(tmp_path), "trips", settings, version="v1")
    _unchanged(settings, [], artifact_uri(settings.storage.uri, "trips", "v1"))


def test_publish_with_storage_unreachable_fails_and_announces_nothing(
    quick_model: Path, settings: PublisherSettings
) -> None:
    dead = settings.model_copy(update={"storage": StorageSettings(
        uri="gs://edml-test/models", endpoint=f"http://127.0.0.1:{free_port()}", timeout_s=2)})
    started = time.monotonic()
    with pytest.raises(StorageError):
        publish(quick_model, "trips", dead, version="v1")
    assert time.monotonic() - started < 60  # bounded, not a speed claim
    _unchanged(settings, [], None)


def test_publish_with_broker_unreachable_fails_and_stores_nothing(
    quick_model: Path, settings: PublisherSettings
) -> None:
    dead = settings.model_copy(update={"kafka": KafkaSettings(
        bootstrap=f"127.0.0.1:{free_port()}", request_timeout_s=2)})
    started = time.monotonic()
    with pytest.raises(BrokerError, match=r"cannot reach the Kafka broker|not available"):
        publish(quick_model, "trips", dead, version="v1")
    assert time.monotonic() - started < 60  # bounded, not a speed claim
    _unchanged(settings, [], artifact_uri(settings.storage.uri, "trips", "v1"))


def test_rollback_refuses_a_version_whose_files_changed(
    quick_model: Path, settings: PublisherSettings, tmp_path: Path
) -> None:
    v1 = publish(quick_model, "trips", settings, version="v1").metadata
    publish(quick_model, "trips", settings, version="v2")
    store = open_store(settings.storage, v1.storage_uri)
    store.delete_dir(v1.storage_uri)  # someone tampered with the bucket
    tampered = shutil.copytree(quick_model, tmp_path / "tampered")
    (tampered / "edml_model.json").write_text("{}")
    store.upload_dir(tampered, v1.storage_uri)

    with pytest.raises(ArtifactError, match="does not match its checksum"):
        rollback(settings, "trips", "v1")
    assert latest(settings)["trips"].metadata.version == "v2"


def test_rollback_to_an_unknown_version_names_the_known_ones(
    quick_model: Path, settings: PublisherSettings
) -> None:
    publish(quick_model, "trips", settings, version="v1")
    publish(quick_model, "trips", settings, version="v2")
    with pytest.raises(ModelError, match=r"no version 'v9' \(it has v1, v2\)"):
        rollback(settings, "trips", "v9")


def test_the_cli_publishes_and_lists(quick_model: Path, settings: PublisherSettings) -> None:
    env = {
        "PATH": "/usr/bin:/bin", "EDML_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "EDML_TOPIC_MODELS": settings.topics.models, "EDML_STORAGE_URI": settings.storage.uri,
        "EDML_STORAGE_ENDPOINT": settings.storage.endpoint or "",
    }

    def edml(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edml.cli", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    done = edml("publish", str(quick_model), "--name", "trips", "--version", "v7")
    assert done.returncode == 0, done.stderr
    assert "published trips v7" in done.stdout
    listed = edml("models", "list")
    assert listed.returncode == 0 and "trips  v7" in listed.stdout
    again = edml("publish", str(quick_model), "--name", "trips", "--version", "v7")
    assert again.returncode == 1
    assert "ArtifactError:" in again.stderr and "exists already" in again.stderr


def test_a_candidate_is_published_beside_the_champion_promoted_and_rolled_back(
    quick_model: Path, settings: PublisherSettings
) -> None:
    publish(quick_model, "trips", settings, version="v1")
    publish(quick_model, "trips", settings, version="v2", mode="shadow")
    state = status(settings, "trips").state
    assert state.version == "v1" and state.rollout is not None
    assert (state.rollout.candidate.version, state.rollout.mode) == ("v2", "shadow")

    promote(settings, "trips")
    state = status(settings, "trips").state
    assert (state.version, state.rollout) == ("v2", None)

    publish(quick_model, "trips", settings, version="v3", mode="canary", weight=0.2)
    rollback(settings, "trips")  # the candidate goes; the champion stays
    state = status(settings, "trips").state
    assert (state.version, state.candidate) == ("v2", None)
    rollback(settings, "trips")  # no candidate: the previous champion comes back
    assert status(settings, "trips").state.version == "v1"
    # v3 never served, but it is stored and known: it can be made the champion by name
    rollback(settings, "trips", "v3")
    assert status(settings, "trips").state.version == "v3"


def test_a_candidate_without_a_champion_is_refused_before_any_upload(
    quick_model: Path, settings: PublisherSettings
) -> None:
    with pytest.raises(ModelError, match="has no champion yet"):
        publish(quick_model, "trips", settings, version="v1", mode="canary", weight=0.1)
    _unchanged(settings, [], artifact_uri(settings.storage.uri, "trips", "v1"))


def test_the_cli_shows_promotes_and_rolls_back(quick_model: Path,
                                               settings: PublisherSettings) -> None:
    publish(quick_model, "trips", settings, version="v1")
    env = {
        "PATH": "/usr/bin:/bin", "EDML_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "EDML_TOPIC_MODELS": settings.topics.models, "EDML_STORAGE_URI": settings.storage.uri,
        "EDML_STORAGE_ENDPOINT": settings.storage.endpoint or "",
    }

    def edml(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "edml.cli", *args], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = edml("publish", str(quick_model), "--name", "trips", "--version", "v2", "--as",
               "canary", "--weight", "0.25", "--policy", "min_paired=500")
    assert "published trips v2 as canary beside v1" in out
    out = edml("models", "status", "trips")
    assert "champion   v1" in out and "candidate  v2  canary 25% of trips" in out
    assert "verdict after 500 paired actuals" in out
    assert "evidence   none yet (no paired actuals)" in out
    assert "v2 is the champion" in edml("models", "promote", "trips")
    assert "v1 serves alone" in edml("models", "rollback", "trips")
    assert "champion   v1" in edml("models", "status", "trips")
