"""The backtest gate of ``edml publish``: the candidate and the champion on the same recent
trips; a worse candidate refused (or only shadowed), a better one published with its
figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from batch_scoring.backtest import recent_trips
from edml.errors import ModelError
from edml.routing import rows_of_key
from edml.settings import KafkaSettings, TopicSettings
from edml.trip_data import default_trip_data
from model_publisher.publish import BacktestGate, current_state, publish
from model_publisher.settings import PublisherSettings
from tests.services.workers import read_model_events

pytestmark = [pytest.mark.kafka, pytest.mark.gcs, pytest.mark.tf, pytest.mark.timeout(300)]


@pytest.fixture
def last_week(tmp_path: Path) -> BacktestGate:
    trips = recent_trips([str(default_trip_data().month("2019-10"))], 7, tmp_path / "trips")
    return BacktestGate(trips, 7, cache_dir=tmp_path / "cache")


def test_the_last_days_of_history_are_what_is_backtested(last_week: BacktestGate) -> None:
    pickups = last_week.trips["pickup_datetime"]
    assert str(pickups.min().date()) == "2019-10-25" and str(pickups.max().date()) == \
        "2019-10-31"
    assert last_week.trips["duration_seconds"].notna().all() and len(last_week.trips) > 1000


def test_a_candidate_worse_on_the_backtest_is_refused_and_nothing_is_announced(
    quick_model: Path, slower_model: Path, publisher: PublisherSettings,
    last_week: BacktestGate,
) -> None:
    publish(quick_model, "trips", publisher, version="v1")
    with pytest.raises(ModelError, match=r"v2 is worse than the champion v1 on the backtest: "
                       r"[\d,]+ trips of the last 7 days: candidate minus champion \+[\d.]+ s"):
        publish(slower_model, "trips", publisher, version="v2", gate=last_week)
    state = current_state(publisher, "trips")
    assert state is not None and state.version == "v1" and state.rollout is None


def test_a_worse_candidate_can_go_to_shadow_instead(
    quick_model: Path, slower_model: Path, publisher: PublisherSettings,
    last_week: BacktestGate,
) -> None:
    publish(quick_model, "trips", publisher, version="v1")
    gate = BacktestGate(last_week.trips, 7, "shadow", last_week.cache_dir)
    done = publish(slower_model, "trips", publisher, version="v2", gate=gate)
    assert done.metadata.version == "v1" and done.metadata.rollout is not None
    assert done.metadata.rollout.mode == "shadow" and done.metadata.rollout.weight == 0
    # ten minutes more on every trip: worse by minutes where the model was too long
    # already, better where it was too short; worse by far on the whole
    assert done.metadata.rollout.candidate.metrics["backtest_ci_low_seconds"] > 60


def test_a_better_candidate_passes_with_its_figures_in_its_metrics(
    quick_model: Path, slower_model: Path, publisher: PublisherSettings,
    kafka: KafkaSettings, topics: TopicSettings, last_week: BacktestGate,
) -> None:
    publish(slower_model, "trips", publisher, version="v1")
    done = publish(quick_model, "trips", publisher, version="v2", gate=last_week)
    m = done.metadata.metrics
    assert done.metadata.version == "v2" and done.metadata.rollout is None
    assert m["backtest_trips"] == len(last_week.trips) and m["backtest_days"] == 7
    assert m["backtest_ci_high_seconds"] < -60
    assert m["backtest_champion_mae_minutes"] > m["backtest_mae_minutes"]
    assert not read_model_events(kafka, topics)  # no worker was involved


def test_the_publish_command_refuses_or_shadows_a_worse_version(
    quick_model: Path, slower_model: Path, publisher: PublisherSettings, tmp_path: Path,
) -> None:
    publish(quick_model, "trips", publisher, version="v1")
    env = {"PATH": "/usr/bin:/bin", "EDML_KAFKA_BOOTSTRAP": publisher.kafka.bootstrap,
           "EDML_TOPIC_MODELS": publisher.topics.models,
           "EDML_STORAGE_URI": publisher.storage.uri,
           "EDML_STORAGE_ENDPOINT": publisher.storage.endpoint or ""}
    october = str(default_trip_data().month("2019-10"))

    def edml_publish(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edml.cli", "publish", str(slower_model),
                               "--name", "trips", "--version", "v2", "--backtest-days", "7",
                               "--backtest-data", october, *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=180)

    refused = edml_publish()
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "ModelError:" in refused.stderr and "worse than the champion v1" in refused.stderr
    shadowed = edml_publish("--if-worse", "shadow")
    assert shadowed.returncode == 0, shadowed.stderr
    assert "published trips v2 as shadow beside v1" in shadowed.stdout
    assert "backtest_ci_low_seconds" in shadowed.stdout


def _manhattan_trips(gate: BacktestGate) -> int:
    return int(rows_of_key("pickup_borough", gate.trips["pickup_zone_id"].to_numpy(),
                           "manhattan").sum())


def test_a_keys_first_version_is_backtested_on_its_keys_trips_against_the_fleet_model(
    quick_model: Path, slower_model: Path, publisher: PublisherSettings,
    last_week: BacktestGate,
) -> None:
    publish(quick_model, "trips", publisher, version="v1", routed_by="pickup_borough")
    manhattan = _manhattan_trips(last_week)
    assert 0 < manhattan < len(last_week.trips)
    with pytest.raises(ModelError, match=(
            rf"trips\[manhattan\] m1 is worse than the fleet model v1, which answers its trips "
            rf"now on the backtest: {manhattan:,} trips of the last 7 days")):
        publish(slower_model, "trips", publisher, version="m1", key="manhattan",
                gate=last_week)
    assert current_state(publisher, "trips", "manhattan") is None
    # nothing to shadow beside: a worse first version is refused even with "shadow"
    with pytest.raises(ModelError, match="worse than the fleet model v1"):
        publish(slower_model, "trips", publisher, version="m1", key="manhattan",
                gate=BacktestGate(last_week.trips, 7, "shadow", last_week.cache_dir))


def test_a_keys_next_version_is_backtested_against_the_keys_champion_on_its_trips(
    quick_model: Path, slower_model: Path, publisher: PublisherSettings,
    last_week: BacktestGate,
) -> None:
    publish(slower_model, "trips", publisher, version="v1", routed_by="pickup_borough")
    first = publish(quick_model, "trips", publisher, version="m1", key="manhattan",
                    gate=last_week).metadata
    assert first.version == "m1" and first.metrics["backtest_trips"] == _manhattan_trips(
        last_week)
    assert first.metrics["backtest_ci_high_seconds"] < -60  # better than the fleet model
    gate = BacktestGate(last_week.trips, 7, "shadow", last_week.cache_dir)
    done = publish(slower_model, "trips", publisher, version="m2", key="manhattan",
                   gate=gate).metadata
    assert done.version == "m1" and done.rollout is not None  # m1 still answers
    assert (done.rollout.mode, done.rollout.candidate.version) == ("shadow", "m2")
    assert done.rollout.candidate.metrics["backtest_champion_mae_minutes"] == pytest.approx(
        first.metrics["backtest_mae_minutes"])  # judged against m1, on the same trips
    fleet = current_state(publisher, "trips")
    assert fleet is not None and fleet.version == "v1" and fleet.rollout is None
