"""A family routed by key on the real broker: each trip reaches its key's model, the fleet
model answers the rest and stands in for a key whose model is not loaded or cannot load;
every prediction says which, and no record is lost while keyed models load, swap and are
evicted."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from controller.controller import running
from controller.settings import ControllerSettings
from edml.artifacts import artifact_uri
from edml.codec import Codec
from edml.contracts import DriftWindow, RolloutPolicy, ShadowPredictions, TripPrediction
from edml.kafka import read_partition
from edml.model_log import latest_keyed, read_model_log
from edml.settings import KafkaSettings, StorageSettings, TopicSettings
from model_publisher.models import withdraw
from model_publisher.publish import announce, publish
from model_publisher.settings import PublisherSettings
from tests.services.workers import (
    Sender,
    Worker,
    Workers,
    all_outcomes,
    read_model_events,
    read_outputs,
    real_requests,
    real_trips,
    send,
    wait_for,
)
from trainer.variants import adding_seconds

CODEC = Codec()
# the busiest pickup zones of the first real requests (Upper East Side and Midtown)
A, B, C, D = 236, 237, 162, 161


@pytest.fixture(scope="module")
def longer_model(quick_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``quick_model`` answering 10 minutes more: what the keyed models answer."""
    return adding_seconds(quick_model, tmp_path_factory.mktemp("keyed") / "model", 600.0)


def _routed_fleet(quick_model: Path, longer_model: Path, publisher: PublisherSettings,
                  keys: dict[int, str]) -> None:
    """The fleet model v1 routed by pickup zone, and a keyed model per zone of ``keys``."""
    publish(quick_model, "trips", publisher, version="v1", routed_by="pickup_zone_id")
    for zone, version in keys.items():
        publish(longer_model, "trips", publisher, version=version, key=str(zone))


def _by_trip(kafka: KafkaSettings, topics: TopicSettings) -> dict[str, TripPrediction]:
    return {p.trip_id: p for p in read_outputs(kafka, topics).predictions}


def _drift_counts(kafka: KafkaSettings, topics: TopicSettings, key: str, version: str
                  ) -> tuple[int, int]:
    """Requests and joined trips of ``key``'s ``version`` in the drift windows so far."""
    windows = [w for m in read_partition(kafka, topics.evaluations)
               if (w := CODEC.decode_if(m.value() or b"", DriftWindow)) is not None
               and (w.model_key, w.model_version) == (key, version)]
    return sum(w.requests for w in windows), sum(w.joined for w in windows)


def _loaded(worker: Worker, count: int) -> None:
    wait_for(lambda: _loads(worker) >= count, 60, f"{count} keyed model loads")


def _loads(worker: Worker) -> float:
    return worker.metric('edml_keyed_model_loads_total{outcome="loaded"}')


def _refusals(worker: Worker) -> float:
    return worker.metric('edml_keyed_model_loads_total{outcome="failed"}')


def _load_attempts(worker: Worker) -> float:
    return sum(worker.metric(f'edml_keyed_model_loads_total{{outcome="{outcome}"}}')
               for outcome in ("loaded", "failed", "not_admitted"))


def test_trips_reach_their_keys_models_the_rest_fall_back_and_a_new_key_version_takes_over(
    quick_model: Path, longer_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings,
) -> None:
    _routed_fleet(quick_model, longer_model, publisher, {A: "a1", B: "b1", C: "c1"})
    # a routed family's batches take up to EDML_SCORING_KEYED_BATCH_SIZE records
    worker = workers.make("w1", extra_env={"EDML_SCORING_BATCH_SIZE": "10",
                                           "EDML_SCORING_KEYED_BATCH_SIZE": "1000"}).start()
    worker.wait_ready("v1")
    warm_up = [r for r in real_requests(600, "warm") if r.pickup_zone_id in (A, B, C)][:30]
    send(kafka, topics.records, warm_up)  # their keys' models load meanwhile
    _loaded(worker, 3)
    trips = [r for r in real_requests(600) if r.pickup_zone_id in (A, B, C, D)]
    send(kafka, topics.records, trips)
    all_outcomes(kafka, topics, len(warm_up) + len(trips))

    got = _by_trip(kafka, topics)
    expected = {A: ("a1", str(A), False), B: ("b1", str(B), False),
                C: ("c1", str(C), False), D: ("v1", None, True)}
    for trip in trips:
        p = got[trip.trip_id]
        assert (p.model_version, p.model_key, p.fallback) == expected[trip.pickup_zone_id]
    assert all(got[t.trip_id].fallback or got[t.trip_id].model_key for t in warm_up)
    assert worker.metric('edml_batch_size_records_bucket{le="10.0"}') < worker.metric(
        "edml_batch_size_records_count")  # some batch held more than 10

    # a2 published for A while trips keep coming: A's trips go to a2, no other key moves
    steady = [r for r in real_requests(4000, "steady") if r.pickup_zone_id in (A, B, D)]
    until = threading.Event()
    sender = Sender(kafka, topics.records, steady, rate=150, until=until)
    sender.start()
    publish(longer_model, "trips", publisher, version="a2", key=str(A))
    _loaded(worker, 4)
    until.set()
    sender.join()
    after = [r for r in real_requests(600, "after") if r.pickup_zone_id in (A, B, D)]
    send(kafka, topics.records, after)
    all_outcomes(kafka, topics, len(warm_up) + len(trips) + len(sender.sent) + len(after))
    got = _by_trip(kafka, topics)
    for trip in after:
        assert got[trip.trip_id].model_version == {A: "a2", B: "b1", D: "v1"}[
            trip.pickup_zone_id]
    during = {(got[t.trip_id].model_version, t.pickup_zone_id) for t in sender.sent}
    assert during <= {("a1", A), ("a2", A), ("b1", B), ("v1", D), ("v1", A), ("v1", B)}

    # A's model withdrawn: the fleet model answers A's trips again, B keeps its own
    withdraw(publisher, "trips", str(A))
    assert str(A) not in latest_keyed(read_model_log(kafka, topics.models, CODEC), "trips")
    sent = len(warm_up) + len(trips) + len(sender.sent) + len(after)
    wait_for(lambda: worker.metric("edml_keyed_models_loaded") == 2, 30, "A's model out")
    last = [r for r in real_requests(600, "withdrawn") if r.pickup_zone_id in (A, B)]
    send(kafka, topics.records, last)
    all_outcomes(kafka, topics, sent + len(last))
    got = _by_trip(kafka, topics)
    assert {(got[r.trip_id].model_version, got[r.trip_id].fallback, r.pickup_zone_id)
            for r in last} == {("v1", True, A), ("b1", False, B)}
    assert read_outputs(kafka, topics).dead_letters == []


def test_past_a_small_budget_keyed_models_are_evicted_and_reloaded_and_one_that_cannot_load_alerts(
    quick_model: Path, longer_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings, gcs: StorageSettings,
) -> None:
    _routed_fleet(quick_model, longer_model, publisher, {A: "a1", B: "b1"})
    a1 = next(e.metadata for e in latest_keyed(read_model_log(
        kafka, topics.models, CODEC), "trips").values() if e.metadata.key == str(A))
    # C's model is announced, never uploaded: it cannot load
    announce(publisher, dataclasses.replace(a1, key=str(C), version="c1", storage_uri=(
        artifact_uri(gcs.uri, "trips", "c1", key=str(C)))))
    # one keyed model fits (~18.7 MB estimated each): A and B take turns in memory, each
    # let in once its key is asked for more often than the one it evicts
    worker = workers.make("w1", extra_env={"EDML_SCORING_MODEL_MEMORY_MB": "20"}).start()
    worker.wait_ready("v1")
    sent, answered_keyed = [], []
    loads = 0
    for round_ in range(2):
        for zone in (A, B, C):
            trips = iter([r for r in real_requests(4000, f"r{round_}")
                          if r.pickup_zone_id == zone])
            while True:  # its trips ask for the key's model; the fleet model answers them
                asking = [next(trips) for _ in range(8)]
                tried = _load_attempts(worker)
                send(kafka, topics.records, asking)
                sent += asking
                if zone == C and round_:
                    break  # refused in the first round: not tried again
                wait_for(lambda tried=tried: _load_attempts(worker) > tried, 60,
                         f"zone {zone}'s model loaded, refused or not admitted")
                if (_refusals(worker) if zone == C else _loads(worker) > loads):
                    break  # A's or B's model in; C's tried and refused (no artifact)
            loads += zone != C
            answering = [next(trips) for _ in range(8)]
            send(kafka, topics.records, answering)  # answered by its model, if it loaded
            sent += answering
            all_outcomes(kafka, topics, len(sent))
            answered_keyed += answering if zone != C else []
    counts = read_outputs(kafka, topics).outcome_counts()
    assert set(counts) == {t.trip_id for t in sent} and set(counts.values()) == {1}
    assert worker.metric("edml_keyed_model_evictions_total") >= 3  # A, B, A out in turn
    assert worker.metric("edml_keyed_models_bytes") <= 20 << 20
    got = _by_trip(kafka, topics)
    assert {(got[t.trip_id].model_key, got[t.trip_id].model_version)
            for t in answered_keyed} == {(str(A), "a1"), (str(B), "b1")}
    c_trips = [got[t.trip_id] for t in sent if t.pickup_zone_id == C]
    assert {(p.model_version, p.fallback) for p in c_trips} == {("v1", True)}
    assert worker.metric("edml_keyed_models_refused") == 1
    refused = [e for e in read_model_events(kafka, topics) if e.kind == "load_failed"]
    assert {(e.model_key, e.model_version) for e in refused} == {(str(C), "c1")}


def test_a_keys_candidate_in_shadow_is_judged_on_its_keys_trips_and_promoted_by_the_controller(
    quick_model: Path, longer_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings,
) -> None:
    policy = RolloutPolicy(min_paired=100)
    _routed_fleet(quick_model, longer_model, publisher, {B: "b1"})  # b1: 10 minutes long
    publish(quick_model, "trips", publisher, version="b2", key=str(B), mode="shadow",
            policy=policy)
    worker = workers.make("w1").start()
    worker.wait_ready("v1")
    warm_up = [r for r in real_requests(600, "warm") if r.pickup_zone_id == B]
    send(kafka, topics.records, warm_up)
    _loaded(worker, 2)  # the key's model, then its candidate

    trips = [(r, done) for r, done in real_trips(3000, "judged") if r.pickup_zone_id == B]
    send(kafka, topics.records, [request for request, _ in trips])
    all_outcomes(kafka, topics, len(warm_up) + len(trips))
    send(kafka, topics.actuals, [done for _, done in trips])
    with running(ControllerSettings(kafka=kafka, topics=topics,
                                    storage=publisher.storage)) as controller:
        wait_for(lambda: controller.decisions, 60, "the controller's decision")
    (decision,) = controller.decisions
    assert (decision.kind, decision.model_key, decision.model_version) == \
        ("promoted", str(B), "b2")
    # its evidence, recomputed from what consumers saw: b1 on the main topic, b2 on the
    # shadow topic, each trip's actual duration
    main = {p.trip_id: p for p in read_outputs(kafka, topics).predictions}
    shadow = {p.trip_id: p for partition in range(topics.partitions)
              for m in read_partition(kafka, topics.shadow_predictions, partition)
              for p in CODEC.decode(m.value() or b"", ShadowPredictions).predictions()}
    diffs = [abs(shadow[r.trip_id].predicted_duration_seconds - done.duration_seconds)
             - abs(main[r.trip_id].predicted_duration_seconds - done.duration_seconds)
             for r, done in trips]
    assert {(p.model_version, p.model_key) for p in shadow.values()} == {("b2", str(B))}
    assert {(main[r.trip_id].model_version, main[r.trip_id].model_key) for r, _ in trips} \
        == {("b1", str(B))}
    d = decision.decision
    assert d is not None and d.rule == "better" and d.paired == len(diffs)
    assert d.mean_diff_seconds == pytest.approx(sum(diffs) / len(diffs))
    # the key's model's traffic went to the drift monitors as a model of its own: every
    # trip it answered, and every one joined with its actual
    wait_for(lambda: _drift_counts(kafka, topics, str(B), "b1")[1] == len(trips), 30,
             "the key's drift windows")
    answered = sum(1 for p in main.values() if (p.model_version, p.model_key) == ("b1", str(B)))
    assert _drift_counts(kafka, topics, str(B), "b1") == (answered, len(trips))

    after = [r for r in real_requests(600, "after") if r.pickup_zone_id in (B, D)]
    send(kafka, topics.records, after)  # b2 answers B's trips now; the fleet model D's
    all_outcomes(kafka, topics, len(warm_up) + len(trips) + len(after))
    got = _by_trip(kafka, topics)
    assert {(got[r.trip_id].model_version, r.pickup_zone_id) for r in after} == \
        {("b2", B), ("v1", D)}
    assert read_outputs(kafka, topics).dead_letters == []
