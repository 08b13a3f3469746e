"""What a worker makes of its model topic: only the final state after catch-up counts, a
recreated topic is read again, and an event it cannot act on raises the alarm and changes
nothing."""

from __future__ import annotations

import dataclasses
import shutil
import time
import uuid
from pathlib import Path

import pytest

from edml.artifacts import checksum_of
from edml.codec import Codec
from edml.contracts import ModelKey
from edml.kafka import ensure_topics, flush_or_raise, producer, topic_specs
from edml.model_log import read_model_log
from edml.settings import KafkaSettings, StorageSettings, TopicSettings
from edml.storage import open_store
from model_publisher.publish import announce, publish
from model_publisher.settings import PublisherSettings
from tests.services.workers import (
    Workers,
    all_outcomes,
    read_model_events,
    read_outputs,
    real_requests,
    send,
    serving,
    storage_behind_proxy,
    wait_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.gcs, pytest.mark.tf]


def _alerts(kafka: KafkaSettings, topics: TopicSettings, error_kind: str) -> int:
    """How many times v2 was refused for ``error_kind`` on the model-events topic."""
    return sum(1 for e in read_model_events(kafka, topics)
               if (e.kind, e.model_version, e.error_kind) == ("load_failed", "v2", error_kind))


def _versions_serving(kafka: KafkaSettings, topics: TopicSettings, n: int = 50) -> set[str]:
    """The versions that predict ``n`` requests sent now (on a topic with no others)."""
    send(kafka, topics.records, real_requests(n))
    all_outcomes(kafka, topics, n)
    return {p.model_version for p in read_outputs(kafka, topics).predictions}


def test_a_fresh_worker_loads_only_the_latest_version_not_the_history(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings, gcs: StorageSettings,
) -> None:
    old = publish(quick_model, "trips", publisher, version="v1").metadata
    open_store(gcs, old.storage_uri).delete_dir(old.storage_uri)  # superseded and cleaned up
    publish(quick_model, "trips", publisher, version="v2")
    worker = workers.make("w1").start()
    worker.wait_ready("v2")
    send(kafka, topics.records, real_requests(200))
    all_outcomes(kafka, topics, 200)

    assert {p.model_version for p in read_outputs(kafka, topics).predictions} == {"v2"}
    assert [(e.kind, e.model_version) for e in read_model_events(kafka, topics)] == [
        ("loaded", "v2")]  # no load of v1, and no false alarm about its missing files
    log = worker.log_path.read_text()
    assert "model.loading model=trips version=v2" in log
    assert "model.loading model=trips version=v1" not in log


def test_a_recreated_model_topic_is_read_again_from_its_start(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings,
) -> None:
    first = serving(quick_model, publisher, workers, "v1")  # v1 at offset 0 of the old topic
    assert first.stop() == 0
    # the topic deleted and created again (or a broker that lost its storage): to the
    # worker, a model topic whose offset 0 holds another event
    recreated = topics.model_copy(update={"models": f"models-{uuid.uuid4().hex[:10]}"})
    ensure_topics(kafka, topic_specs(recreated))
    publish(quick_model, "trips", publisher.model_copy(update={"topics": recreated}),
            version="v2")
    again = workers.make("w1", recreated).start()  # the same data directory
    again.wait_ready("v2")
    assert again.logged("model_table.rebuild"), again.log()


@pytest.mark.parametrize("bad", ["garbage", "null", "another-model"])
def test_an_event_the_worker_cannot_act_on_raises_one_alert_and_changes_nothing(
    bad: str, quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings,
) -> None:
    worker = serving(quick_model, publisher, workers, "v1")
    codec, prod = Codec(), producer(kafka)
    if bad == "another-model":
        publish(quick_model, "fares", publisher, version="f1")
    else:
        prod.produce(topics.models, key=codec.encode(ModelKey("trips")),
                     value=b"\x00\x01 not a model event" if bad == "garbage" else None)
        flush_or_raise(prod, 10)
    sent = time.monotonic()
    wait_for(lambda: any(e.kind == "rejected" for e in read_model_events(kafka, topics)), 10,
             "the alert")
    assert time.monotonic() - sent < 10
    rejected = [e for e in read_model_events(kafka, topics) if e.kind == "rejected"]
    assert len(rejected) == 1 and rejected[0].error_kind == "RejectedEvent"
    assert worker.readiness()["model_version"] == "v1"
    assert _versions_serving(kafka, topics) == {"v1"}


def test_an_event_pointing_outside_the_storage_roots_is_refused_also_after_a_restart(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path,
) -> None:
    worker = serving(quick_model, publisher, workers, "v1")
    v1 = read_model_log(kafka, topics.models, Codec())[-1].metadata
    decoy = tmp_path / "decoy" / "trips" / "v2"  # the same files, checksum and all
    shutil.copytree(quick_model, decoy)
    announce(publisher, dataclasses.replace(v1, version="v2", storage_uri=decoy.as_uri() + "/",
                                            checksum=checksum_of(decoy)))
    sent = time.monotonic()
    wait_for(lambda: _alerts(kafka, topics, "ArtifactError") == 1, 10, "the alert")
    assert time.monotonic() - sent < 10
    assert worker.readiness()["model_version"] == "v1"

    assert worker.stop() == 0
    again = workers.make("w1").start()  # the same data directory
    again.wait_ready("v1")  # what served before the restart serves after it
    wait_for(lambda: _alerts(kafka, topics, "ArtifactError") == 2, 30,
             "the alert after the restart")
    assert _versions_serving(kafka, topics) == {"v1"}


@pytest.mark.parametrize("fault", ["down", "hung"])
def test_storage_away_during_a_swap_alerts_within_seconds_and_the_version_loads_when_back(
    fault: str, quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings, gcs: StorageSettings,
) -> None:
    with storage_behind_proxy(gcs) as (storage, through_it):
        publish(quick_model, "trips", publisher, version="v1")
        worker = workers.make("w1", storage=through_it).start()
        worker.wait_ready("v1")
        storage.down() if fault == "down" else storage.hang()  # hung: the 5 s timeout bounds
        publish(quick_model, "trips", publisher, version="v2")  # the publisher's storage is up
        sent = time.monotonic()
        wait_for(lambda: _alerts(kafka, topics, "StorageError") == 1, 10, "the alert")
        assert time.monotonic() - sent < 10
        assert worker.readiness()["model_version"] == "v1"  # the old version serves on
        time.sleep(3)
        storage.restore()
        worker.wait_ready("v2", timeout_s=60)  # retried on its own, no new event needed
        assert _alerts(kafka, topics, "StorageError") == 1  # one alert for the whole outage
        assert _versions_serving(kafka, topics) == {"v2"}
