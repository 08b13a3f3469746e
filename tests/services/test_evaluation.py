"""Live evaluation: a prediction and its actual duration meet, in either order."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
from rocksdict import Rdict

from edml.codec import Codec
from edml.event_time import day_number
from services.batch import KEYED, KeyedPredictions, Predictions
from services.drift import DriftMonitor
from services.evaluation import Change, Changes, LiveEvaluator
from services.evidence import EvidenceWindow
from services.metrics import Metrics
from tests.services.fakes import FakeMessage

CODEC = Codec()


def _made(version: str, *rows: tuple[str, float, int]) -> Predictions:
    """Predictions of one version: (trip id, seconds, partition) each."""
    return Predictions.of((version,), [(trip, [seconds], partition)
                                       for trip, seconds, partition in rows])


def _sum(metrics: Metrics, version: str) -> tuple[float, float]:
    count = metrics.registry.get_sample_value("edml_live_abs_error_minutes_count",
                                              {"model_version": version})
    total = metrics.registry.get_sample_value("edml_live_abs_error_minutes_sum",
                                              {"model_version": version})
    return count or 0.0, total or 0.0


def test_prediction_then_actual_and_actual_then_prediction_both_join(tmp_path: Path) -> None:
    metrics = Metrics()
    evaluator = LiveEvaluator(tmp_path / "joins.rocksdb", metrics, horizon_s=3600)
    evaluator.predicted(_made("v1", ("a", 600.0, 0)))
    evaluator.actual("a", 720.0, 0)
    evaluator.actual("b", 300.0, 0)
    evaluator.predicted(_made("v2", ("b", 420.0, 0)))
    assert _sum(metrics, "v1") == (1.0, 2.0)  # minutes
    assert _sum(metrics, "v2") == (1.0, 2.0)
    assert evaluator.joined == 2
    evaluator.close()


def test_a_join_is_counted_once(tmp_path: Path) -> None:
    metrics = Metrics()
    evaluator = LiveEvaluator(tmp_path / "joins.rocksdb", metrics, horizon_s=3600)
    evaluator.predicted(_made("v1", ("a", 600.0, 0)))
    evaluator.actual("a", 720.0, 0)
    evaluator.actual("a", 720.0, 0)  # a duplicate actual waits for a prediction that is gone
    assert _sum(metrics, "v1") == (1.0, 2.0)
    evaluator.close()


def test_a_waiting_half_moves_with_its_partition_through_the_changelog(tmp_path: Path) -> None:
    before, after = Metrics(), Metrics()
    first = LiveEvaluator(tmp_path / "first.rocksdb", before, horizon_s=3600)
    changes = first.predicted(_made("v1", ("a", 600.0, 3), ("b", 300.0, 1)))
    changes.append(first.actual("c", 200.0, 3))
    assert [(c.partition, c.key) for c in changes] == [(3, b"p:a"), (1, b"p:b"), (3, b"a:c")]
    first.close()

    # partition 3 moves to another worker: it replays partition 3 of the changelog
    second = LiveEvaluator(tmp_path / "second.rocksdb", after, horizon_s=3600)
    assert second.restore((c.key, c.value) for c in changes if c.partition == 3) == 2
    second.actual("a", 720.0, 3)
    deleted = second.predicted(_made("v2", ("c", 260.0, 3)))
    assert _sum(after, "v1") == (1.0, 2.0) and _sum(after, "v2") == (1.0, 1.0)
    assert [(c.key, c.value) for c in deleted] == [(b"a:c", None)]  # joined: gone from both
    second.close()


def test_a_trip_both_versions_predicted_is_a_pair_in_either_order(tmp_path: Path) -> None:
    metrics, window = Metrics(), EvidenceWindow("trips", "w1")
    evaluator = LiveEvaluator(tmp_path / "joins.rocksdb", metrics, 3600, window)
    evaluator.predicted(Predictions.of(("v1", "v2"), [("a", [600.0, 690.0], 0)]))
    evaluator.actual("a", 720.0, 0)  # v1 off by 120 s, v2 by 30 s
    evaluator.actual("b", 300.0, 1)
    evaluator.predicted(Predictions.of(("v1", "v2"), [("b", [300.0, 360.0], 1)]))  # 0, 60 s
    (evidence,) = window.drain(datetime.now(UTC))
    assert (evidence.champion_version, evidence.candidate_version) == ("v1", "v2")
    # the differences: -90 s (a) and +60 s (b)
    assert (evidence.paired, evidence.sum_diff, evidence.sum_sq_diff) == (2, -30.0, 11700.0)
    assert (evidence.sum_abs_error_champion, evidence.sum_abs_error_candidate) == (120.0, 90.0)
    labels = {"champion_version": "v1", "candidate_version": "v2"}
    assert metrics.registry.get_sample_value("edml_paired_diff_seconds_sum", labels) == -30.0
    assert _sum(metrics, "v2") == (2.0, 1.5)  # each version's own error too, in minutes
    assert window.drain(datetime.now(UTC)) == []  # a drained window starts empty
    evaluator.close()


def test_a_keys_champion_and_candidate_are_paired_under_their_key(tmp_path: Path) -> None:
    metrics, window = Metrics(), EvidenceWindow("trips", "w1")
    evaluator = LiveEvaluator(tmp_path / "joins.rocksdb", metrics, 3600, window)
    fleet = Predictions.of(("v1",), [("a", [500.0], 0), ("b", [500.0], 0), ("c", [500.0], 1)])
    evaluator.predicted(dataclasses.replace(fleet, keyed=(
        KeyedPredictions("132", np.array([0, 2]), ("k1", "k2"),
                         np.array([[600.0, 690.0], [300.0, 360.0]])),
        KeyedPredictions("7", np.array([1]), ("j1",), np.array([[640.0]])))))
    evaluator.actual("a", 720.0, 0)  # k1 off by 120 s, k2 by 30 s
    evaluator.actual("b", 700.0, 0)  # key 7: no rollout, no pair
    evaluator.actual("c", 300.0, 1)  # k1 exact, k2 off by 60 s
    (evidence,) = window.drain(datetime.now(UTC))
    assert (evidence.model_key, evidence.champion_version, evidence.candidate_version) == \
        ("132", "k1", "k2")
    assert (evidence.paired, evidence.sum_diff, evidence.sum_sq_diff) == (2, -30.0, 11700.0)
    assert (evidence.sum_abs_error_champion, evidence.sum_abs_error_candidate) == (120.0, 90.0)
    # every keyed champion's error in the family's one keyed series: 2 + 1 + 0 minutes
    assert _sum(metrics, KEYED) == (3.0, 3.0)
    evaluator.close()


def test_a_joined_trip_is_counted_for_drift_under_its_pickup_day_in_either_order(
        tmp_path: Path) -> None:
    drift = DriftMonitor("trips", "worker-0")
    evaluator = LiveEvaluator(tmp_path / "joins.rocksdb", Metrics(), horizon_s=3600,
                              drift=drift)
    day = day_number(date(2020, 3, 18))
    evaluator.predicted(_made("v1", ("a", 600.0, 0)))
    evaluator.actual("a", 720.0, 0, pickup_day=day)
    evaluator.actual("b", 300.0, 0, pickup_day=day)
    evaluator.predicted(_made("v1", ("b", 420.0, 0)))
    evaluator.actual("c", 100.0, 0)  # no day known (a store from before the monitors)
    evaluator.predicted(_made("v1", ("c", 160.0, 0)))
    (window,) = drift.drain()
    assert (window.model_version, window.day, window.requests) == ("v1", date(2020, 3, 18), 0)
    assert window.joined == 2
    assert window.sum_error == -120.0 + 120.0 and window.sum_abs_error == 240.0
    assert evaluator.joined == 3
    evaluator.close()


def test_a_batchs_changes_travel_as_one_message_a_partition_and_replay_in_order(
        tmp_path: Path) -> None:
    first = LiveEvaluator(tmp_path / "first.rocksdb", Metrics(), horizon_s=3600)
    changes = first.predicted(Predictions.of(("v1",), [(f"t{i}", [60.0 + i], i % 2)
                                                   for i in range(2500)]))
    changes.append(first.actual("t0", 90.0, 0))  # joins t0: its prediction is deleted
    messages = first.changelog(changes)
    # partition 0: 1,250 predictions and the delete; partition 1: 1,250 predictions
    assert sorted((p, len(CODEC.decode_record(v, "edml.JoinChanges")["changes"]))
                  for p, v in messages) == [(0, 251), (0, 1000), (1, 250), (1, 1000)]
    first.close()

    second = LiveEvaluator(tmp_path / "second.rocksdb", Metrics(), horizon_s=3600)
    partition_0 = [FakeMessage(v, _partition=0, _offset=i)
                   for i, (p, v) in enumerate(messages) if p == 0]
    assert second.restore(second.writes(partition_0)) == 1251
    (change,) = second.predicted(_made("v2", ("t0", 1.0, 0)))
    assert change.key == b"p:t0"  # t0 is done: its prediction waits anew
    assert second.actual("t2", 100.0, 0).value is None  # t2's prediction came along
    second.close()


def test_a_changelog_message_of_an_older_worker_or_unreadable_does_not_stop_a_restore(
        tmp_path: Path) -> None:
    evaluator = LiveEvaluator(tmp_path / "joins.rocksdb", Metrics(), horizon_s=3600)
    older = FakeMessage(b"v1\t600.0", _key=b"p:a")  # one write as key and value
    unreadable = FakeMessage(b"\xc3\x01not a changelog message", _offset=1)
    changes = Changes()
    changes.append(Change(0, b"p:b", b"v1\t300.0"))
    current = FakeMessage(evaluator.changelog(changes)[0][1], _offset=2)
    assert list(evaluator.writes([older, unreadable, current])) == [
        (b"p:a", b"v1\t600.0"), (b"p:b", b"v1\t300.0")]
    evaluator.close()


def test_a_version_that_made_no_prediction_for_a_trip_is_not_joined_for_it(
        tmp_path: Path) -> None:
    metrics, window = Metrics(), EvidenceWindow("trips", "w1")
    evaluator = LiveEvaluator(tmp_path / "joins.rocksdb", metrics, 3600, window)
    nan = float("nan")  # the candidate failed on this trip: the champion answered alone
    evaluator.predicted(Predictions.of(("v1", "v2 ünïcode"), [("a", [600.0, nan], 0),
                                                               ("b", [nan, 390.0], 0)]))
    evaluator.actual("a", 720.0, 0)
    evaluator.actual("b", 300.0, 0)
    assert _sum(metrics, "v1") == (1.0, 2.0) and _sum(metrics, "v2 ünïcode") == (1.0, 1.5)
    assert window.drain(datetime.now(UTC)) == []  # no trip has both: no pair
    evaluator.close()


def test_a_prediction_stored_as_text_by_an_earlier_release_still_joins(tmp_path: Path) -> None:
    metrics = Metrics()
    evaluator = LiveEvaluator(tmp_path / "joins.rocksdb", metrics, horizon_s=3600)
    assert evaluator.restore([(b"p:a", b"v1\t600.0\tv2\t660.0")]) == 1
    evaluator.actual("a", 720.0, 0)
    assert _sum(metrics, "v1") == (1.0, 2.0) and _sum(metrics, "v2") == (1.0, 1.0)
    evaluator.close()


def test_a_reopened_store_still_holds_both_sides_waiting(tmp_path: Path) -> None:
    metrics = Metrics()
    first = LiveEvaluator(tmp_path / "joins.rocksdb", metrics, horizon_s=3600)
    first.predicted(_made("v1", ("a", 600.0, 0)))
    first.actual("b", 300.0, 0)
    first.close()
    again = LiveEvaluator(tmp_path / "joins.rocksdb", metrics, horizon_s=3600)
    again.actual("a", 720.0, 0)
    again.predicted(_made("v1", ("b", 420.0, 0)))
    assert _sum(metrics, "v1") == (2.0, 4.0) and again.joined == 2
    again.close()


def test_a_store_of_an_earlier_release_is_dropped_for_the_changelog_to_rebuild(
        tmp_path: Path) -> None:
    path = tmp_path / "joins.rocksdb"
    old = Rdict(str(path))  # one key space, rocksdict's own value encoding
    old[b"p:a"] = b"v1\t600.0"
    old.close()
    metrics = Metrics()
    evaluator = LiveEvaluator(path, metrics, horizon_s=3600)
    assert evaluator.actual("a", 720.0, 0).value is not None  # nothing of the old store
    assert evaluator.restore([(b"p:c", b"v1\t600.0")]) == 1  # the replay fills the new one
    evaluator.actual("c", 720.0, 0)
    assert _sum(metrics, "v1") == (1.0, 2.0)
    evaluator.close()


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_more_actuals_waiting_than_are_kept_in_memory_still_all_join(tmp_path: Path) -> None:
    metrics, clock = Metrics(), _Clock()
    evaluator = LiveEvaluator(tmp_path / "joins.rocksdb", metrics, horizon_s=3600,
                              waiting_tracked=2, clock=clock)
    for trip in "abc":  # the third is past what memory keeps: every prediction looks
        evaluator.actual(trip, 720.0, 0)
    evaluator.predicted(_made("v1", ("a", 600.0, 0), ("b", 600.0, 0), ("c", 600.0, 0)))
    assert _sum(metrics, "v1") == (3.0, 6.0)
    clock.now += 3600  # every actual no longer kept has expired: kept in memory again
    evaluator.actual("d", 720.0, 0)
    evaluator.predicted(_made("v1", ("d", 600.0, 0)))
    assert _sum(metrics, "v1") == (4.0, 8.0)
    evaluator.close()


def test_an_actual_older_than_the_horizon_is_not_joined(tmp_path: Path) -> None:
    metrics, clock = Metrics(), _Clock()
    evaluator = LiveEvaluator(tmp_path / "joins.rocksdb", metrics, horizon_s=3600, clock=clock)
    evaluator.actual("a", 720.0, 0)
    evaluator.actual("b", 720.0, 0)
    clock.now += 1800
    evaluator.predicted(_made("v1", ("b", 600.0, 0)))
    clock.now += 1800  # a's actual is one horizon old
    (change,) = evaluator.predicted(_made("v1", ("a", 600.0, 0)))
    assert change.key == b"p:a" and _sum(metrics, "v1") == (1.0, 2.0)  # b joined; a waits
    evaluator.close()
