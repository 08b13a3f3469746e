"""Scoring workers on the real local broker and GCS emulator, each with a real SavedModel."""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from pathlib import Path

import pytest

from edml.artifacts import artifact_uri
from edml.contracts import TensorSpec
from edml.kafka import flush_or_raise, producer
from edml.settings import KafkaSettings, StorageSettings, TopicSettings
from edml.storage import open_store
from model_publisher.publish import announce, publish
from model_publisher.settings import PublisherSettings
from tests.services.workers import (
    Sender,
    Workers,
    all_outcomes,
    read_model_events,
    read_outputs,
    real_requests,
    real_trips,
    send,
    serving,
    storage_behind_proxy,
    wait_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.gcs, pytest.mark.tf]


def test_every_request_gets_exactly_one_prediction_or_dead_letter(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings,
) -> None:
    worker = serving(quick_model, publisher, workers, "v1")
    requests = real_requests(3000)
    send(kafka, topics.records, requests, garbage=7)

    all_outcomes(kafka, topics, 3007)
    out = read_outputs(kafka, topics)
    counts = out.outcome_counts()
    assert set(counts) == {r.trip_id for r in requests} | {f"garbage-{i}" for i in range(7)}
    assert sum(counts.values()) - len(counts) == 0  # no duplicates without a failure
    assert {p.model_version for p in out.predictions} == {"v1"}
    assert all(p.predicted_duration_seconds > 0 for p in out.predictions)
    assert {(d.stage, d.error_kind) for d in out.dead_letters} == {("decode", "DecodeError")}
    assert worker.metric("edml_records_in_total") == 3007
    assert worker.metric("edml_dead_letters_total") == 7


def test_actual_durations_join_the_predictions_per_model_version(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings,
) -> None:
    worker = serving(quick_model, publisher, workers, "v1")
    trips = real_trips(500)
    send(kafka, topics.actuals, [done for _, done in trips[:100]])  # some actuals first
    send(kafka, topics.records, [request for request, _ in trips])
    send(kafka, topics.actuals, [done for _, done in trips[100:]])

    count = 'edml_live_abs_error_minutes_count{model_version="v1"}'
    wait_for(lambda: worker.metric(count) == 500, 60, "500 joined trips")
    mean_error = worker.metric('edml_live_abs_error_minutes_sum{model_version="v1"}') / 500
    assert 0 < mean_error < 15  # minutes: a real, if quick, model


def test_scaling_from_one_worker_to_two_mid_stream_loses_no_join(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings,
) -> None:
    a = serving(quick_model, publisher, workers, "v1")
    trips = real_trips(400)
    send(kafka, topics.records, [request for request, _ in trips])  # all waiting on worker a
    all_outcomes(kafka, topics, 400)
    b = workers.make("b").start()  # the scale-out: half the partitions move to b
    b.wait_ready("v1")
    wait_for(lambda: len(a.readiness().get("partitions", [])) == topics.partitions, 60,
             "the partitions split between the two")
    send(kafka, topics.actuals, [done for _, done in trips])  # now the actuals arrive

    count = 'edml_live_abs_error_minutes_count{model_version="v1"}'
    wait_for(lambda: a.metric(count) + b.metric(count) == 400, 60, "400 joined trips")
    assert b.metric(count) > 0  # b joined halves that a had kept: restored, not lost
    assert "evaluation.restored" in b.log_path.read_text()


def test_records_wait_in_kafka_until_a_model_is_loaded(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings,
) -> None:
    worker = workers.make("w1").start()
    send(kafka, topics.records, real_requests(300))
    wait_for(lambda: worker.readiness().get("model_table_caught_up") is True, 60,
             "the model table")
    time.sleep(2)
    assert worker.readiness()["ready"] is False
    assert read_outputs(kafka, topics).outcome_counts() == {}

    publish(quick_model, "trips", publisher, version="v1")
    worker.wait_ready("v1")
    all_outcomes(kafka, topics, 300)
    assert {p.model_version for p in read_outputs(kafka, topics).predictions} == {"v1"}


def test_a_worker_alone_in_its_group_joins_while_its_model_loads_and_scores_only_once_ready(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings, gcs: StorageSettings,
) -> None:
    publish(quick_model, "trips", publisher, version="v1")
    send(kafka, topics.records, real_requests(300))
    with storage_behind_proxy(gcs) as (storage, through_it):
        storage.down()  # v1 cannot load until storage is back
        worker = workers.make("w1", storage=through_it).start()
        wait_for(lambda: worker.logged("scoring.assigned"), 60, "the group join")
        assert worker.logged("scoring.joining_while_loading")
        time.sleep(2)
        assert worker.readiness()["ready"] is False
        assert read_outputs(kafka, topics).outcome_counts() == {}  # held, not dead-lettered
        storage.restore()
        worker.wait_ready("v1", timeout_s=60)
    all_outcomes(kafka, topics, 300)
    assert {p.model_version for p in read_outputs(kafka, topics).predictions} == {"v1"}


def test_a_worker_joining_a_busy_group_joins_only_once_its_model_is_loaded(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings, gcs: StorageSettings,
) -> None:
    first = serving(quick_model, publisher, workers, "v1")
    with storage_behind_proxy(gcs) as (storage, through_it):
        storage.down()
        second = workers.make("w2", storage=through_it).start()
        wait_for(lambda: second.readiness().get("model_table_caught_up") is True, 60,
                 "the model table")
        time.sleep(3)  # a join takes ~2 s here: long enough to have happened
        assert not second.logged("scoring.assigned")  # w1 keeps every partition meanwhile
        send(kafka, topics.records, real_requests(200))
        all_outcomes(kafka, topics, 200)
        storage.restore()
        second.wait_ready("v1", timeout_s=60)
    wait_for(lambda: second.logged("scoring.assigned"), 30, "the second worker's join")
    assert first.readiness()["ready"] is True


def test_v2_published_under_load_takes_over_with_no_record_lost(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings,
) -> None:
    worker = serving(quick_model, publisher, workers, "v1")
    requests = real_requests(8000)
    swapped = threading.Event()
    sending = Sender(kafka, topics.records, requests, 800, until=swapped)
    sending.start()
    time.sleep(1.5)
    publish(quick_model, "trips", publisher, version="v2")
    worker.wait_ready("v2")  # the stream keeps flowing until the swap, however slow the load
    swapped.set()
    sending.join()

    all_outcomes(kafka, topics, len(sending.sent))
    out = read_outputs(kafka, topics)
    assert set(out.outcome_counts()) == {r.trip_id for r in sending.sent}
    assert not out.dead_letters
    served = {v: [p.predicted_at for p in out.predictions if p.model_version == v]
              for v in ("v1", "v2")}
    assert served["v1"] and served["v2"]
    # one switch, no going back: in processing order (across partitions; send order is not
    # processing order), every v1 prediction comes before every v2 prediction
    assert max(served["v1"]) <= min(served["v2"])
    assert worker.readiness()["model_version"] == "v2"


def test_a_bad_v3_is_refused_while_v2_keepsserving(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings, gcs: StorageSettings,
) -> None:
    v2 = publish(quick_model, "trips", publisher, version="v2").metadata
    worker = workers.make("w1").start()
    worker.wait_ready("v2")

    # an event naming a version whose folder holds nothing (announced, never uploaded: a
    # publish-then-delete raced the worker, which could load it in between)
    announce(publisher, dataclasses.replace(v2, version="v3-missing", storage_uri=(
        artifact_uri(gcs.uri, "trips", "v3-missing"))))
    wait_for(lambda: len(read_model_events(kafka, topics)) >= 2, 60, "the refusal")
    in_place = artifact_uri(gcs.uri, "trips", "v3-checksum")
    open_store(gcs, in_place).upload_dir(quick_model, in_place)
    bad_sum = dataclasses.replace(v2, version="v3-checksum", storage_uri=in_place,
                                  checksum="sha256:" + "0" * 64)
    announce(publisher, bad_sum)
    wait_for(lambda: len(read_model_events(kafka, topics)) >= 3, 60, "the refusal")
    needs_distance = dataclasses.replace(v2, version="v3-signature", storage_uri=artifact_uri(
        gcs.uri, "trips", "v3-signature"), signature=(
        dataclasses.replace(v2.signature, inputs=(TensorSpec("trip_distance", "float32"),))))
    announce(publisher, needs_distance)
    wait_for(lambda: len(read_model_events(kafka, topics)) >= 4, 60, "the refusal")

    events = read_model_events(kafka, topics)
    assert [(e.kind, e.model_version, e.error_kind) for e in events] == [
        ("loaded", "v2", None),
        ("load_failed", "v3-missing", "ArtifactError"),
        ("load_failed", "v3-checksum", "ArtifactError"),
        ("load_failed", "v3-signature", "ModelError"),
    ]
    assert "checksum mismatch" in (events[2].message or "")
    send(kafka, topics.records, real_requests(200))
    all_outcomes(kafka, topics, 200)
    assert {p.model_version for p in read_outputs(kafka, topics).predictions} == {"v2"}
    assert worker.readiness()["model_version"] == "v2"
    assert worker.metric("edml_model_load_failures_total") == 3


def test_a_restarted_worker_serves_at_once_from_its_table_and_cache(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings, gcs: StorageSettings,
) -> None:
    v1 = publish(quick_model, "trips", publisher, version="v1").metadata
    first = workers.make("w1").start()
    first.wait_ready("v1")
    send(kafka, topics.records, real_requests(500, "before"))
    all_outcomes(kafka, topics, 500)
    assert first.stop() == 0
    # storage gone: the restarted worker must serve from its own data directory
    open_store(gcs, v1.storage_uri).delete_dir(v1.storage_uri)

    again = workers.make("w1").start()  # the same data dir
    again.wait_ready("v1")
    send(kafka, topics.records, real_requests(500, "after"))
    all_outcomes(kafka, topics, 1000)
    assert again.logged("model.cache_hit"), again.log()
    counts = read_outputs(kafka, topics).outcome_counts()
    assert len(counts) == 1000 and set(counts.values()) == {1}


def test_two_workers_split_the_partitions_and_both_switch_versions(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings,
) -> None:
    publish(quick_model, "trips", publisher, version="v1")
    a, b = workers.make("a").start(), workers.make("b").start()
    for worker in (a, b):
        worker.wait_ready("v1")
    wait_for(lambda: len(a.readiness().get("partitions", [])) == 2 * topics.partitions // 2
             and len(b.readiness().get("partitions", [])) == 2 * topics.partitions // 2,
             60, "an even split")
    assert not set(a.readiness()["partitions"]) & set(b.readiness()["partitions"])

    publish(quick_model, "trips", publisher, version="v2")
    for worker in (a, b):
        worker.wait_ready("v2", timeout_s=60)
    send(kafka, topics.records, real_requests(1000))
    all_outcomes(kafka, topics, 1000)
    out = read_outputs(kafka, topics)
    assert {p.model_version for p in out.predictions} == {"v2"}
    assert a.metric("edml_predictions_out_total") > 0
    assert b.metric("edml_predictions_out_total") > 0


def test_a_worker_killed_mid_stream_loses_nothing_when_it_restarts(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings,
) -> None:
    first = serving(quick_model, publisher, workers, "v1")
    requests = real_requests(6000)
    sending = Sender(kafka, topics.records, requests, 2000)
    sending.start()
    wait_for(lambda: first.metric("edml_predictions_out_total") > 1000, 30, "some progress")
    first.stop(signal.SIGKILL)  # no commit, no goodbye
    sending.join()

    again = workers.make("w1").start()  # the same data dir: table and cache
    again.wait_ready("v1")
    all_outcomes(kafka, topics, len(requests))
    counts = read_outputs(kafka, topics).outcome_counts()
    assert set(counts) == {r.trip_id for r in requests}  # nothing lost
    duplicates = sum(counts.values()) - len(counts)
    # at-least-once: what was processed after the last commit is processed again, at most
    # the batches in flight when the process died
    print(f"duplicates after SIGKILL: {duplicates} of {len(requests)}")
    assert duplicates <= 3000


def _model_that_breaks_after_warm_up(tmp_path: Path) -> Path:
    """A model that answers its first call in each process (the publisher's smoke test, the
    worker's warm-up) and fails on every call after it: unfit, whatever the records."""
    import tensorflow as tf

    specs = [tf.TensorSpec([None], tf.int64, name=name) for name in (
        "pickup_datetime", "pickup_zone_id", "dropoff_zone_id", "passenger_count")]
    module = tf.Module()
    module.calls = tf.Variable(0, dtype=tf.int64)

    @tf.function(input_signature=specs)
    def serve(pickup_datetime: tf.Tensor, pickup_zone_id: tf.Tensor,
              dropoff_zone_id: tf.Tensor, passenger_count: tf.Tensor) -> dict[str, tf.Tensor]:
        calls = module.calls.assign_add(1)
        tf.debugging.assert_less(calls, tf.constant(2, tf.int64), message="broken after warm-up")
        return {"duration_seconds": tf.cast(pickup_zone_id, tf.float32) * 0.0 + 600.0}

    path = tmp_path / "breaks"
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return path


def test_a_version_that_fails_on_everything_is_retired_and_the_one_before_serves_again(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path,
) -> None:
    worker = serving(quick_model, publisher, workers, "v1")
    publish(_model_that_breaks_after_warm_up(tmp_path), "trips", publisher, version="v2")
    worker.wait_ready("v2")
    requests = real_requests(300)
    send(kafka, topics.records, requests)
    all_outcomes(kafka, topics, len(requests))

    outputs = read_outputs(kafka, topics)
    assert not outputs.dead_letters  # a broken model is no record's fault
    assert {p.model_version for p in outputs.predictions} == {"v1"}
    assert set(outputs.outcome_counts().values()) == {1}
    retired = [e for e in read_model_events(kafka, topics) if e.kind == "retired"]
    assert [(e.model_version, e.error_kind) for e in retired] == [("v2", "UnfitModel")]
    assert worker.readiness()["model_version"] == "v1"

    assert worker.stop() == 0
    restarted = workers.make("w1").start()  # the same data directory
    restarted.wait_ready("v1")  # v2 stays out after a restart
    wait_for(lambda: any(e.kind == "load_failed" and e.model_version == "v2"
                         for e in read_model_events(kafka, topics)), 30, "the alert again")


def test_with_no_version_to_fall_back_on_records_wait_in_kafka_for_the_next_one(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path,
) -> None:
    serving(_model_that_breaks_after_warm_up(tmp_path), publisher, workers, "v1")
    requests = real_requests(100)
    send(kafka, topics.records, requests)
    wait_for(lambda: any(e.kind == "retired" for e in read_model_events(kafka, topics)), 60,
             "v1 to be retired")
    time.sleep(2)  # the records had time to go wrong, and must not have
    assert not read_outputs(kafka, topics).outcome_counts()

    publish(quick_model, "trips", publisher, version="v2")
    all_outcomes(kafka, topics, len(requests))
    outputs = read_outputs(kafka, topics)
    assert not outputs.dead_letters
    assert {p.model_version for p in outputs.predictions} == {"v2"}
    assert set(outputs.outcome_counts().values()) == {1}


def test_a_record_at_the_brokers_size_limit_becomes_a_dead_letter_and_the_partition_moves_on(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings,
) -> None:
    worker = serving(quick_model, publisher, workers, "v1")
    requests = real_requests(200)
    send(kafka, topics.records, requests[:100])
    prod = producer(kafka)  # a default producer: it accepts values up to ~1,000,000 bytes
    for i in range(2):
        prod.produce(topics.records, key=f"huge-{i}".encode(), value=bytes(999_900),
                     partition=i % topics.partitions)
    flush_or_raise(prod, 30)
    send(kafka, topics.records, requests[100:])
    all_outcomes(kafka, topics, 202)

    outputs = read_outputs(kafka, topics)
    assert len(outputs.predictions) == 200
    huge = [d for d in outputs.dead_letters if d.key and d.key.startswith(b"huge-")]
    assert len(huge) == 2 and {d.value_size for d in huge} == {999_900}
    assert worker.process is not None and worker.process.poll() is None  # no crash
